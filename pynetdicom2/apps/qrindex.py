"""The archive index of qrscp: an embedded SQLite database (stdlib ``sqlite3``) of the
patients, studies, series and instances stored on disk, kept in step with the files,
and the translation of C-FIND and retrieve identifiers into SQL with DICOM's matching
rules (PS3.4 C.2.2.2).

Rules the index keeps (the qrscp page of the documentation says why):

* What is stored is never re-parented: an instance whose study already belongs to
  another patient, or whose series already belongs to another study, raises
  ``Conflict`` and changes nothing. A row, once written, is never relabelled by a
  later instance; it is rewritten only when the one instance it held is replaced.
* ``place`` moves a received file to its final name and indexes it as one step:
  a SOP Instance UID stored again replaces the old file and row; a crash in the
  middle is settled by ``recover`` at the next start (the ``placement`` table).
* A value that does not parse as its VR (IS "abc", DA "2020-13-45") is indexed as
  its text, so single-value matching still finds it, and left out of range matching.
* The schema has a version (``PRAGMA user_version``); an older index is rebuilt
  from the files when it is opened.

Matching: universal (an empty value), single value (PN without regard to case),
wildcards ``*`` and ``?``, ranges ``A-B`` / ``A-`` / ``-B`` for dates and times, and
lists of UIDs separated by ``\\``. Files are referred to by their path relative to
the storage directory.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import sqlite3
import threading
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

try:
    import fcntl
except ImportError:  # not POSIX: one process per index
    fcntl = None

import pydicom
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import IS, DSfloat

from pynetdicom2.apps.filestore import INCOMING, uid_problem

logger = logging.getLogger(__name__)

#: The version of the schema below; an index with another ``user_version`` is
#: rebuilt (older) or refused (newer). Version 0 is the unversioned schema of the
#: first qrscp (one column per attribute, no range columns, no placement table).
SCHEMA_VERSION = 1

LEVELS = ('PATIENT', 'STUDY', 'SERIES', 'IMAGE')

# THE declaration of what the index keeps: for each level, the attributes (PS3.4
# C.6.1.1 / C.6.2.1 keys and common optional ones, as DCMTK's dcmqrdb keeps), as
# (keyword, VR). The first is the level's unique key. The tables, their columns and
# what is read from each file all derive from it.
ATTRIBUTES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'PATIENT': (('PatientID', 'LO'), ('PatientName', 'PN'), ('IssuerOfPatientID', 'LO'),
                ('PatientBirthDate', 'DA'), ('PatientSex', 'CS')),
    'STUDY': (('StudyInstanceUID', 'UI'), ('StudyDate', 'DA'), ('StudyTime', 'TM'),
              ('AccessionNumber', 'SH'), ('StudyID', 'SH'), ('StudyDescription', 'LO'),
              ('ReferringPhysicianName', 'PN'), ('PatientAge', 'AS'), ('PatientSize', 'DS'),
              ('PatientWeight', 'DS')),
    'SERIES': (('SeriesInstanceUID', 'UI'), ('Modality', 'CS'), ('SeriesNumber', 'IS'),
               ('SeriesDescription', 'LO'), ('SeriesDate', 'DA'), ('SeriesTime', 'TM'),
               ('BodyPartExamined', 'CS')),
    'IMAGE': (('SOPInstanceUID', 'UI'), ('SOPClassUID', 'UI'), ('InstanceNumber', 'IS'),
              ('ContentDate', 'DA'), ('ContentTime', 'TM'), ('NumberOfFrames', 'IS')),
}
TABLES = {'PATIENT': 'patient', 'STUDY': 'study', 'SERIES': 'series', 'IMAGE': 'instance'}
_PARENT = {'STUDY': 'PATIENT', 'SERIES': 'STUDY', 'IMAGE': 'SERIES'}
UNIQUE_KEYS = {level: attrs[0][0] for level, attrs in ATTRIBUTES.items()}
#: Where each stored attribute lives: keyword -> (level, VR).
COLUMNS = {kw: (level, vr) for level, attrs in ATTRIBUTES.items() for kw, vr in attrs}
# The columns each table has besides its attributes.
_BOOKKEEPING = {
    'PATIENT': (('patient_key', 'TEXT NOT NULL UNIQUE'),),
    'STUDY': (('patient_id', 'INTEGER NOT NULL REFERENCES patient(id)'),),
    'SERIES': (('study_id', 'INTEGER NOT NULL REFERENCES study(id)'),),
    'IMAGE': (('series_id', 'INTEGER NOT NULL REFERENCES series(id)'),
              ('TransferSyntaxUID', 'TEXT'), ('SpecificCharacterSet', 'TEXT'),
              ('path', 'TEXT NOT NULL'), ('size', 'INTEGER')),
}
# Range matching (PS3.4 C.2.2.2.5) applies to these VRs; each such attribute has a
# second column, <keyword>_range, holding the value only when it parses (else NULL).
_RANGE_VRS = frozenset({'DA', 'TM', 'DT'})
# The VRs whose values use the default repertoire only (PS3.5 6.2): read straight
# from the file's bytes, never through a conversion that may fail.
_ASCII_VRS = frozenset({'AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'TM', 'UI'})

# Attributes worked out from the levels below (PS3.4 C.3.2 .. C.3.4 optional keys).
_COUNTS = {
    'NumberOfPatientRelatedStudies': (
        'PATIENT', 'SELECT COUNT(*) FROM study WHERE study.patient_id = patient.id'),
    'NumberOfPatientRelatedSeries': (
        'PATIENT', 'SELECT COUNT(*) FROM series JOIN study ON series.study_id = study.id '
        'WHERE study.patient_id = patient.id'),
    'NumberOfPatientRelatedInstances': (
        'PATIENT', 'SELECT COUNT(*) FROM instance JOIN series ON instance.series_id = '
        'series.id JOIN study ON series.study_id = study.id WHERE study.patient_id = '
        'patient.id'),
    'NumberOfStudyRelatedSeries': (
        'STUDY', 'SELECT COUNT(*) FROM series WHERE series.study_id = study.id'),
    'NumberOfStudyRelatedInstances': (
        'STUDY', 'SELECT COUNT(*) FROM instance JOIN series ON instance.series_id = '
        'series.id WHERE series.study_id = study.id'),
    'NumberOfSeriesRelatedInstances': (
        'SERIES', 'SELECT COUNT(*) FROM instance WHERE instance.series_id = series.id'),
}
_IN_STUDY = {
    # keyword -> (column of the level below, table of that level)
    'ModalitiesInStudy': ('series.Modality', 'series WHERE series.study_id = study.id'),
    'SOPClassesInStudy': ('instance.SOPClassUID', 'instance JOIN series ON '
                          'instance.series_id = series.id WHERE series.study_id = study.id'),
}
_WILDCARD_VRS = frozenset({'AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT'})


def _ddl() -> str:
    """The schema, from ``ATTRIBUTES`` and ``_BOOKKEEPING``."""
    statements = []
    for level in LEVELS:
        columns = ['id INTEGER PRIMARY KEY']
        columns += [f'{name} {kind}' for name, kind in _BOOKKEEPING[level]]
        for keyword, vr in ATTRIBUTES[level]:
            unique = keyword == UNIQUE_KEYS[level] and vr == 'UI'
            columns.append(f'{keyword} TEXT' + (' NOT NULL UNIQUE' if unique else ''))
            if vr in _RANGE_VRS:
                columns.append(f'{keyword}_range TEXT')
        statements.append(f'CREATE TABLE {TABLES[level]} ({", ".join(columns)})')
        if level in _PARENT:
            parent = TABLES[_PARENT[level]]
            statements.append(f'CREATE INDEX {TABLES[level]}_{parent} ON '
                              f'{TABLES[level]}({parent}_id)')
    statements += [
        'CREATE INDEX patient_name ON patient(PatientName)',
        'CREATE INDEX patient_patient_id ON patient(PatientID)',
        'CREATE INDEX study_date ON study(StudyDate_range)',
        # An instance being moved to its final name: (SOP Instance UID, the new
        # path, the path it replaces). A row left here by a crash is settled at start.
        'CREATE TABLE placement (SOPInstanceUID TEXT PRIMARY KEY, path TEXT NOT NULL, '
        'previous TEXT)',
        f'PRAGMA user_version = {SCHEMA_VERSION}',
    ]
    return ';\n'.join(statements) + ';'


#: Tags read from each file when it is indexed (everything the index keeps).
INDEXED_KEYWORDS = sorted(set(COLUMNS) | {'SpecificCharacterSet'})


class QueryError(ValueError):
    """An identifier the index cannot answer (bad level, a level the root lacks, a
    retrieve key that is not one value); the message says which."""


class Conflict(ValueError):
    """An instance that would re-parent what is stored (a study of another patient, a
    series of another study). ``str()`` gives the details (UIDs, both sides);
    ``comment`` says it in a few words for a DIMSE Error Comment."""

    def __init__(self, message: str, comment: str) -> None:
        super().__init__(message)
        self.comment = comment


class IndexVersionError(OSError):
    """The index was written by a newer qrscp (a schema version above ours)."""


# -- reading values without ever failing ---------------------------------------------------

def _is_multiple(value) -> bool:
    return isinstance(value, (list, tuple, MultiValue))


def _clean(text: str) -> str:
    return text.rstrip('\x00 ').strip()


def element_text(ds: Dataset, tag: int, vr: str) -> str:
    """The value of ``ds``'s element ``tag`` as text (values joined by ``\\``).

    Never raises: a value that does not parse as its VR (IS "abc") is given as it
    was written. Default-repertoire VRs are read from the raw bytes, so pydicom
    never converts them; other text goes through pydicom (character sets).
    """
    elem = ds.get_item(tag)
    if elem is None:
        return ''
    if elem.is_raw:
        raw = elem.value
        if raw is None:
            return ''
        if vr in _ASCII_VRS:
            return _clean(bytes(raw).decode('latin-1'))
        try:
            elem = ds[tag]
        except Exception:  # pydicom raises many kinds on a value it cannot convert
            return _clean(bytes(raw).decode('latin-1'))
    value = elem.value
    if value is None:
        return ''
    if isinstance(value, (bytes, bytearray)):
        return _clean(bytes(value).decode('latin-1'))
    if _is_multiple(value):
        return '\\'.join(_clean(str(v)) for v in value)
    return _clean(str(value))


def _tag_vr(ds: Dataset, tag: int) -> str:
    elem = ds.get_item(tag)
    vr = getattr(elem, 'VR', None)
    if vr and vr not in ('UN', 'OB or OW', 'US or SS'):
        return vr
    try:
        return dictionary_VR(tag)
    except KeyError:
        return vr or 'UN'


def _keyword_text(ds: Dataset, keyword: str) -> str:
    vr = COLUMNS[keyword][1] if keyword in COLUMNS else dictionary_VR(keyword)
    return element_text(ds, tag_for_keyword(keyword), vr)


# -- normalising values --------------------------------------------------------------------

_DATE = re.compile(r'(\d{4})\.?(\d{2})\.?(\d{2})')
_TIME = re.compile(r'(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?')
_DATETIME = re.compile(r'\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?'
                       r'(?:[+-]\d{4})?')
_INTEGER = re.compile(r'[+-]?\d+')


def _date_value(text: str) -> Optional[str]:
    """``YYYYMMDD`` for a valid DA (or the ACR-NEMA ``YYYY.MM.DD``), else None."""
    found = _DATE.fullmatch(text)
    if found is None or ('.' in text and text.count('.') != 2):
        return None
    try:
        datetime.date(*map(int, found.groups()))
    except ValueError:
        return None
    return ''.join(found.groups())


def _time_value(text: str) -> Optional[str]:
    """``HHMMSS[.F]`` for a valid TM (or the old ``HH:MM:SS``), else None."""
    found = _TIME.fullmatch(text.replace(':', ''))
    if found is None:
        return None
    hours, minutes, seconds, _ = found.groups()
    if int(hours) > 23 or int(minutes or 0) > 59 or int(seconds or 0) > 60:
        return None
    return _pad_time(text.replace(':', ''))


def _pad_time(text: str) -> str:
    """``HH``/``HHMM`` -> ``HHMMSS`` so that times compare as text (PS3.5 6.2, TM)."""
    whole, dot, fraction = text.partition('.')
    if whole and len(whole) < 6 and whole.isdigit() and len(whole) % 2 == 0:
        whole = whole + '0' * (6 - len(whole))
    return whole + dot + fraction


def _time_upper_bound(text: str) -> str:
    """The last time an upper bound with less precision still covers (``13`` ->
    ``135959.999999``)."""
    whole, _, fraction = text.replace(':', '').partition('.')
    if len(whole) == 2:
        return whole + '5959.999999'
    if len(whole) == 4:
        return whole + '59.999999'
    if len(whole) == 6:
        return whole + '.' + (fraction + '999999')[:6]
    return text


def range_value(vr: str, text: str) -> Optional[str]:
    """The form of a DA, TM or DT value that range matching compares; None when the
    value does not parse (it then takes part in no range)."""
    if vr == 'DA':
        return _date_value(text)
    if vr == 'TM':
        return _time_value(text)
    if vr == 'DT':
        return text if _DATETIME.fullmatch(text) else None
    return None


def normalise(vr: str, value) -> str:
    """The text the index keeps for one attribute value (and compares queries with).

    Values that parse take one form (dates without dots, times padded to seconds,
    integers without leading zeros, names without trailing ``^``); values that do
    not parse are kept as they were written. Multi-valued: the first value.
    """
    if value is None:
        return ''
    if _is_multiple(value):
        value = value[0] if len(value) else ''
    text = str(value)
    if vr not in ('LT', 'ST', 'UT'):
        text = text.split('\\')[0]
    text = _clean(text)
    if vr in ('DA', 'TM'):
        return range_value(vr, text) or text
    if vr == 'PN':
        return '='.join(group.rstrip('^ ') for group in text.split('=')).rstrip('=')
    if vr == 'IS' and _INTEGER.fullmatch(text) and -2**31 <= int(text) < 2**31:
        return str(int(text))
    return text


# -- matching ------------------------------------------------------------------------------

def _glob_pattern(value: str) -> str:
    # In GLOB, '*' and '?' are DICOM's wildcards already; '[' must be made literal.
    return value.replace('[', '[[]')


def _like_pattern(value: str) -> str:
    escaped = value.replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_')
    return escaped.replace('*', '%').replace('?', '_')


def _values(value) -> List[str]:
    """The values of a query attribute: a multi-valued element or a ``\\`` list."""
    if value is None:
        return []
    if _is_multiple(value):
        items = [str(v) for v in value]
    else:
        items = str(value).split('\\')
    return [_clean(item) for item in items]


def condition(column: str, vr: str, value) -> Optional[Tuple[str, list]]:
    """SQL (with ``?`` parameters) for matching ``column`` against a query value.

    None means universal matching (no condition). Several values (``\\``) match when
    any one does; for UIDs that is List of UID matching (PS3.4 C.2.2.2.2).
    """
    values = _values(value)
    if not any(values):
        return None
    if vr == 'UI':
        uids = [v for v in values if v]
        if len(uids) == 1:
            return f'{column} = ?', uids
        return f'{column} IN ({", ".join("?" * len(uids))})', uids
    parts = []
    params: list = []
    for item in values:
        sql, args = _single_condition(column, vr, item)
        if sql is None:
            return None  # one value is universal ("*"): so is the whole list
        parts.append(sql)
        params.extend(args)
    if len(parts) == 1:
        return parts[0], params
    return '(' + ' OR '.join(parts) + ')', params


def _single_condition(column: str, vr: str, value: str) -> Tuple[Optional[str], list]:
    if vr in _RANGE_VRS and '-' in value:
        # Range matching (PS3.4 C.2.2.2.5): A-B, A- (on or after), -B (on or before),
        # on the range column, where a value that does not parse is NULL.
        low, _, high = value.partition('-')
        ranged = f'{column}_range'
        clauses, params = [], []
        if low:
            clauses.append(f'{ranged} >= ?')
            params.append(range_value(vr, low) or low)
        if high:
            clauses.append(f'{ranged} <= ?')
            params.append(_time_upper_bound(high) if vr == 'TM'
                          else range_value(vr, high) or high)
        if not clauses:
            clauses.append(f'{ranged} IS NOT NULL')
        return '(' + ' AND '.join(clauses) + ')', params
    if vr in _WILDCARD_VRS and ('*' in value or '?' in value):
        # Wild card matching (PS3.4 C.2.2.2.4); "*" alone matches everything.
        if set(value) == {'*'}:
            return None, []
        if vr == 'PN':
            return f"{column} LIKE ? ESCAPE '\\'", [_like_pattern(normalise(vr, value))]
        return f'{column} GLOB ?', [_glob_pattern(value)]
    if vr == 'PN':
        # Person names match without regard to case, as most archives do.
        return f'{column} = ? COLLATE NOCASE', [normalise(vr, value)]
    return f'{column} = ?', [normalise(vr, value)]


# -- queries -------------------------------------------------------------------------------

class Match(NamedTuple):
    """One C-FIND answer: the level and the attribute values, by keyword."""
    level: str
    values: dict


def levels_for(root: str) -> Tuple[str, ...]:
    """The levels an information model has: 'patient', 'study' or 'patient-study'."""
    if root == 'study':
        return LEVELS[1:]
    if root == 'patient-study':
        return LEVELS[:2]
    return LEVELS


def _joins(level: str) -> str:
    """FROM clause reaching from ``level``'s table up to the patient."""
    sql = TABLES[level]
    while level in _PARENT:
        parent = _PARENT[level]
        sql += (f' JOIN {TABLES[parent]} ON {TABLES[level]}.{TABLES[parent]}_id = '
                f'{TABLES[parent]}.id')
        level = parent
    return sql


