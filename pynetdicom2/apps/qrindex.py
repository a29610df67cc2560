"""The archive index of qrscp: an embedded SQLite database (stdlib ``sqlite3``) of the
patients, studies, series and instances stored on disk, and the translation of a
C-FIND identifier into SQL with DICOM's matching rules (PS3.4 C.2.2.2).

Matching: universal (an empty value), single value (PN without regard to case),
wildcards ``*`` and ``?``, ranges ``A-B`` / ``A-`` / ``-B`` for dates and times, and
lists of UIDs separated by ``\\``. Files are referred to by their path relative to
the storage directory.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Dict, List, NamedTuple, Optional, Tuple

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pynetdicom2.apps.filestore import INCOMING

logger = logging.getLogger(__name__)

LEVELS = ('PATIENT', 'STUDY', 'SERIES', 'IMAGE')

# The attributes kept for each level (PS3.4 C.6.1.1 / C.6.2.1 keys, and common
# optional ones), as (keyword, VR). The first is the level's unique key.
ATTRIBUTES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'PATIENT': (('PatientID', 'LO'), ('PatientName', 'PN'), ('IssuerOfPatientID', 'LO'),
                ('PatientBirthDate', 'DA'), ('PatientSex', 'CS')),
    'STUDY': (('StudyInstanceUID', 'UI'), ('StudyDate', 'DA'), ('StudyTime', 'TM'),
              ('AccessionNumber', 'SH'), ('StudyID', 'SH'), ('StudyDescription', 'LO'),
              ('ReferringPhysicianName', 'PN')),
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
_NUMBER_VRS = frozenset({'IS', 'US', 'UL', 'SS', 'SL'})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    id INTEGER PRIMARY KEY, patient_key TEXT NOT NULL UNIQUE,
    PatientID TEXT, PatientName TEXT, IssuerOfPatientID TEXT, PatientBirthDate TEXT,
    PatientSex TEXT);
CREATE TABLE IF NOT EXISTS study (
    id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patient(id),
    StudyInstanceUID TEXT NOT NULL UNIQUE, StudyDate TEXT, StudyTime TEXT,
    AccessionNumber TEXT, StudyID TEXT, StudyDescription TEXT, ReferringPhysicianName TEXT);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES study(id),
    SeriesInstanceUID TEXT NOT NULL UNIQUE, Modality TEXT, SeriesNumber TEXT,
    SeriesDescription TEXT, SeriesDate TEXT, SeriesTime TEXT, BodyPartExamined TEXT);
CREATE TABLE IF NOT EXISTS instance (
    id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL REFERENCES series(id),
    SOPInstanceUID TEXT NOT NULL UNIQUE, SOPClassUID TEXT, InstanceNumber TEXT,
    ContentDate TEXT, ContentTime TEXT, NumberOfFrames TEXT, TransferSyntaxUID TEXT,
    SpecificCharacterSet TEXT, path TEXT NOT NULL, size INTEGER);
CREATE INDEX IF NOT EXISTS study_patient ON study(patient_id);
CREATE INDEX IF NOT EXISTS series_study ON series(study_id);
CREATE INDEX IF NOT EXISTS instance_series ON instance(series_id);
CREATE INDEX IF NOT EXISTS patient_name ON patient(PatientName);
CREATE INDEX IF NOT EXISTS study_date ON study(StudyDate);
"""

#: Tags read from each file when it is indexed (everything the index keeps).
INDEXED_KEYWORDS = sorted(set(COLUMNS) | {'SpecificCharacterSet'})


class QueryError(ValueError):
    """An identifier the index cannot answer (bad level, a level the root lacks)."""


# -- normalising values ------------------------------------------------------------------

def _is_multiple(value) -> bool:
    return isinstance(value, (list, tuple, MultiValue))


def _first(value):
    if _is_multiple(value):
        return value[0] if len(value) else ''
    return value


