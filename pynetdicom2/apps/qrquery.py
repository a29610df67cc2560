"""C-FIND and retrieve identifiers as SQL over qrscp's archive index, with DICOM's
matching rules (PS3.4 C.2.2.2): universal, single value (person names without regard
to case), wildcards ``*`` and ``?``, ranges of dates and times, lists of UIDs; and the
unique keys a C-MOVE or C-GET names its instances by (PS3.4 C.4.2.2.1).
"""

from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Tuple

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from pynetdicom2.apps.filestore import uid_problem
from pynetdicom2.apps.qrschema import COLUMNS, LEVELS, PARENT, RANGE_VRS, TABLES, UNIQUE_KEYS
from pynetdicom2.apps.qrvalues import (
    clean, element_text, element_vr, is_multiple, keyword_text, normalise, range_value,
    time_upper_bound)


class QueryError(ValueError):
    """An identifier the index cannot answer (bad level, a level the root lacks, a
    retrieve key that is not one value); the message says which."""


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
IN_STUDY = {
    # keyword -> (column of the level below, table of that level)
    'ModalitiesInStudy': ('series.Modality', 'series WHERE series.study_id = study.id'),
    'SOPClassesInStudy': ('instance.SOPClassUID', 'instance JOIN series ON '
                          'instance.series_id = series.id WHERE series.study_id = study.id'),
}
_WILDCARD_VRS = frozenset({'AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT'})


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
    if is_multiple(value):
        items = [str(v) for v in value]
    else:
        items = str(value).split('\\')
    return [clean(item) for item in items]


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
    if vr in RANGE_VRS and '-' in value:
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
            params.append(time_upper_bound(high) if vr == 'TM'
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
    while level in PARENT:
        parent = PARENT[level]
        sql += (f' JOIN {TABLES[parent]} ON {TABLES[level]}.{TABLES[parent]}_id = '
                f'{TABLES[parent]}.id')
        level = parent
    return sql


def levels_up_to(level: str) -> Tuple[str, ...]:
    """``level`` and the levels above it, from the patient down."""
    return LEVELS[:LEVELS.index(level) + 1]


def query_level(identifier: Dataset, root: str) -> str:
    """The Query/Retrieve Level of ``identifier``, checked against the model's levels."""
    level = keyword_text(identifier, 'QueryRetrieveLevel').upper()
    if not level:
        raise QueryError('the identifier has no Query/Retrieve Level (0008,0052)')
    if level not in levels_for(root):
        raise QueryError(f'level {level[:16]} is not part of the {root} root information '
                         'model')
    return level


def identifier_elements(identifier: Dataset) -> Iterator[Tuple[int, str, str]]:
    """``(tag, keyword, VR)`` of each element of ``identifier``, values not converted."""
    for tag in sorted(identifier.keys(), key=int):
        yield int(tag), keyword_for_tag(tag), element_vr(identifier, tag)


def build_find(level: str, identifier: Dataset) -> Tuple[str, list, List[str]]:
    """``(sql, params, keywords)`` selecting the matches of ``identifier`` at ``level``.

    Matching keys are the identifier's attributes of ``level`` and the levels above
    (lower levels' attributes are returned empty). ``keywords`` names the selected
    columns in order.
    """
    levels = levels_up_to(level)
    selected = [UNIQUE_KEYS[lv] for lv in levels]
    where: List[str] = []
    params: list = []
    extra_columns: List[str] = []
    extra_keywords: List[str] = []
    for tag, keyword, vr in identifier_elements(identifier):
        if keyword in COLUMNS and COLUMNS[keyword][0] in levels:
            col_level, col_vr = COLUMNS[keyword]
            if keyword not in selected:
                selected.append(keyword)
            found = condition(f'{TABLES[col_level]}.{keyword}', col_vr,
                              element_text(identifier, tag, col_vr))
        elif keyword in IN_STUDY and 'STUDY' in levels:
            inner_vr = 'CS' if keyword == 'ModalitiesInStudy' else 'UI'
            found = condition(IN_STUDY[keyword][0], inner_vr,
                              element_text(identifier, tag, inner_vr))
            if found:
                found = (f'EXISTS (SELECT 1 FROM {IN_STUDY[keyword][1]} AND {found[0]})',
                         found[1])
            extra_columns.append(f'(SELECT group_concat(DISTINCT {IN_STUDY[keyword][0]}) '
                                 f'FROM {IN_STUDY[keyword][1]})')
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
    levels = levels_up_to(level)
    where: List[str] = []
    params: list = []
    for lv in LEVELS:
        keyword = UNIQUE_KEYS[lv]
        values = [v for v in _values(keyword_text(identifier, keyword)) if v]
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