def _levels_up_to(level: str) -> Tuple[str, ...]:
    return LEVELS[:LEVELS.index(level) + 1]


def query_level(identifier: Dataset, root: str) -> str:
    """The Query/Retrieve Level of ``identifier``, checked against the model's levels."""
    level = _keyword_text(identifier, 'QueryRetrieveLevel').upper()
    if not level:
        raise QueryError('the identifier has no Query/Retrieve Level (0008,0052)')
    if level not in levels_for(root):
        raise QueryError(f'level {level[:16]} is not part of the {root} root information '
                         'model')
    return level


def _elements(identifier: Dataset) -> Iterator[Tuple[int, str, str]]:
    """``(tag, keyword, VR)`` of each element of ``identifier``, values not converted."""
    for tag in sorted(identifier.keys(), key=int):
        yield int(tag), keyword_for_tag(tag), _tag_vr(identifier, tag)


def build_find(level: str, identifier: Dataset) -> Tuple[str, list, List[str]]:
    """``(sql, params, keywords)`` selecting the matches of ``identifier`` at ``level``.

    Matching keys are the identifier's attributes of ``level`` and the levels above
    (lower levels' attributes are returned empty). ``keywords`` names the selected
    columns in order.
    """
    levels = _levels_up_to(level)
    selected = [UNIQUE_KEYS[lv] for lv in levels]
    where: List[str] = []
    params: list = []
    extra_columns: List[str] = []
    extra_keywords: List[str] = []
    for tag, keyword, vr in _elements(identifier):
        if keyword in COLUMNS and COLUMNS[keyword][0] in levels:
            col_level, col_vr = COLUMNS[keyword]
            if keyword not in selected:
                selected.append(keyword)
            found = condition(f'{TABLES[col_level]}.{keyword}', col_vr,
                              element_text(identifier, tag, col_vr))
        elif keyword in _IN_STUDY and 'STUDY' in levels:
            inner_vr = 'CS' if keyword == 'ModalitiesInStudy' else 'UI'
            found = condition(_IN_STUDY[keyword][0], inner_vr,
                              element_text(identifier, tag, inner_vr))
            if found:
                found = (f'EXISTS (SELECT 1 FROM {_IN_STUDY[keyword][1]} AND {found[0]})',
                         found[1])
            extra_columns.append(f'(SELECT group_concat(DISTINCT {_IN_STUDY[keyword][0]}) '
                                 f'FROM {_IN_STUDY[keyword][1]})')
            extra_keywords.append(keyword)
        else:
            if keyword in _COUNTS and _COUNTS[keyword][0] in levels:
                extra_columns.append(f'({_COUNTS[keyword][1]})')
                extra_keywords.append(keyword)
            continue
        if found:
            where.append(found[0])
            params.extend(found[1])
    columns = [f'{TABLES[COLUMNS[kw][0]]}.{kw}' for kw in selected] + extra_columns
    sql = f'SELECT {", ".join(columns)} FROM {_joins(level)}'
    if where:
        sql += ' WHERE ' + ' AND '.join(where)
    sql += f' ORDER BY {TABLES[level]}.id'
    return sql, params, selected + extra_keywords