def normalise(vr: str, value) -> str:
    """The text the index keeps for an attribute value (and compares queries with)."""
    if value is None:
        return ''
    value = _first(value)
    text = str(value).rstrip('\x00 ').strip()
    if vr == 'UI':
        return text
    if vr == 'DA':
        return text.replace('.', '')  # the old ACR-NEMA form YYYY.MM.DD
    if vr == 'TM':
        return _pad_time(text.replace(':', ''))
    if vr == 'PN':
        return '='.join(group.rstrip('^ ') for group in text.split('=')).rstrip('=')
    if vr in _NUMBER_VRS:
        try:
            return str(int(float(text)))
        except ValueError:
            return text
    return text


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


# -- matching ----------------------------------------------------------------------------

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
    return [item.rstrip('\x00 ').strip() for item in items]


def condition(column: str, vr: str, value) -> Optional[Tuple[str, list]]:
    """SQL (with ``?`` parameters) for matching ``column`` against a query value.

    None means universal matching (no condition). Several values (``\\``) match when
    any one does; for UIDs that is List of UID matching (PS3.4 C.2.2.2.2).
    """
    values = [v for v in _values(value)]
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
    if vr in ('DA', 'TM', 'DT') and '-' in value:
        # Range matching (PS3.4 C.2.2.2.5): A-B, A- (on or after), -B (on or before).
        low, _, high = value.partition('-')
        clauses, params = [f"{column} != ''"], []
        if low:
            clauses.append(f'{column} >= ?')
            params.append(normalise(vr, low))
        if high:
            clauses.append(f'{column} <= ?')
            params.append(_time_upper_bound(high) if vr == 'TM' else normalise(vr, high))
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


# -- queries -------------------------------------------------------------------------

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
    level = str(identifier.get('QueryRetrieveLevel', '') or '').strip().upper()
    if not level:
        raise QueryError('the identifier has no Query/Retrieve Level (0008,0052)')
    if level not in levels_for(root):
        raise QueryError(f'level {level} is not part of the {root} root information model')
    return level


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
    for elem in identifier:
        keyword = elem.keyword
        if keyword in COLUMNS and COLUMNS[keyword][0] in levels:
            col_level, vr = COLUMNS[keyword]
            if keyword not in selected:
                selected.append(keyword)
            found = condition(f'{TABLES[col_level]}.{keyword}', vr, elem.value)
            if found:
                where.append(found[0])
                params.extend(found[1])
        elif keyword in _IN_STUDY and 'STUDY' in levels:
            found = condition(_IN_STUDY[keyword][0], 'CS' if keyword == 'ModalitiesInStudy'
                              else 'UI', elem.value)
            if found:
                where.append(f'EXISTS (SELECT 1 FROM {_IN_STUDY[keyword][1]} AND {found[0]})')
                params.extend(found[1])
    columns = [f'{TABLES[COLUMNS[kw][0]]}.{kw}' for kw in selected]
    for keyword in identifier.dir():
        if keyword in _COUNTS and _COUNTS[keyword][0] in levels:
            columns.append(f'({_COUNTS[keyword][1]})')
            selected.append(keyword)
        elif keyword in _IN_STUDY and 'STUDY' in levels:
            columns.append(f'(SELECT group_concat(DISTINCT {_IN_STUDY[keyword][0]}) FROM '
                           f'{_IN_STUDY[keyword][1]})')
            selected.append(keyword)
    sql = f'SELECT {", ".join(columns)} FROM {_joins(level)}'
    if where:
        sql += ' WHERE ' + ' AND '.join(where)
    sql += f' ORDER BY {TABLES[level]}.id'
    return sql, params, selected


