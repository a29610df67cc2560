"""The archive index (pynetdicom2.apps.qrindex) on real files and a real database: what
is stored is never re-parented, a row is never relabelled by a later instance, one
SOP Instance UID is one file and one row (``place``, ``recover``), values that do not
parse as their VR are kept and answered as written, the schema is versioned, and a
retrieve names entities by exact unique keys only.

The helpers ``instance_file`` and ``raw_value`` are shared with tests/test_qrscp.py.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.valuerep import IS, DSfloat

from pynetdicom2 import uids
from pynetdicom2.apps import qrindex
from pynetdicom2.services.queryretrieve import decode_identifier, encode_identifier
from tests.peers import make_ct_file

# The tests write values that do not parse on purpose; pydicom warns of each.
pytestmark = pytest.mark.filterwarnings('ignore:Invalid value for VR')

ROOT = '1.2.826.0.1.3680043.8.498.78'
# Values that do not parse as their VR, as a modality may write them.
BAD_VALUES = {
    'SeriesNumber': ('IS', 'abc'),
    'InstanceNumber': ('IS', '1e999999'),
    'StudyDate': ('DA', '2020-13-45'),
    'PatientWeight': ('DS', 'garbage'),
    'StudyTime': ('TM', 'xx:yy'),
}


def read_index(database, sql: str) -> list:
    """The rows ``sql`` reads from the index file at ``database``, as any other reader of
    the file sees them (its own connection: what an index has committed)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute(sql).fetchall()


def uid(*parts) -> str:
    return '.'.join([ROOT, *map(str, parts)])


def written_as(vr: str, text: str):
    """A value pydicom writes as ``text`` whether or not it parses as ``vr``."""
    if vr in ('IS', 'DS'):
        number = (IS if vr == 'IS' else DSfloat)(0)
        number.original_string = text
        return number
    return text


def instance_file(path, sop: str, study: str, series: str, patient_id: str = 'P1',
                  name: str = 'DOE^JOHN', issuer: str = None, **attributes) -> pathlib.Path:
    """A small CT Part-10 file with the given hierarchy; ``attributes`` are written as
    given, also values that do not parse (``written_as``)."""
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    path = make_ct_file(path, sop, rows=4, cols=4)
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.PatientName = patient_id, name
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    for keyword, value in attributes.items():
        vr = pydicom.datadict.dictionary_VR(keyword)
        ds[keyword] = pydicom.DataElement(pydicom.datadict.tag_for_keyword(keyword), vr,
                                          written_as(vr, str(value)),
                                          validation_mode=pydicom.config.IGNORE)
    ds.save_as(path)
    return pathlib.Path(path)


def raw_value(ds: Dataset, keyword: str) -> str:
    """The text of an element as it is on the wire, without pydicom parsing it."""
    elem = ds.get_item(pydicom.datadict.tag_for_keyword(keyword))
    assert elem is not None, f'{keyword} missing'
    raw = elem.value if elem.is_raw else None
    if raw is None:
        return str(ds[keyword].value)
    return bytes(raw).decode('latin-1').rstrip('\x00 ')