def _retrieve_value_problem(keyword: str, value: str) -> Optional[str]:
    """Why ``value`` cannot name an entity in a retrieve, or None. The value comes
    last, so an Error Comment cut to its 64 characters still says what is wrong."""
    shown = value[:64]
    if '*' in value or '?' in value:
        return f'no wildcard in a retrieve: {keyword} {shown}'
    if COLUMNS[keyword][1] == 'UI' and uid_problem(value) is not None:
        if '-' in value:
            return f'no range in a retrieve: {keyword} {shown}'
        return f'not a UID: {keyword} {shown}'
    return None


def build_retrieve(level: str, identifier: Dataset) -> Tuple[str, list]:
    """``(sql, params)`` selecting ``(path, SOPInstanceUID)`` of every instance under
    the entities ``identifier`` names at ``level`` (C-MOVE and C-GET).

    PS3.4 C.4.2.2.1 / C.4.3.2.1: a retrieve names its entities by their unique keys
    only: the key of ``level`` (a single value, or for UIDs a list of UIDs) and,
    optionally, one value for each level above. Wildcards, ranges and anything that
    is not a UID raise ``QueryError``, as does a unique key of a lower level; other
    keys do not select and are ignored (as DCMTK's archive does).
    """
    levels = _levels_up_to(level)
    where: List[str] = []
    params: list = []
    for lv in LEVELS:
        keyword = UNIQUE_KEYS[lv]
        values = [v for v in _values(_keyword_text(identifier, keyword)) if v]
        if lv not in levels:
            if values:
                raise QueryError(f'{keyword} is below the retrieve level {level}')
            continue
        if not values:
            if lv == level:
                # Without it the retrieve would name the whole archive.
                raise QueryError(f'a retrieve at level {level} needs {keyword}')
            continue
        if len(values) > 1 and (lv != level or keyword == 'PatientID'):
            raise QueryError(f'{keyword} takes one value in this retrieve, not a list')
        for value in values:
            problem = _retrieve_value_problem(keyword, value)
            if problem:
                raise QueryError(problem)
        column = f'{TABLES[lv]}.{keyword}'
        if len(values) == 1:
            where.append(f'{column} = ?')
        else:
            where.append(f'{column} IN ({", ".join("?" * len(values))})')
        params.extend(values)
    sql = (f'SELECT instance.path, instance.SOPInstanceUID FROM {_joins("IMAGE")} '
           f'WHERE {" AND ".join(where)} ORDER BY instance.id')
    return sql, params