def build_retrieve(level: str, identifier: Dataset) -> Tuple[str, list]:
    """``(sql, params)`` selecting ``(path, SOPClassUID)`` of every instance under the
    entities ``identifier`` names at ``level`` (C-MOVE and C-GET, PS3.4 C.4.2.2.1)."""
    levels = _levels_up_to(level)
    unique = UNIQUE_KEYS[level]
    if not any(_values(identifier.get(unique))):
        # PS3.4 C.4.2.2.1: a retrieve names its entities by their unique keys; an
        # identifier without one would otherwise retrieve the whole archive.
        raise QueryError(f'a retrieve at level {level} needs {unique}')
    where: List[str] = []
    params: list = []
    for elem in identifier:
        keyword = elem.keyword
        if keyword in COLUMNS and COLUMNS[keyword][0] in levels:
            col_level, vr = COLUMNS[keyword]
            found = condition(f'{TABLES[col_level]}.{keyword}', vr, elem.value)
            if found:
                where.append(found[0])
                params.extend(found[1])
    sql = f'SELECT instance.path, instance.SOPInstanceUID FROM {_joins("IMAGE")}'
    if where:
        sql += ' WHERE ' + ' AND '.join(where)
    return sql + ' ORDER BY instance.id', params


# -- the index -----------------------------------------------------------------------

class Index:
    """The SQLite index of one storage directory; safe to share between threads.

    ``path`` ':memory:' keeps it in memory (tests). Every call runs under one lock, in
    its own transaction.
    """

    def __init__(self, path: str, storage_dir: str) -> None:
        self.path = path
        self.storage_dir = os.path.abspath(storage_dir)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if path != ':memory:':
                self._db.execute('PRAGMA journal_mode=WAL')
                self._db.execute('PRAGMA synchronous=NORMAL')
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OSError(f'cannot open the index database {path}: {exc}') from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------

    def add(self, ds: Dataset, path: str, size: Optional[int] = None,
            transfer_syntax: Optional[str] = None) -> None:
        """Index the instance ``ds`` (its attributes; pixel data not needed) kept at
        ``path``; a known SOP Instance UID is moved to the new place and values."""
        values = {kw: normalise(vr, ds.get(kw)) for kw, (level, vr) in COLUMNS.items()}
        for level in ('STUDY', 'SERIES', 'IMAGE'):
            if not values[UNIQUE_KEYS[level]]:
                raise ValueError(f'the instance has no {UNIQUE_KEYS[level]}')
        relpath = os.path.relpath(os.path.abspath(path), self.storage_dir)
        charset = ds.get('SpecificCharacterSet') or ''
        charset = '\\'.join(charset) if _is_multiple(charset) else str(charset)
        with self._lock, self._db:
            self._db.execute('BEGIN IMMEDIATE')
            patient_key = values['PatientID'] + '\x00' + values['IssuerOfPatientID']
            patient_id = self._upsert('PATIENT', values, 'patient_key', patient_key)
            study_id = self._upsert('STUDY', values, 'StudyInstanceUID',
                                    values['StudyInstanceUID'], ('patient_id', patient_id))
            series_id = self._upsert('SERIES', values, 'SeriesInstanceUID',
                                     values['SeriesInstanceUID'], ('study_id', study_id))
            self._upsert('IMAGE', values, 'SOPInstanceUID', values['SOPInstanceUID'],
                         ('series_id', series_id), extra={
                             'path': relpath, 'size': size, 'TransferSyntaxUID':
                             transfer_syntax or '', 'SpecificCharacterSet': charset})

    def _upsert(self, level: str, values: dict, key_column: str, key: str,
                parent: Optional[tuple] = None, extra: Optional[dict] = None) -> int:
        table = TABLES[level]
        row = {kw: values[kw] for kw, _ in ATTRIBUTES[level]}
        if level == 'PATIENT':
            row['patient_key'] = key
        if parent is not None:
            row[parent[0]] = parent[1]
        row.update(extra or {})
        found = self._db.execute(f'SELECT id FROM {table} WHERE {key_column} = ?',
                                 (key,)).fetchone()
        if found is None:
            names = ', '.join(row)
            cursor = self._db.execute(
                f'INSERT INTO {table} ({names}) VALUES ({", ".join("?" * len(row))})',
                tuple(row.values()))
            return cursor.lastrowid
        self._db.execute(f'UPDATE {table} SET {", ".join(f"{k} = ?" for k in row)} '
                         f'WHERE id = ?', (*row.values(), found[0]))
        return found[0]

    def clear(self) -> None:
        with self._lock, self._db:
            self._db.execute('BEGIN IMMEDIATE')
            for table in ('instance', 'series', 'study', 'patient'):
                self._db.execute(f'DELETE FROM {table}')

    def rebuild(self) -> Tuple[int, int]:
        """Index every Part-10 file under the storage directory afresh.

        Returns ``(indexed, skipped)``; hidden directories (transfers in progress) and
        the database files are not read.
        """
        self.clear()
        indexed = skipped = 0
        for root, dirs, files in os.walk(self.storage_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d != INCOMING)
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.abspath(path) == os.path.abspath(self.path) or \
                        name.startswith(os.path.basename(self.path) + '-'):
                    continue
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True,
                                         specific_tags=INDEXED_KEYWORDS)
                    meta = getattr(ds, 'file_meta', None)
                    ts = str(meta.get('TransferSyntaxUID', '')) if meta else ''
                    if not ts:
                        raise ValueError('no file meta information')
                    self.add(ds, path, os.path.getsize(path), ts)
                    indexed += 1
                except Exception as exc:  # not DICOM, or lacking the hierarchy's UIDs
                    logger.info('not indexed: %s: %s', path, exc)
                    skipped += 1
        return indexed, skipped

    # -- reading ---------------------------------------------------------------------

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