class Archive:
    """An index over a storage directory, and the files it should describe."""

    def __init__(self, root: pathlib.Path) -> None:
        self.storage = root / 'pacs'
        self.storage.mkdir(parents=True, exist_ok=True)
        self.incoming = root / 'incoming'
        self.incoming.mkdir(exist_ok=True)
        self.database = self.storage / 'index.sqlite'
        self.index = qrindex.Index(str(self.database), str(self.storage))
        self.count = 0

    def reopen(self, **kwargs) -> qrindex.Index:
        self.index.close()
        self.index = qrindex.Index(str(self.database), str(self.storage), **kwargs)
        return self.index

    def store(self, sop, study, series, **kwargs) -> pathlib.Path:
        """Write a file under a temporary name and ``place`` it as the archive does."""
        self.count += 1
        temp = instance_file(self.incoming / f'{self.count}.part', sop, study, series,
                             **kwargs)
        final = self.storage / study / f'{sop}.dcm'
        attrs = pydicom.dcmread(temp, stop_before_pixels=True,
                                specific_tags=qrindex.INDEXED_KEYWORDS)
        self.index.place(attrs, str(temp), str(final), temp.stat().st_size,
                         uids.EXPLICIT_VR_LITTLE_ENDIAN)
        return final

    def files(self) -> list:
        return sorted(p.relative_to(self.storage).as_posix()
                      for p in self.storage.rglob('*.dcm'))

    def rows(self) -> list:
        """(SOPInstanceUID, path) of every instance row."""
        return sorted(read_index(self.database, 'SELECT SOPInstanceUID, path FROM instance'))

    def find(self, level: str, root: str = 'patient', **keys) -> list:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        return [match.values for match in self.index.find(ds, root)]

    def everything(self) -> dict:
        """What a query at every level returns, with every attribute the index keeps."""
        found = {}
        for level in qrindex.LEVELS:
            keys = {kw: '' for lv in qrindex.LEVELS[:qrindex.LEVELS.index(level) + 1]
                    for kw, _ in qrindex.ATTRIBUTES[lv]}
            found[level] = self.find(level, **keys)
        return found


@pytest.fixture
def archive(tmp_path):
    made = Archive(tmp_path)
    yield made
    made.index.close()


# -- the schema ----------------------------------------------------------------------------

def test_the_schema_comes_from_the_declared_attributes_and_has_a_version(archive):
    (version,), = read_index(archive.database, 'PRAGMA user_version')
    assert version == qrindex.SCHEMA_VERSION >= 1
    for level, attributes in qrindex.ATTRIBUTES.items():
        columns = {row[1] for row in read_index(archive.database,
                                                f'PRAGMA table_info({qrindex.TABLES[level]})')}
        for keyword, vr in attributes:
            assert keyword in columns
            assert (f'{keyword}_range' in columns) == (vr in ('DA', 'TM', 'DT'))
    # What the archive reads from each file is what the tables hold.
    assert set(qrindex.INDEXED_KEYWORDS) == set(qrindex.COLUMNS) | {'SpecificCharacterSet'}


# The schema of the first qrscp, which had no version (user_version 0).
VERSION_0 = """
CREATE TABLE patient (id INTEGER PRIMARY KEY, patient_key TEXT NOT NULL UNIQUE,
    PatientID TEXT, PatientName TEXT, IssuerOfPatientID TEXT, PatientBirthDate TEXT,
    PatientSex TEXT);
CREATE TABLE study (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL,
    StudyInstanceUID TEXT NOT NULL UNIQUE, StudyDate TEXT, StudyTime TEXT,
    AccessionNumber TEXT, StudyID TEXT, StudyDescription TEXT, ReferringPhysicianName TEXT);
CREATE TABLE series (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL,
    SeriesInstanceUID TEXT NOT NULL UNIQUE, Modality TEXT, SeriesNumber TEXT,
    SeriesDescription TEXT, SeriesDate TEXT, SeriesTime TEXT, BodyPartExamined TEXT);
CREATE TABLE instance (id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,
    SOPInstanceUID TEXT NOT NULL UNIQUE, SOPClassUID TEXT, InstanceNumber TEXT,
    ContentDate TEXT, ContentTime TEXT, NumberOfFrames TEXT, TransferSyntaxUID TEXT,
    SpecificCharacterSet TEXT, path TEXT NOT NULL, size INTEGER);
INSERT INTO patient VALUES (1, 'GONE', 'GONE', 'NOT^THERE', '', '', '');
INSERT INTO study (id, patient_id, StudyInstanceUID) VALUES (1, 1, '9.9');
"""