# -- the index -----------------------------------------------------------------------------

class _Record(NamedTuple):
    """What the index keeps of one instance."""
    values: Dict[str, str]            # keyword -> text
    path: str                         # relative to the storage directory
    size: Optional[int]
    transfer_syntax: str
    charset: str


def _display(value: str) -> str:
    return value if value else '(none)'


class Index:
    """The SQLite index of one storage directory; safe to share between threads, and
    between the processes of one qrscp (its workers; ``after_fork``).

    ``path`` ':memory:' keeps it in memory (tests). Every call runs under one lock, in
    its own transaction; every change also under an exclusive lock of
    ``<path>-lock`` (``lockf``) held across processes, so that a file move and its
    rows change as one step whichever worker makes it. Readers never wait for it
    (WAL mode). An index of an older schema version is rebuilt from the
    files here (``rebuilt`` then says how many were indexed); ``recreate`` starts an
    empty index whatever was there (``--reindex``); a newer version raises
    ``IndexVersionError``.
    """

    #: Seconds a statement waits while another process writes (SQLite busy timeout).
    busy_timeout = 30.0

    def __init__(self, path: str, storage_dir: str, recreate: bool = False) -> None:
        self.path = path
        self.storage_dir = os.path.abspath(storage_dir)
        self._lock = threading.RLock()
        self._db: Optional[sqlite3.Connection] = None
        self._writer_fd = self._open_writer_lock()
        self._writer_depth = 0
        self._inherited: list = []
        self.rebuilt: Optional[Tuple[int, int]] = None
        if recreate:
            self._recreate()
            return
        try:
            self._connect()
            version = self._db.execute('PRAGMA user_version').fetchone()[0]
            tables = self._tables()
        except sqlite3.DatabaseError as exc:
            raise OSError(f'cannot open the index database {path}: {exc}') from exc
        if not tables:
            self._recreate()
        elif version > SCHEMA_VERSION:
            self._db.close()
            raise IndexVersionError(
                f'the index {path} has schema version {version}, newer than this qrscp '
                f'({SCHEMA_VERSION}); rebuild it with --reindex or use another --database')
        elif version < SCHEMA_VERSION:
            logger.warning('the index %s has schema version %d (this qrscp writes %d): '
                           'rebuilding it from the files', path, version, SCHEMA_VERSION)
            self.rebuilt = self.rebuild()
            logger.warning('index rebuilt: %d instance(s) indexed, %d file(s) skipped',
                           *self.rebuilt)

    def _open_writer_lock(self) -> Optional[int]:
        """The file whose lock makes changes exclusive across processes; None for an
        index in memory or where there is no ``fcntl`` (one process, please)."""
        if self.path == ':memory:' or fcntl is None:
            return None
        try:
            return os.open(self.path + '-lock', os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OSError(f'cannot open the lock file of the index {self.path}: {exc}') from exc

    @contextlib.contextmanager
    def _writing(self):
        """Hold the thread lock and, across processes, the writer lock (re-entrant)."""
        with self._lock:
            if self._writer_depth == 0 and self._writer_fd is not None:
                # POSIX record locks belong to the process: workers exclude each other,
                # and the kernel drops the lock of a worker that dies holding it.
                fcntl.lockf(self._writer_fd, fcntl.LOCK_EX)
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
                if self._writer_depth == 0 and self._writer_fd is not None:
                    fcntl.lockf(self._writer_fd, fcntl.LOCK_UN)

    def after_fork(self) -> None:
        """Call in a process forked from the one that opened the index (a qrscp
        worker), before using it: a connection of its own. The inherited one is kept
        but never used nor closed here (an SQLite connection must not cross a fork;
        closing it could disturb the parent's)."""
        self._inherited.append(self._db)
        self._lock = threading.RLock()
        self._writer_depth = 0
        self._connect()

    def _connect(self) -> None:
        # A busy timeout: another worker may be writing (our writer lock serializes
        # changes; checkpoints and the WAL's recovery can still hold a lock briefly).
        self._db = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                   check_same_thread=False, isolation_level=None)
        if self.path != ':memory:':
            self._db.execute('PRAGMA journal_mode=WAL')
            self._db.execute('PRAGMA synchronous=NORMAL')

    def _tables(self) -> List[str]:
        return [row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]

    def _recreate(self) -> None:
        """Drop whatever the database holds and create the current schema, empty."""
        with self._writing():
            try:
                if self._db is None:
                    self._connect()
                self._drop_and_create()
            except sqlite3.DatabaseError as exc:
                if self.path == ':memory:':
                    raise
                # Not a database at all (a damaged file): start a new one.
                logger.warning('the index %s is unreadable (%s): starting a new one',
                               self.path, exc)
                if self._db is not None:
                    self._db.close()
                for suffix in ('', '-wal', '-shm'):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path + suffix)
                try:
                    self._connect()
                    self._drop_and_create()
                except sqlite3.DatabaseError as again:
                    raise OSError(f'cannot create the index database {self.path}: '
                                  f'{again}') from again

    def _drop_and_create(self) -> None:
        with self._transaction():
            for table in self._tables():
                self._db.execute(f'DROP TABLE IF EXISTS "{table}"')
            for statement in _ddl().split(';\n'):
                self._db.execute(statement.rstrip(';'))

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE .. COMMIT (ROLLBACK on any exception); caller holds the lock."""
        self._db.execute('BEGIN IMMEDIATE')
        try:
            yield
        except BaseException:
            self._db.execute('ROLLBACK')
            raise
        self._db.execute('COMMIT')

    # -- writing -------------------------------------------------------------------------

    def _record(self, ds: Dataset, path: str, size: Optional[int],
                transfer_syntax: Optional[str]) -> _Record:
        values = {kw: normalise(vr, element_text(ds, tag_for_keyword(kw), vr))
                  for kw, (level, vr) in COLUMNS.items()}
        for level in ('STUDY', 'SERIES', 'IMAGE'):
            if not values[UNIQUE_KEYS[level]]:
                raise ValueError(f'the instance has no {UNIQUE_KEYS[level]}')
        relpath = os.path.relpath(os.path.abspath(path), self.storage_dir)
        charset = element_text(ds, tag_for_keyword('SpecificCharacterSet'), 'CS')
        return _Record(values, relpath, size, transfer_syntax or '', charset)

    def add(self, ds: Dataset, path: str, size: Optional[int] = None,
            transfer_syntax: Optional[str] = None) -> Optional[str]:
        """Index the instance ``ds`` (its attributes; pixel data not needed) kept at
        ``path``, a file already in place. A known SOP Instance UID is replaced.

        Raises ``Conflict`` (nothing changed) when it would re-parent what is stored.
        Returns the path the replaced row pointed to (relative), or None.
        """
        record = self._record(ds, path, size, transfer_syntax)
        with self._writing(), self._transaction():
            return self._put(record)

    def place(self, ds: Dataset, temp_path: str, final_path: str, size: Optional[int] = None,
              transfer_syntax: Optional[str] = None) -> None:
        """Move the complete file ``temp_path`` to ``final_path`` and index it, as one step.

        Under the writer lock (held across processes): the rows are written
        (``Conflict``: nothing is, and ``temp_path`` stays where it is), the file is
        moved, the file of a replaced instance with another path is removed. A crash at any point leaves a
        ``placement`` row, which ``recover`` settles from what is on disk.
        """
        record = self._record(ds, final_path, size, transfer_syntax)
        uid = record.values['SOPInstanceUID']
        with self._writing():
            with self._transaction():
                previous = self._put(record)
                self._db.execute('INSERT OR REPLACE INTO placement VALUES (?, ?, ?)',
                                 (uid, record.path, previous))
            try:
                os.makedirs(os.path.dirname(final_path), exist_ok=True)
                os.replace(temp_path, final_path)
                if previous is not None and previous != record.path:
                    self._remove_file(previous)
            except OSError:
                self._settle(uid, record.path, previous)
                raise
            try:
                self._db.execute('DELETE FROM placement WHERE SOPInstanceUID = ?', (uid,))
            except sqlite3.Error as exc:
                # The instance is in place and indexed; the row left behind only makes
                # the next start check it again (``recover``).
                logger.warning('placement of %s not cleared: %s', uid, exc)

    def _remove_file(self, relpath: str) -> None:
        path = self.resolve(relpath)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _put(self, record: _Record) -> Optional[str]:
        """Write ``record``'s rows; the caller holds the lock, inside a transaction.

        The instance's old row, if any, goes first, with the rows it alone held; then
        the instance is filed as a new one. Existing patient, study and series rows
        are used as they are, never updated: a later instance does not relabel what
        was stored before it.
        """
        values = record.values
        db = self._db
        old = db.execute('SELECT id, series_id, path FROM instance WHERE SOPInstanceUID = ?',
                         (values['SOPInstanceUID'],)).fetchone()
        if old is not None:
            db.execute('DELETE FROM instance WHERE id = ?', (old[0],))
            self._prune(old[1])
        study_uid, series_uid = values['StudyInstanceUID'], values['SeriesInstanceUID']
        pid, issuer = values['PatientID'], values['IssuerOfPatientID']
        study = db.execute(
            'SELECT study.id, patient.PatientID, patient.IssuerOfPatientID FROM study JOIN '
            'patient ON study.patient_id = patient.id WHERE StudyInstanceUID = ?',
            (study_uid,)).fetchone()
        # Another patient: another Patient ID, or the same one from another issuer
        # (an issuer left empty on either side does not say "another").
        if study is not None and (study[1] != pid or (study[2] and issuer and
                                                      study[2] != issuer)):
            raise Conflict(
                f'study {study_uid} belongs to patient {_display(study[1])}'
                f'{" (issuer " + study[2] + ")" if study[2] else ""}; the instance '
                f'{values["SOPInstanceUID"]} says patient {_display(pid)}'
                f'{" (issuer " + issuer + ")" if issuer else ""}',
                f'study already belongs to Patient ID {_display(study[1])}, '
                f'not {_display(pid)}')
        series = db.execute(
            'SELECT series.id, study.StudyInstanceUID FROM series JOIN study ON '
            'series.study_id = study.id WHERE SeriesInstanceUID = ?', (series_uid,)).fetchone()
        if series is not None and series[1] != study_uid:
            raise Conflict(
                f'series {series_uid} belongs to study {series[1]}; the instance '
                f'{values["SOPInstanceUID"]} says study {study_uid}',
                'Series Instance UID already belongs to another study')
        if study is not None:
            study_id = study[0]
        else:
            key = pid + '\x00' + issuer
            found = db.execute('SELECT id FROM patient WHERE patient_key = ?',
                               (key,)).fetchone()
            patient_id = found[0] if found else self._insert('PATIENT', values,
                                                             {'patient_key': key})
            study_id = self._insert('STUDY', values, {'patient_id': patient_id})
        series_id = series[0] if series is not None else self._insert(
            'SERIES', values, {'study_id': study_id})
        self._insert('IMAGE', values, {
            'series_id': series_id, 'path': record.path, 'size': record.size,
            'TransferSyntaxUID': record.transfer_syntax,
            'SpecificCharacterSet': record.charset})
        return old[2] if old is not None else None

    def _insert(self, level: str, values: dict, extra: dict) -> int:
        row = dict(extra)
        for keyword, vr in ATTRIBUTES[level]:
            row[keyword] = values[keyword]
            if vr in _RANGE_VRS:
                row[f'{keyword}_range'] = range_value(vr, values[keyword])
        cursor = self._db.execute(
            f'INSERT INTO {TABLES[level]} ({", ".join(row)}) VALUES '
            f'({", ".join("?" * len(row))})', tuple(row.values()))
        return cursor.lastrowid

    def _prune(self, series_id: int) -> None:
        """Delete the series, study and patient rows no instance is under any more."""
        db = self._db
        if db.execute('SELECT 1 FROM instance WHERE series_id = ? LIMIT 1',
                      (series_id,)).fetchone():
            return
        (study_id,) = db.execute('SELECT study_id FROM series WHERE id = ?',
                                 (series_id,)).fetchone()
        db.execute('DELETE FROM series WHERE id = ?', (series_id,))
        if db.execute('SELECT 1 FROM series WHERE study_id = ? LIMIT 1',
                      (study_id,)).fetchone():
            return
        (patient_id,) = db.execute('SELECT patient_id FROM study WHERE id = ?',
                                   (study_id,)).fetchone()
        db.execute('DELETE FROM study WHERE id = ?', (study_id,))
        if not db.execute('SELECT 1 FROM study WHERE patient_id = ? LIMIT 1',
                          (patient_id,)).fetchone():
            db.execute('DELETE FROM patient WHERE id = ?', (patient_id,))

    def _read(self, path: str) -> Tuple[Dataset, str]:
        """The indexed attributes and the transfer syntax of the Part-10 file ``path``."""
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=INDEXED_KEYWORDS)
        meta = getattr(ds, 'file_meta', None)
        ts = element_text(meta, tag_for_keyword('TransferSyntaxUID'), 'UI') if meta else ''
        if not ts:
            raise ValueError('no file meta information')
        return ds, ts

    def _settle(self, uid: str, relpath: str, previous: Optional[str]) -> None:
        """Make the index say what the disk holds for ``uid`` after an interrupted
        ``place``: the new file when it arrived (then the replaced one is removed),
        else the replaced one; the placement row goes."""
        candidates = [relpath] + ([previous] if previous not in (None, relpath) else [])
        with self._writing():
            indexed = None
            with self._transaction():
                old = self._db.execute('SELECT id, series_id FROM instance WHERE '
                                       'SOPInstanceUID = ?', (uid,)).fetchone()
                if old is not None:
                    self._db.execute('DELETE FROM instance WHERE id = ?', (old[0],))
                    self._prune(old[1])
                for candidate in candidates:
                    path = self.resolve(candidate)
                    if path is None or not os.path.isfile(path):
                        continue
                    try:
                        ds, ts = self._read(path)
                        record = self._record(ds, path, os.path.getsize(path), ts)
                    except Exception as exc:  # pydicom raises many kinds on a bad file
                        logger.warning('%s not indexed after an interrupted store: %s',
                                       path, exc)
                        continue
                    self._db.execute('SAVEPOINT settle')
                    try:
                        self._put(record)
                    except Conflict as exc:
                        self._db.execute('ROLLBACK TO settle')
                        self._db.execute('RELEASE settle')
                        logger.warning('%s not indexed after an interrupted store: %s',
                                       path, exc)
                        continue
                    self._db.execute('RELEASE settle')
                    indexed = candidate
                    break
                self._db.execute('DELETE FROM placement WHERE SOPInstanceUID = ?', (uid,))
            if indexed == relpath and len(candidates) == 2:
                # The new file arrived: the copy it replaced must not come back.
                self._remove_file(previous)

    def recover(self) -> int:
        """Settle every store a crash interrupted (see ``place``); how many there were."""
        with self._writing():
            rows = self._db.execute('SELECT SOPInstanceUID, path, previous FROM '
                                    'placement').fetchall()
            for uid, relpath, previous in rows:
                logger.warning('settling the store of %s interrupted by a crash', uid)
                self._settle(uid, relpath, previous)
        return len(rows)

    def clear(self) -> None:
        with self._writing(), self._transaction():
            for table in ('placement', 'instance', 'series', 'study', 'patient'):
                self._db.execute(f'DELETE FROM {table}')

    def rebuild(self) -> Tuple[int, int]:
        """Drop the index and index every Part-10 file under the storage directory.

        Returns ``(indexed, skipped)``. Hidden files and directories (transfers in
        progress, temporary files) and the database files are not read. Of two files
        with one SOP Instance UID the newer is indexed; a file that would re-parent
        what is already indexed is skipped, with a warning.
        """
        with self._writing():
            return self._rebuild()

    def _rebuild(self) -> Tuple[int, int]:
        self._recreate()
        indexed = skipped = 0
        database = os.path.abspath(self.path)
        for root, dirs, files in os.walk(self.storage_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d != INCOMING)
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.startswith('.') or os.path.abspath(path) == database or \
                        os.path.abspath(path).startswith(database + '-'):
                    continue
                try:
                    ds, ts = self._read(path)
                    uid = _keyword_text(ds, 'SOPInstanceUID')
                    known = self.instance(uid) if uid else None
                    if known is not None and os.path.getmtime(known[1]) > \
                            os.path.getmtime(path):
                        logger.warning('%s holds SOP Instance UID %s as %s does, and is '
                                       'older: not indexed', path, uid, known[1])
                        skipped += 1
                        continue
                    replaced = self.add(ds, path, os.path.getsize(path), ts)
                    if replaced is not None:
                        logger.warning('%s holds SOP Instance UID %s as %s does, and is '
                                       'newer: indexed in its place', path, uid, replaced)
                        skipped += 1
                    else:
                        indexed += 1
                except Conflict as exc:
                    logger.warning('not indexed: %s: %s', path, exc)
                    skipped += 1
                except Exception as exc:  # not DICOM, or lacking the hierarchy's UIDs
                    logger.info('not indexed: %s: %s', path, exc)
                    skipped += 1
        return indexed, skipped

    # -- reading -------------------------------------------------------------------------

    def find(self, identifier: Dataset, root: str = 'patient') -> List[Match]:
        """The matches of a C-FIND identifier, in the order the archive received them."""
        level = query_level(identifier, root)
        sql, params, keywords = build_find(level, identifier)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [Match(level, dict(zip(keywords, row))) for row in rows]

    def retrieve(self, identifier: Dataset, root: str = 'patient') -> List[str]:
        """Absolute paths of the instances a C-MOVE / C-GET identifier names."""
        level = query_level(identifier, root)
        sql, params = build_retrieve(level, identifier)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [p for p in (self.resolve(row[0]) for row in rows) if p is not None]

    def instance(self, sop_instance_uid: str) -> Optional[Tuple[str, str]]:
        """``(SOPClassUID, absolute path)`` of a stored instance, or None."""
        with self._lock:
            row = self._db.execute('SELECT SOPClassUID, path FROM instance WHERE '
                                   'SOPInstanceUID = ?', (sop_instance_uid,)).fetchone()
        if row is None:
            return None
        path = self.resolve(row[1])
        return None if path is None else (row[0], path)

    def resolve(self, relpath: str) -> Optional[str]:
        """The absolute path of an indexed file; None for one outside the storage."""
        path = os.path.abspath(os.path.join(self.storage_dir, relpath))
        if os.path.commonpath([path, self.storage_dir]) != self.storage_dir:
            logger.warning('index entry %r points outside the storage directory', relpath)
            return None
        return path

    def counts(self) -> Dict[str, int]:
        with self._lock:
            return {level: self._db.execute(f'SELECT COUNT(*) FROM {TABLES[level]}')
                    .fetchone()[0] for level in LEVELS}


# -- answers -------------------------------------------------------------------------------

def match_dataset(match: Match, identifier: Dataset, retrieve_aet: Optional[str] = None
                  ) -> Dataset:
    """The C-FIND response identifier for ``match``: every requested key, with the
    archive's value or empty, plus the level and its unique keys (PS3.4 C.4.1.1.3.2).

    Values go back as the archive keeps them, also those that do not parse as their
    VR (IS "abc" is sent as ``abc``), as DCMTK's archive does.
    """
    ds = Dataset()
    values = match.values
    for tag, keyword, vr in _elements(identifier):
        if keyword in ('QueryRetrieveLevel', 'SpecificCharacterSet'):
            continue
        if vr == 'SQ':
            ds.add_new(tag, 'SQ', [])  # sequences are not matched: returned empty
        elif keyword == 'RetrieveAETitle' and retrieve_aet:
            _set(ds, tag, 'AE', retrieve_aet)
        elif keyword == 'InstanceAvailability':
            _set(ds, tag, 'CS', 'ONLINE')
        elif keyword in values:
            _set(ds, tag, vr, _answer_text(keyword, values[keyword]))
        else:
            _set(ds, tag, vr, None)
    for level in _levels_up_to(match.level):
        keyword = UNIQUE_KEYS[level]
        tag = tag_for_keyword(keyword)
        if tag not in ds:
            _set(ds, tag, COLUMNS[keyword][1], values.get(keyword))
    ds.QueryRetrieveLevel = match.level
    text = ''.join(str(v) for v in values.values() if isinstance(v, str))
    if not text.isascii():
        # The index keeps text decoded; what is not ASCII goes out as UTF-8.
        ds.SpecificCharacterSet = 'ISO_IR 192'
    return ds


def _answer_text(keyword: str, value) -> Optional[str]:
    if value is None or value == '':
        return None
    if keyword in _IN_STUDY:
        return '\\'.join(sorted(set(str(value).split(','))))
    return str(value)


def _number(vr: str, text: str):
    """An IS or DS value that writes ``text`` as it is, whether it parses or not."""
    kind = IS if vr == 'IS' else DSfloat
    try:
        number = kind(text, validation_mode=pydicom_config.IGNORE)
        if number == number and abs(float(number)) != float('inf'):
            return number
    except (ValueError, OverflowError, ArithmeticError):
        pass
    number = kind(0)
    number.original_string = text  # what pydicom writes for a value it read
    return number


def _set(ds: Dataset, tag: int, vr: str, text: Optional[str]) -> None:
    """Put ``text`` into ``ds`` as it is, without pydicom refusing or re-checking it."""
    value = text if text not in (None, '') else None
    if value is not None and vr in ('IS', 'DS'):
        numbers = [_number(vr, part) for part in value.split('\\')]
        value = numbers if len(numbers) > 1 else numbers[0]
    ds[tag] = DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)


__all__ = ['Index', 'Match', 'QueryError', 'Conflict', 'IndexVersionError', 'build_find',
           'build_retrieve', 'condition', 'match_dataset', 'normalise', 'range_value',
           'element_text', 'query_level', 'levels_for', 'LEVELS', 'ATTRIBUTES',
           'INDEXED_KEYWORDS', 'SCHEMA_VERSION']