def match_dataset(match: Match, identifier: Dataset, retrieve_aet: Optional[str] = None
                  ) -> Dataset:
    """The C-FIND response identifier for ``match``: every requested key, with the
    archive's value or empty, plus the level and its unique keys (PS3.4 C.4.1.1.3.2)."""
    ds = Dataset()
    values = match.values
    for elem in identifier:
        keyword = elem.keyword
        if keyword in ('QueryRetrieveLevel', 'SpecificCharacterSet'):
            continue
        if elem.VR == 'SQ':
            ds.add_new(elem.tag, 'SQ', [])  # sequences are not matched: returned empty
            continue
        if keyword == 'RetrieveAETitle' and retrieve_aet:
            ds.RetrieveAETitle = retrieve_aet
            continue
        if keyword == 'InstanceAvailability':
            ds.InstanceAvailability = 'ONLINE'
            continue
        if keyword in values:
            _set(ds, keyword, elem.VR, values[keyword])
        else:
            ds.add_new(elem.tag, elem.VR, None)
    for level in _levels_up_to(match.level):
        keyword = UNIQUE_KEYS[level]
        if keyword not in ds:
            _set(ds, keyword, COLUMNS[keyword][1], values.get(keyword))
    ds.QueryRetrieveLevel = match.level
    text = ''.join(str(v) for v in values.values() if isinstance(v, str))
    if not text.isascii():
        # The index keeps text decoded; what is not ASCII goes out as UTF-8.
        ds.SpecificCharacterSet = 'ISO_IR 192'
    return ds


def _set(ds: Dataset, keyword: str, vr: str, value) -> None:
    if value is None or value == '':
        setattr(ds, keyword, None)
        return
    if keyword in _IN_STUDY:
        value = sorted(set(str(value).split(',')))
        setattr(ds, keyword, value if len(value) > 1 else value[0])
        return
    if isinstance(value, int):
        value = str(value)
    setattr(ds, keyword, value)


__all__ = ['Index', 'Match', 'QueryError', 'build_find', 'build_retrieve', 'condition',
           'match_dataset', 'normalise', 'query_level', 'levels_for', 'LEVELS',
           'ATTRIBUTES', 'INDEXED_KEYWORDS']