def test_an_index_without_a_version_is_rebuilt_from_the_files_when_opened(tmp_path):
    storage = tmp_path / 'pacs'
    for n in (1, 2):
        instance_file(storage / 'x' / f'{n}.dcm', uid(3, n), uid(1, 1), uid(2, 1))
    db = sqlite3.connect(storage / 'index.sqlite')
    db.executescript(VERSION_0)
    db.close()
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    try:
        assert index.rebuilt == (2, 0)
        assert read_index(index.path, 'PRAGMA user_version') == [(qrindex.SCHEMA_VERSION,)]
        assert index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 2}
        # The stale rows of the old index are gone, and new instances go in.
        query = Dataset()
        query.QueryRetrieveLevel = 'PATIENT'
        query.PatientID = 'GONE'
        assert index.find(query) == []
        ds = pydicom.dcmread(storage / 'x' / '1.dcm')
        ds.SOPInstanceUID = uid(3, 3)
        index.add(ds, str(storage / 'x' / '3.dcm'))
        assert index.counts()['IMAGE'] == 3
    finally:
        index.close()


def test_a_newer_index_is_refused_and_recreate_starts_afresh(tmp_path):
    path = tmp_path / 'index.sqlite'
    db = sqlite3.connect(path)
    db.execute('CREATE TABLE future (x)')
    db.execute(f'PRAGMA user_version = {qrindex.SCHEMA_VERSION + 1}')
    db.close()
    with pytest.raises(qrindex.IndexVersionError, match='newer than this qrscp'):
        qrindex.Index(str(path), str(tmp_path))
    index = qrindex.Index(str(path), str(tmp_path), recreate=True)
    assert index.counts()['IMAGE'] == 0
    assert ('future',) not in read_index(path, "SELECT name FROM sqlite_master")
    index.close()
    path.write_bytes(b'this is not a database' * 100)
    with pytest.raises(OSError, match='cannot open the index'):
        qrindex.Index(str(path), str(tmp_path))
    index = qrindex.Index(str(path), str(tmp_path), recreate=True)
    assert index.counts()['IMAGE'] == 0
    index.close()


# -- never re-parented, never relabelled ------------------------------------------------------

def test_a_study_of_another_patient_is_refused_and_no_answer_changes(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), patient_id='P1', name='DOE^JOHN')
    before = archive.everything()
    for series in (uid(2, 1), uid(2, 2)):  # into its series, or a new one of the study
        with pytest.raises(qrindex.Conflict) as caught:
            archive.store(uid(3, 2), uid(1, 1), series, patient_id='P2', name='ROE^JANE')
        assert caught.value.comment == 'study already belongs to Patient ID P1, not P2'
        assert uid(1, 1) in str(caught.value) and uid(3, 2) in str(caught.value)
    assert archive.everything() == before
    assert archive.files() == [f'{uid(1, 1)}/{uid(3, 1)}.dcm']
    assert sorted(p.name for p in archive.incoming.iterdir()) == ['2.part', '3.part']


def test_a_series_of_another_study_is_refused(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1))
    before = archive.everything()
    with pytest.raises(qrindex.Conflict) as caught:
        archive.store(uid(3, 2), uid(1, 2), uid(2, 1))
    assert caught.value.comment == 'Series Instance UID already belongs to another study'
    assert archive.everything() == before
    assert archive.index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 1}


def test_the_issuer_tells_patients_apart_only_when_both_name_one(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), patient_id='P1', issuer='HOSP_A')
    with pytest.raises(qrindex.Conflict):
        archive.store(uid(3, 2), uid(1, 1), uid(2, 1), patient_id='P1', issuer='HOSP_B')
    # No issuer: nothing says it is another patient; it joins the study as filed.
    archive.store(uid(3, 3), uid(1, 1), uid(2, 1), patient_id='P1', issuer='')
    (patient,) = archive.find('PATIENT', PatientID='', IssuerOfPatientID='')
    assert patient['IssuerOfPatientID'] == 'HOSP_A'
    assert archive.index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 2}


def test_a_later_instance_never_relabels_the_patient_study_or_series(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), name='DOE^JOHN', StudyDescription='HEAD',
                  SeriesDescription='AXIAL')
    archive.store(uid(3, 2), uid(1, 1), uid(2, 1), name='DOE^JOHNNY',
                  StudyDescription='CHEST', SeriesDescription='CORONAL')
    (study,) = archive.find('STUDY', PatientName='', StudyDescription='')
    assert (study['PatientName'], study['StudyDescription']) == ('DOE^JOHN', 'HEAD')
    (series,) = archive.find('SERIES', StudyInstanceUID=uid(1, 1), SeriesDescription='')
    assert series['SeriesDescription'] == 'AXIAL'
    assert archive.find('PATIENT', PatientName='DOE^JOHNNY') == []


