"""What qrscp's archive index keeps, declared once: the levels, the attributes of
each (the tables, their columns and what is read from each file all derive from
that declaration), the SQL schema built from it and its version (PS3.4 C.6.1.1,
C.6.2.1).
"""

from __future__ import annotations

import sqlite3
from typing import Dict, List, Tuple

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
PARENT = {'STUDY': 'PATIENT', 'SERIES': 'STUDY', 'IMAGE': 'SERIES'}
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
RANGE_VRS = frozenset({'DA', 'TM', 'DT'})


def ddl() -> str:
    """The schema, from ``ATTRIBUTES`` and ``_BOOKKEEPING``."""
    statements = []
    for level in LEVELS:
        columns = ['id INTEGER PRIMARY KEY']
        columns += [f'{name} {kind}' for name, kind in _BOOKKEEPING[level]]
        for keyword, vr in ATTRIBUTES[level]:
            unique = keyword == UNIQUE_KEYS[level] and vr == 'UI'
            columns.append(f'{keyword} TEXT' + (' NOT NULL UNIQUE' if unique else ''))
            if vr in RANGE_VRS:
                columns.append(f'{keyword}_range TEXT')
        statements.append(f'CREATE TABLE {TABLES[level]} ({", ".join(columns)})')
        if level in PARENT:
            parent = TABLES[PARENT[level]]
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


class IndexVersionError(OSError):
    """The index was written by a newer qrscp (a schema version above ours)."""


def table_names(db: sqlite3.Connection) -> List[str]:
    """The tables ``db`` holds (none: a new, empty database)."""
    return [row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]


def create_tables(db: sqlite3.Connection) -> None:
    """Drop every table of ``db`` and create the current schema, empty (the caller
    holds a transaction)."""
    for table in table_names(db):
        db.execute(f'DROP TABLE IF EXISTS "{table}"')
    for statement in ddl().split(';\n'):
        db.execute(statement.rstrip(';'))
