"""The rows of one instance in qrscp's archive index, written under the hierarchy's
rules: what is stored is never re-parented (``Conflict``) nor relabelled by a later
instance; an instance stored again replaces its old row, and the series, study and
patient rows it alone held go with it.

Functions over an open ``sqlite3`` connection; the caller (``qrindex.Index``) holds
the writer lock and the transaction.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Dict, NamedTuple, Optional

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from pynetdicom2.apps.qrschema import ATTRIBUTES, COLUMNS, RANGE_VRS, TABLES, UNIQUE_KEYS
from pynetdicom2.apps.qrvalues import element_text, normalise, range_value


class Conflict(ValueError):
    """An instance that would re-parent what is stored (a study of another patient, a
    series of another study). ``str()`` gives the details (UIDs, both sides);
    ``comment`` says it in a few words for a DIMSE Error Comment."""

    def __init__(self, message: str, comment: str) -> None:
        super().__init__(message)
        self.comment = comment


class InstanceRecord(NamedTuple):
    """What the index keeps of one instance."""
    values: Dict[str, str]            # keyword -> text
    path: str                         # relative to the storage directory
    size: Optional[int]
    transfer_syntax: str
    charset: str


def instance_record(ds: Dataset, path: str, size: Optional[int],
                    transfer_syntax: Optional[str], storage_dir: str) -> InstanceRecord:
    """The record of the instance ``ds`` kept at ``path`` (under ``storage_dir``);
    ``ValueError`` when it lacks a UID of the hierarchy."""
    values = {kw: normalise(vr, element_text(ds, tag_for_keyword(kw), vr))
              for kw, (level, vr) in COLUMNS.items()}
    for level in ('STUDY', 'SERIES', 'IMAGE'):
        if not values[UNIQUE_KEYS[level]]:
            raise ValueError(f'the instance has no {UNIQUE_KEYS[level]}')
    relpath = os.path.relpath(os.path.abspath(path), storage_dir)
    charset = element_text(ds, tag_for_keyword('SpecificCharacterSet'), 'CS')
    return InstanceRecord(values, relpath, size, transfer_syntax or '', charset)


def _display(value: str) -> str:
    return value if value else '(none)'


def put_instance(db: sqlite3.Connection, record: InstanceRecord) -> Optional[str]:
    """Write ``record``'s rows; returns the path the replaced row pointed to, or None.

    The instance's old row, if any, goes first, with the rows it alone held; then
    the instance is filed as a new one. Existing patient, study and series rows
    are used as they are, never updated: a later instance does not relabel what
    was stored before it.
    """
    values = record.values
    previous = remove_instance(db, values['SOPInstanceUID'])
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
        patient_id = found[0] if found else _insert(db, 'PATIENT', values,
                                                    {'patient_key': key})
        study_id = _insert(db, 'STUDY', values, {'patient_id': patient_id})
    series_id = series[0] if series is not None else _insert(
        db, 'SERIES', values, {'study_id': study_id})
    _insert(db, 'IMAGE', values, {
        'series_id': series_id, 'path': record.path, 'size': record.size,
        'TransferSyntaxUID': record.transfer_syntax,
        'SpecificCharacterSet': record.charset})
    return previous


def remove_instance(db: sqlite3.Connection, sop_instance_uid: str) -> Optional[str]:
    """Delete the instance's row and the rows it alone held; returns the path the
    row pointed to (relative), or None when there was none."""
    old = db.execute('SELECT id, series_id, path FROM instance WHERE SOPInstanceUID = ?',
                     (sop_instance_uid,)).fetchone()
    if old is None:
        return None
    db.execute('DELETE FROM instance WHERE id = ?', (old[0],))
    _prune(db, old[1])
    return old[2]


def _insert(db: sqlite3.Connection, level: str, values: dict, extra: dict) -> int:
    row = dict(extra)
    for keyword, vr in ATTRIBUTES[level]:
        row[keyword] = values[keyword]
        if vr in RANGE_VRS:
            row[f'{keyword}_range'] = range_value(vr, values[keyword])
    cursor = db.execute(
        f'INSERT INTO {TABLES[level]} ({", ".join(row)}) VALUES '
        f'({", ".join("?" * len(row))})', tuple(row.values()))
    return cursor.lastrowid


def _prune(db: sqlite3.Connection, series_id: int) -> None:
    """Delete the series, study and patient rows no instance is under any more."""
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