# -- one SOP Instance UID, one file, one row ------------------------------------------------

def test_storing_a_uid_again_replaces_file_and_row(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), InstanceNumber='1')
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), InstanceNumber='2')
    assert archive.files() == [f'{uid(1, 1)}/{uid(3, 1)}.dcm']
    assert pydicom.dcmread(archive.storage / uid(1, 1) / f'{uid(3, 1)}.dcm').InstanceNumber == 2
    (row,) = archive.find('IMAGE', SOPInstanceUID='', InstanceNumber='')
    assert row['InstanceNumber'] == '2'
    assert list(archive.incoming.iterdir()) == []


def test_a_corrected_instance_alone_in_its_study_may_change_the_study(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), patient_id='WRONG', name='WRONG^NAME')
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), patient_id='P7', name='RIGHT^NAME')
    assert archive.find('PATIENT', PatientID='', PatientName='') == [
        {'PatientID': 'P7', 'PatientName': 'RIGHT^NAME'}]
    assert archive.index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 1}


def test_a_corrected_instance_cannot_take_a_shared_study_to_another_patient(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), patient_id='P1')
    archive.store(uid(3, 2), uid(1, 1), uid(2, 1), patient_id='P1')
    before = archive.everything()
    with pytest.raises(qrindex.Conflict):
        archive.store(uid(3, 2), uid(1, 1), uid(2, 1), patient_id='P2')
    assert archive.everything() == before
    assert archive.rows() == [(uid(3, 1), f'{uid(1, 1)}/{uid(3, 1)}.dcm'),
                              (uid(3, 2), f'{uid(1, 1)}/{uid(3, 2)}.dcm')]


def test_an_instance_moved_to_another_study_leaves_one_file_and_no_empty_study(archive):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1))
    archive.store(uid(3, 1), uid(1, 2), uid(2, 2))
    assert archive.files() == [f'{uid(1, 2)}/{uid(3, 1)}.dcm']
    assert archive.rows() == [(uid(3, 1), f'{uid(1, 2)}/{uid(3, 1)}.dcm')]
    assert [s['StudyInstanceUID'] for s in archive.find('STUDY', StudyInstanceUID='')] == [
        uid(1, 2)]
    assert archive.index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 1}


def test_a_failed_move_leaves_the_index_as_the_disk_is(archive, tmp_path):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), InstanceNumber='1')
    before = archive.everything()
    temp = instance_file(archive.incoming / 'new.part', uid(3, 1), uid(1, 9), uid(2, 9),
                         InstanceNumber='2')
    (archive.storage / uid(1, 9)).write_text('a file where the study folder should be')
    attrs = pydicom.dcmread(temp, stop_before_pixels=True)
    with pytest.raises(OSError):
        archive.index.place(attrs, str(temp), str(archive.storage / uid(1, 9) /
                                                  f'{uid(3, 1)}.dcm'))
    assert archive.everything() == before
    assert read_index(archive.database, 'SELECT COUNT(*) FROM placement') == [(0,)]
    assert archive.files() == [f'{uid(1, 1)}/{uid(3, 1)}.dcm']


class Crash(BaseException):
    """The process dies here (nothing below ``place`` catches a BaseException)."""


@pytest.mark.parametrize('where', ['before the move', 'after the move'])
def test_a_store_cut_short_by_a_crash_is_settled_at_the_next_start(archive, monkeypatch,
                                                                   where):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), InstanceNumber='1')
    if where == 'before the move':
        monkeypatch.setattr(qrindex.os, 'replace', lambda *a: (_ for _ in ()).throw(Crash()))
    else:
        # The old file's removal, the step after the move.
        monkeypatch.setattr(qrindex.os, 'unlink', lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        archive.store(uid(3, 1), uid(1, 2), uid(2, 2), InstanceNumber='2')
    monkeypatch.undo()
    index = archive.reopen()
    assert index.recover() == 1
    expected_study = uid(1, 1) if where == 'before the move' else uid(1, 2)
    assert archive.files() == [f'{expected_study}/{uid(3, 1)}.dcm']
    assert archive.rows() == [(uid(3, 1), f'{expected_study}/{uid(3, 1)}.dcm')]
    (row,) = archive.find('IMAGE', SOPInstanceUID='', InstanceNumber='', StudyInstanceUID='')
    assert row['StudyInstanceUID'] == expected_study
    assert row['InstanceNumber'] == ('1' if where == 'before the move' else '2')
    assert archive.index.counts()['STUDY'] == 1
    assert index.recover() == 0


def test_rebuild_keeps_the_newer_of_two_copies_and_skips_conflicts(archive):
    older = instance_file(archive.storage / 'a' / 'old.dcm', uid(3, 1), uid(1, 1), uid(2, 1),
                          InstanceNumber='1')
    newer = instance_file(archive.storage / 'b' / 'new.dcm', uid(3, 1), uid(1, 1), uid(2, 1),
                          InstanceNumber='2')
    os.utime(older, (1_000_000_000, 1_000_000_000))
    instance_file(archive.storage / 'c' / 'other.dcm', uid(3, 2), uid(1, 1), uid(2, 3),
                  patient_id='SOMEONE_ELSE')
    (archive.storage / '.tmp-0001.part').write_bytes(newer.read_bytes())
    assert archive.index.rebuild() == (1, 2)
    (row,) = archive.find('IMAGE', SOPInstanceUID='', InstanceNumber='')
    assert row['InstanceNumber'] == '2'
    assert archive.rows() == [(uid(3, 1), 'b/new.dcm')]


# -- values that do not parse as their VR ----------------------------------------------------

@pytest.fixture
def odd_archive(archive):
    """One instance with every bad value, one with good values around it."""
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1), patient_id='ODD',
                  **{kw: text for kw, (vr, text) in BAD_VALUES.items()})
    archive.store(uid(3, 2), uid(1, 2), uid(2, 2), patient_id='GOOD', StudyDate='20200315',
                  StudyTime='101500', SeriesNumber='7', InstanceNumber='3',
                  PatientWeight='70.5')
    return archive


def answer(archive, root='patient', **keys):
    """The C-FIND answers as they go on the wire, decoded back without parsing."""
    query = Dataset()
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    # The query itself travels encoded and arrives raw, as at the SCP.
    query = decode_identifier(encode_identifier(query, uids.EXPLICIT_VR_LITTLE_ENDIAN),
                              uids.EXPLICIT_VR_LITTLE_ENDIAN)
    return [decode_identifier(encode_identifier(qrindex.match_dataset(m, query),
                                                uids.EXPLICIT_VR_LITTLE_ENDIAN),
                              uids.EXPLICIT_VR_LITTLE_ENDIAN)
            for m in archive.index.find(query, root)]


@pytest.mark.parametrize('level', qrindex.LEVELS)
def test_bad_values_are_answered_as_written_at_every_level(odd_archive, level):
    keys = {'QueryRetrieveLevel': level, 'PatientID': 'ODD'}
    for keyword, (vr, _) in BAD_VALUES.items():
        if qrindex.LEVELS.index(qrindex.COLUMNS[keyword][0]) <= qrindex.LEVELS.index(level):
            keys[keyword] = ''
    (found,) = answer(odd_archive, **keys)
    for keyword in keys:
        if keyword in BAD_VALUES:
            assert raw_value(found, keyword) == BAD_VALUES[keyword][1], keyword


@pytest.mark.parametrize('keyword', sorted(BAD_VALUES))
def test_a_bad_value_matches_itself_and_never_a_range(odd_archive, keyword):
    vr, text = BAD_VALUES[keyword]
    level = qrindex.COLUMNS[keyword][0]
    exact = answer(odd_archive, QueryRetrieveLevel=level, PatientID='',
                   **{keyword: written_as(vr, text) if '-' not in text else ''})
    assert 'ODD' in [str(ds.PatientID) for ds in exact]
    if vr in ('DA', 'TM'):
        wide = '00000101-99991231' if vr == 'DA' else '000000-235959'
        ranged = answer(odd_archive, QueryRetrieveLevel=level, PatientID='',
                        **{keyword: wide})
        assert [str(ds.PatientID) for ds in ranged] == ['GOOD']
        open_ended = answer(odd_archive, QueryRetrieveLevel=level, PatientID='',
                            **{keyword: '-'})
        assert [str(ds.PatientID) for ds in open_ended] == ['GOOD']


def test_a_query_holding_bad_values_is_answered_not_failed(odd_archive):
    for keyword, (vr, text) in BAD_VALUES.items():
        if '-' in text:
            continue
        level = qrindex.COLUMNS[keyword][0]
        found = answer(odd_archive, QueryRetrieveLevel=level, PatientID='',
                       **{keyword: written_as(vr, text)})
        assert [str(ds.PatientID) for ds in found] == ['ODD'], keyword
    # Garbage range bounds match nothing, and fail nothing.
    assert answer(odd_archive, QueryRetrieveLevel='STUDY', StudyDate='abc-xyz') == []
    good = answer(odd_archive, QueryRetrieveLevel='SERIES', PatientID='GOOD', SeriesNumber='7')
    assert [int(ds.SeriesNumber) for ds in good] == [7]


# -- retrieve keys -----------------------------------------------------------------------------

@pytest.mark.parametrize('level, keys, reason', [
    ('PATIENT', {'PatientID': '*'}, 'no wildcard in a retrieve: PatientID \\*'),
    ('PATIENT', {'PatientID': 'PAT*'}, 'no wildcard in a retrieve: PatientID PAT\\*'),
    ('PATIENT', {'PatientID': 'P?'}, 'no wildcard'),
    ('PATIENT', {'PatientID': ['P1', 'P2']}, 'PatientID takes one value'),
    ('STUDY', {'StudyInstanceUID': '1.2*'}, 'no wildcard in a retrieve: StudyInstanceUID 1.2\\*'),
    ('STUDY', {'StudyInstanceUID': '20200101-20201231'}, 'no range in a retrieve: StudyInstanceUID 20200101'),
    ('STUDY', {'StudyInstanceUID': 'DOE'}, 'not a UID: StudyInstanceUID DOE'),
    ('STUDY', {'StudyInstanceUID': ''}, 'needs StudyInstanceUID'),
    ('STUDY', {'StudyDate': '20200101-20201231'}, 'needs StudyInstanceUID'),
    ('SERIES', {'StudyInstanceUID': [uid(1, 1), uid(1, 2)], 'SeriesInstanceUID': uid(2, 1)},
     'StudyInstanceUID takes one value'),
    ('SERIES', {'StudyInstanceUID': uid(1, 1), 'SeriesInstanceUID': uid(2, 1),
                'SOPInstanceUID': uid(3, 1)}, 'SOPInstanceUID is below the retrieve level'),
])
def test_a_retrieve_refuses_keys_that_are_not_exact(archive, level, keys, reason):
    archive.store(uid(3, 1), uid(1, 1), uid(2, 1))
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    with pytest.raises(qrindex.QueryError, match=reason):
        archive.index.retrieve(query)


def test_a_retrieve_takes_a_list_of_uids_and_ignores_keys_that_are_not_unique(archive):
    for n in (1, 2, 3):
        archive.store(uid(3, n), uid(1, n), uid(2, n))
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = [uid(1, 1), uid(1, 3)]
    query.PatientName = 'NOBODY*'   # not a unique key: it selects nothing
    query.StudyDate = '19000101-19000102'
    paths = archive.index.retrieve(query, 'study')
    assert sorted(pathlib.Path(p).name for p in paths) == [f'{uid(3, 1)}.dcm',
                                                          f'{uid(3, 3)}.dcm']
