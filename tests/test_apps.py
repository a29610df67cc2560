"""The command-line tools (pynetdicom2.apps): keys, the SQLite index and its matching
rules, the archive's storage and storage commitment, and our tools against our own
servers run as subprocesses (exit codes and messages included).

The helpers ``run_app``, ``our_server`` and ``make_archive_files`` are shared with
tests/interop/test_apps_interop.py and tests/test_apps_terminal.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import socket
import sys
import threading
import time
from typing import Iterator, Tuple

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from pynetdicom2.apps import common, filestore, keys, qrindex, qrscp, storescp, storescu
from tests import peers
from tests.peers import describe, free_port, make_ct_file, run_tool

CT = uids.CT_IMAGE_STORAGE
SC = uids.STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS
_BANNER = re.compile(r'listening on \S*:(\d+)')
ROOT = '1.2.826.0.1.3680043.8.498.77'


# -- shared helpers ---------------------------------------------------------------

def run_app(*args, timeout: float = 30):
    """Run ``python -m pynetdicom2 <args>`` to completion (bounded)."""
    return run_tool([sys.executable, '-m', 'pynetdicom2', *map(str, args)], timeout=timeout)


@contextlib.contextmanager
def our_server(tool: str, *args, timeout: float = 15) -> Iterator[Tuple[object, int]]:
    """Run our ``storescp`` / ``qrscp`` on a free port of 127.0.0.1; yield (proc, port).

    The port is read from the banner the tool prints once it listens.
    """
    proc = peers._spawn([sys.executable, '-m', 'pynetdicom2', tool, '--bind', '127.0.0.1',
                         *map(str, args), '0'])
    try:
        out = pathlib.Path(proc.logdir, 'stdout')
        deadline = time.monotonic() + timeout
        port = None
        while port is None:
            found = _BANNER.search(out.read_text(errors='replace'))
            if found:
                port = int(found.group(1))
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'{tool} did not start\n{peers.process_output(proc)}')
            else:
                time.sleep(0.02)
        yield proc, port
    finally:
        peers.stop_process(proc)


def uid(*parts) -> str:
    return '.'.join([ROOT, *map(str, parts)])


# The archive the query tests use: (patient id, name, birth date, study, study date,
# study time, accession, series, modality, instance numbers).
ARCHIVE = [
    ('P1', 'DOE^JOHN', '19700101', 1, '20240110', '101500', 'A1', 1, 'CT', (1, 2)),
    ('P1', 'DOE^JOHN', '19700101', 1, '20240110', '101500', 'A1', 2, 'CT', (3,)),
    ('P1', 'DOE^JOHN', '19700101', 2, '20240220', '083000', 'A2', 3, 'MR', (4,)),
    ('P2', 'DOE^JANE', '19800202', 3, '20240305', '140000', 'A3', 4, 'CT', (5,)),
    ('P3', 'SMITH^ANN', '19900303', 4, '20231231', '235900', 'A4', 5, 'US', (6, 7)),
]


def make_archive_files(directory: pathlib.Path) -> list:
    """Write the ARCHIVE instances as Part-10 files; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for pid, name, birth, study, date, time_, acc, series, modality, numbers in ARCHIVE:
        for number in numbers:
            path = make_ct_file(directory / f'i{number}.dcm', uid(3, number), rows=8, cols=8)
            ds = pydicom.dcmread(path)
            ds.PatientID, ds.PatientName, ds.PatientBirthDate = pid, name, birth
            ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = uid(1, study), date, time_
            ds.AccessionNumber, ds.StudyID = acc, str(study)
            ds.SeriesInstanceUID, ds.Modality, ds.SeriesNumber = uid(2, series), modality, series
            ds.InstanceNumber = number
            ds.save_as(path)
            paths.append(path)
    return paths


def study_uids(*numbers):
    return sorted(uid(1, n) for n in numbers)


def instance_uids(*numbers):
    return sorted(uid(3, n) for n in numbers)


# -- -k keys ------------------------------------------------------------------------

@pytest.mark.unit
def test_keys_take_tags_keywords_paths_and_empty_values():
    ds = keys.build_identifier([
        '(0010,0010)=DOE*', '0010,0020=ID1', '00080052=STUDY', 'StudyDate=20240101-',
        'SeriesNumber=7', 'StudyInstanceUID=1.2\\1.3', 'AccessionNumber',
        'ScheduledProcedureStepSequence[0].Modality=CT',
        'ScheduledProcedureStepSequence[0].ScheduledStationAETitle'])
    assert ds.PatientName == 'DOE*' and ds.PatientID == 'ID1'
    assert ds.QueryRetrieveLevel == 'STUDY' and ds.StudyDate == '20240101-'
    assert ds.SeriesNumber == 7
    assert list(ds.StudyInstanceUID) == ['1.2', '1.3']
    assert ds['AccessionNumber'].VR == 'SH' and ds['AccessionNumber'].is_empty
    item = ds.ScheduledProcedureStepSequence[0]
    assert item.Modality == 'CT' and item['ScheduledStationAETitle'].is_empty


@pytest.mark.unit
@pytest.mark.parametrize('spec, reason', [
    ('NotAnAttribute=1', 'unknown attribute'),
    ('SeriesNumber=seven', 'not a valid IS'),
    ('PatientName[0].PatientID=1', 'not a sequence'),
    ('ScheduledProcedureStepSequence.Modality=CT', 'needs an item index'),
    ('=x', 'names no attribute'),
])
def test_bad_keys_say_why(spec, reason):
    with pytest.raises(keys.BadKey, match=reason):
        keys.build_identifier([spec])


# -- matching: the SQL each rule becomes ----------------------------------------------

@pytest.mark.unit
def test_universal_matching_is_no_condition():
    assert qrindex.condition('patient.PatientName', 'PN', '') is None
    assert qrindex.condition('patient.PatientName', 'PN', None) is None
    assert qrindex.condition('study.AccessionNumber', 'SH', '*') is None


@pytest.mark.unit
def test_single_value_matching():
    assert qrindex.condition('study.AccessionNumber', 'SH', 'A1') == (
        'study.AccessionNumber = ?', ['A1'])
    # Person names compare without regard to case; trailing '^' is not significant.
    assert qrindex.condition('patient.PatientName', 'PN', 'Doe^John^') == (
        'patient.PatientName = ? COLLATE NOCASE', ['Doe^John'])


@pytest.mark.unit
def test_wildcards_become_glob_or_like_with_literals_escaped():
    assert qrindex.condition('series.Modality', 'CS', 'C?') == ('series.Modality GLOB ?',
                                                                ['C?'])
    assert qrindex.condition('study.StudyDescription', 'LO', '[x]*') == (
        'study.StudyDescription GLOB ?', ['[[]x]*'])
    assert qrindex.condition('patient.PatientName', 'PN', 'DO_%*') == (
        "patient.PatientName LIKE ? ESCAPE '\\'", ['DO\\_\\%%'])


@pytest.mark.unit
def test_ranges_for_dates_and_times():
    # On the range column, where a value that does not parse as a date is NULL.
    assert qrindex.condition('study.StudyDate', 'DA', '20240101-20240131') == (
        "(study.StudyDate_range >= ? AND study.StudyDate_range <= ?)",
        ['20240101', '20240131'])
    assert qrindex.condition('study.StudyDate', 'DA', '2024.01.01-')[1] == ['20240101']
    # An upper time bound covers its whole hour or minute.
    assert qrindex.condition('study.StudyTime', 'TM', '08-09')[1] == ['080000', '095959.999999']
    assert qrindex.condition('study.StudyTime', 'TM', '-1030')[1] == ['103059.999999']


@pytest.mark.unit
def test_list_of_uids_is_an_in_clause_and_no_wildcard_applies_to_uids():
    assert qrindex.condition('study.StudyInstanceUID', 'UI', ['1.2', '1.3']) == (
        'study.StudyInstanceUID IN (?, ?)', ['1.2', '1.3'])
    assert qrindex.condition('study.StudyInstanceUID', 'UI', '1.2*') == (
        'study.StudyInstanceUID = ?', ['1.2*'])


# -- the index: queries on a real database --------------------------------------------

@pytest.fixture(scope='module')
def archive_index(tmp_path_factory):
    directory = tmp_path_factory.mktemp('archive')
    paths = make_archive_files(directory)
    index = qrindex.Index(str(directory / 'index.sqlite'), str(directory))
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        index.add(ds, str(path), os.path.getsize(path), str(ds.file_meta.TransferSyntaxUID))
    yield index
    index.close()


def find(index, model='study', **keys_):
    ds = Dataset()
    for keyword, value in keys_.items():
        setattr(ds, keyword, value)
    return index.find(ds, model)


@pytest.mark.unit
def test_index_counts_each_level(archive_index):
    assert archive_index.counts() == {'PATIENT': 3, 'STUDY': 4, 'SERIES': 5, 'IMAGE': 7}


@pytest.mark.unit
@pytest.mark.parametrize('keys_, expected', [
    ({'PatientName': 'DOE*'}, (1, 2, 3)),            # wildcard
    ({'PatientName': 'doe^j?ne'}, (3,)),             # '?' and no regard to case
    ({'PatientName': 'DOE^JOHN'}, (1, 2)),           # single value
    ({'PatientName': ''}, (1, 2, 3, 4)),             # universal
    ({'StudyDate': '20240101-20240228'}, (1, 2)),    # closed range
    ({'StudyDate': '20240301-'}, (3,)),              # open range
    ({'StudyDate': '-20231231'}, (4,)),
    ({'StudyTime': '08-09'}, (2,)),                  # time range, whole hours
    ({'StudyTime': '1015-1400'}, (1, 3)),            # bounds included
    ({'StudyInstanceUID': [uid(1, 1), uid(1, 4)]}, (1, 4)),  # list of UIDs
    ({'ModalitiesInStudy': 'MR'}, (2,)),
    ({'ModalitiesInStudy': ['US', 'MR']}, (2, 4)),
    ({'AccessionNumber': 'A3', 'PatientID': 'P2'}, (3,)),
    ({'AccessionNumber': 'A3', 'PatientID': 'P1'}, ()),
])
def test_study_level_matching(archive_index, keys_, expected):
    matches = find(archive_index, **{'QueryRetrieveLevel': 'STUDY', 'StudyInstanceUID': '',
                                     **keys_})
    assert sorted(m.values['StudyInstanceUID'] for m in matches) == study_uids(*expected)


@pytest.mark.unit
def test_each_level_and_model(archive_index):
    patients = find(archive_index, 'patient', QueryRetrieveLevel='PATIENT', PatientID='')
    assert sorted(m.values['PatientID'] for m in patients) == ['P1', 'P2', 'P3']
    series = find(archive_index, QueryRetrieveLevel='SERIES', StudyInstanceUID=uid(1, 1),
                  SeriesInstanceUID='')
    assert sorted(m.values['SeriesInstanceUID'] for m in series) == [uid(2, 1), uid(2, 2)]
    images = find(archive_index, 'patient', QueryRetrieveLevel='IMAGE', PatientID='P3',
                  SOPInstanceUID='')
    assert sorted(m.values['SOPInstanceUID'] for m in images) == instance_uids(6, 7)
    with pytest.raises(qrindex.QueryError, match='not part of the study root'):
        find(archive_index, 'study', QueryRetrieveLevel='PATIENT')
    with pytest.raises(qrindex.QueryError, match='not part of the patient-study'):
        find(archive_index, 'patient-study', QueryRetrieveLevel='SERIES')
    with pytest.raises(qrindex.QueryError, match='no Query/Retrieve Level'):
        find(archive_index, 'study', PatientName='')


@pytest.mark.unit
def test_responses_carry_requested_keys_counts_and_unique_keys(archive_index):
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.PatientName = 'DOE^JOHN'
    query.StudyDate = ''
    query.ModalitiesInStudy = ''
    query.NumberOfStudyRelatedInstances = ''
    query.NumberOfStudyRelatedSeries = ''
    query.Modality = ''            # a lower level's key: returned empty
    query.PatientAge = ''          # not kept: returned empty
    query.RetrieveAETitle = ''
    matches = archive_index.find(query, 'study')
    got = {m.values['StudyInstanceUID']: qrindex.match_dataset(m, query, 'ARCHIVE')
           for m in matches}
    first = got[uid(1, 1)]
    assert first.QueryRetrieveLevel == 'STUDY'
    assert first.StudyInstanceUID == uid(1, 1) and first.StudyDate == '20240110'
    assert first.ModalitiesInStudy == 'CT'
    assert first.NumberOfStudyRelatedInstances == 3 and first.NumberOfStudyRelatedSeries == 2
    assert first['Modality'].is_empty and first['PatientAge'].is_empty
    assert first.RetrieveAETitle == 'ARCHIVE'
    assert got[uid(1, 2)].NumberOfStudyRelatedInstances == 1


@pytest.mark.unit
def test_names_outside_ascii_match_and_go_back_as_utf8(tmp_path):
    from pynetdicom2.services.queryretrieve import decode_identifier, encode_identifier
    index = qrindex.Index(':memory:', str(tmp_path))
    ds = Dataset()
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.PatientName, ds.PatientID = 'MÜLLER^HANS', 'M1'
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = uid(5, 1), uid(5, 2), \
        uid(5, 3)
    index.add(ds, str(tmp_path / 'm.dcm'))
    query = Dataset()
    query.SpecificCharacterSet = 'ISO_IR 192'
    query.QueryRetrieveLevel = 'PATIENT'
    query.PatientName = 'MÜL*'
    (match,) = index.find(query, 'patient')
    response = qrindex.match_dataset(match, query)
    assert response.SpecificCharacterSet == 'ISO_IR 192'
    raw = encode_identifier(response, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert 'MÜLLER^HANS'.encode('utf-8') in raw
    assert str(decode_identifier(raw, uids.EXPLICIT_VR_LITTLE_ENDIAN).PatientName) == \
        'MÜLLER^HANS'
    index.close()


@pytest.mark.unit
def test_retrieve_needs_the_unique_key_of_its_level(archive_index):
    ds = Dataset()
    ds.QueryRetrieveLevel = 'SERIES'
    ds.StudyInstanceUID = uid(1, 1)
    ds.SeriesInstanceUID = uid(2, 1)
    paths = archive_index.retrieve(ds, 'study')
    assert sorted(pathlib.Path(p).name for p in paths) == ['i1.dcm', 'i2.dcm']
    del ds.SeriesInstanceUID
    with pytest.raises(qrindex.QueryError, match='needs SeriesInstanceUID'):
        archive_index.retrieve(ds, 'study')


@pytest.mark.unit
def test_index_never_resolves_a_path_outside_the_storage(archive_index):
    assert archive_index.resolve('../../etc/passwd') is None
    assert archive_index.resolve('a/b.dcm') == os.path.join(archive_index.storage_dir, 'a',
                                                            'b.dcm')


@pytest.mark.unit
def test_uid_validation_rule():
    assert filestore.uid_problem('1.2.840.10008.1.1') is None
    assert 'invalid' in filestore.uid_problem('../../x')
    assert 'invalid' in filestore.uid_problem('1..2')
    assert 'longer than 64' in filestore.uid_problem('1.' * 40)
    assert filestore.uid_problem('') == 'no UID'


# -- the archive in this process --------------------------------------------------------

@pytest.fixture
def archive(tmp_path):
    storage = tmp_path / 'pacs'
    storage.mkdir()
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    server = qrscp.Archive(str(storage), index, 'ARCHIVE', 0, bind_address='127.0.0.1')
    server.dcm_timeout = 5
    server.artim_timeout = 2
    with server:
        yield server
    index.close()


def archive_remote(server):
    return {'aet': 'ARCHIVE', 'address': '127.0.0.1', 'port': server.local_ae.port}


def test_archive_files_instances_by_study_and_indexes_them(archive, tmp_path):
    paths = make_archive_files(tmp_path / 'src')
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = 5
    with scu.request_association(archive_remote(archive)) as assoc:
        statuses_ = [assoc.get_scu(CT)(str(p), n) for n, p in enumerate(paths, 1)]
    assert all(s.is_success for s in statuses_)
    stored = sorted(pathlib.Path(archive.storage_dir).glob('*/*.dcm'))
    assert sorted(p.relative_to(archive.storage_dir).as_posix() for p in stored) == sorted(
        f'{uid(1, row[3])}/{uid(3, n)}.dcm' for row in ARCHIVE for n in row[9])
    assert archive.index.counts()['IMAGE'] == 7
    original = pydicom.dcmread(paths[0])
    copy = pydicom.dcmread(pathlib.Path(archive.storage_dir, uid(1, 1), f'{uid(3, 1)}.dcm'))
    assert copy.PixelData == original.PixelData and copy.PatientName == 'DOE^JOHN'
    assert not list(pathlib.Path(archive.storage_dir, filestore.INCOMING).iterdir())


@pytest.mark.filterwarnings('ignore:Invalid value for VR UI')
def test_archive_refuses_a_hostile_uid_and_writes_nothing(archive, tmp_path):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'x.dcm', rows=8, cols=8))
    ds.StudyInstanceUID = '../../escaped'
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = 5
    with scu.request_association(archive_remote(archive)) as assoc:
        status = assoc.get_scu(CT)(ds, 1)
    assert int(status) == 0xC000
    assert not list(tmp_path.glob('**/escaped*'))
    assert archive.index.counts()['IMAGE'] == 0
    assert sorted(os.listdir(archive.storage_dir)) == sorted(
        [filestore.INCOMING, 'index.sqlite', 'index.sqlite-lock', 'index.sqlite-shm',
         'index.sqlite-wal'])


def test_archive_commits_what_it_holds(archive, tmp_path):
    path = make_ct_file(tmp_path / 'one.dcm', uid(9, 1), rows=8, cols=8)
    results = []

    class Requester(ae_module.ClientAE):
        def on_commitment_response(self, transaction_uid, success, failure):
            results.append((transaction_uid, success, failure))

    scu = Requester('COMMIT_SCU')
    scu.dcm_timeout = 5
    scu.add_scu(sopclass.storage_scu, [CT])
    scu.add_scu(sopclass.storage_commitment_scu)
    # The report on this association: we propose both roles for it and wait there.
    scu.add_scp(sopclass.StorageCommitment(report_on_same_association=True))
    refs = [(CT, uid(9, 1)), (CT, uid(9, 2)), (uids.MR_IMAGE_STORAGE, uid(9, 1))]
    with scu.request_association(archive_remote(archive), sop_classes=[CT, SC]) as assoc:
        assert assoc.get_scu(CT)(str(path), 1).is_success
        status = assoc.get_scu(SC)(uid(9, 100), refs, 2, wait_for_report=True)
    assert status.is_success
    assert results == [(uid(9, 100), [(CT, uid(9, 1))],
                        [(CT, uid(9, 2), 0x0112), (uids.MR_IMAGE_STORAGE, uid(9, 1), 0x0119)])]


@pytest.mark.unit
def test_reindex_rebuilds_the_index_from_the_files(tmp_path, capsys):
    storage = tmp_path / 'pacs'
    make_archive_files(storage / 'any' / 'where')
    (storage / 'notes.txt').write_text('not DICOM')
    assert qrscp.main(['--storage', str(storage), '--reindex']) == 0
    assert 'indexed 7 instance(s)' in capsys.readouterr().out
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    try:
        assert index.counts() == {'PATIENT': 3, 'STUDY': 4, 'SERIES': 5, 'IMAGE': 7}
        query = Dataset()
        query.QueryRetrieveLevel = 'IMAGE'
        query.SOPInstanceUID = uid(3, 6)
        (match,) = index.find(query, 'study')
        ds = Dataset()
        ds.QueryRetrieveLevel = 'IMAGE'
        ds.SOPInstanceUID = uid(3, 6)
        assert index.retrieve(ds, 'study') == [str(storage / 'any' / 'where' / 'i6.dcm')]
    finally:
        index.close()
    # Run again: the same content, not twice as much.
    assert qrscp.main(['--storage', str(storage), '--reindex', '-q']) == 0
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    assert index.counts()['IMAGE'] == 7
    index.close()


@pytest.mark.unit
def test_qrscp_settings_from_config_file_and_command_line(tmp_path):
    config = tmp_path / 'qrscp.ini'
    config.write_text('[qrscp]\naet = ARCHIVE\nstorage = %s\n\n[move_destinations]\n'
                      'Dest_1 = 10.0.0.5:104\nV6 = [::1]:11113\n' % (tmp_path / 'st'))
    args = qrscp.settings(qrscp.build_parser().parse_args(
        ['--config', str(config), '--move-dest', 'OTHER=host.example:4242']))
    assert args.aet == 'ARCHIVE' and args.storage == str(tmp_path / 'st')
    assert args.database == os.path.join(str(tmp_path / 'st'), 'index.sqlite')
    assert args.destinations == {
        'Dest_1': {'aet': 'Dest_1', 'address': '10.0.0.5', 'port': 104},
        'V6': {'aet': 'V6', 'address': '::1', 'port': 11113},
        'OTHER': {'aet': 'OTHER', 'address': 'host.example', 'port': 4242}}
    with pytest.raises(common.ToolError, match='not AET=HOST:PORT'):
        qrscp.settings(qrscp.build_parser().parse_args(['--move-dest', 'NOPE']))


def test_promiscuous_storescp_takes_a_sop_class_it_does_not_know(tmp_path):
    private_class = '1.2.826.0.1.3680043.8.498.999.1'
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'x.dcm', uid(7, 1), rows=8, cols=8))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = private_class
    accepted = {}
    for promiscuous in (False, True):
        out = tmp_path / f'out{promiscuous}'
        server = storescp.StorageSCP(out, 'STORE_SCP', 0, bind_address='127.0.0.1')
        server.promiscuous = promiscuous
        server.dcm_timeout = 5
        scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [private_class])
        scu.dcm_timeout = 5
        with server, scu.request_association(
                {'aet': 'STORE_SCP', 'address': '127.0.0.1', 'port': server.local_ae.port}
        ) as assoc:
            accepted[promiscuous] = list(assoc.accepted_contexts.values())
            if promiscuous:
                assert assoc.get_scu(private_class)(ds, 1).is_success
    assert accepted[False] == []
    assert [ctx.sop_class for ctx in accepted[True]] == [private_class]
    assert pydicom.dcmread(tmp_path / 'outTrue' / f'{uid(7, 1)}.dcm').SOPClassUID == \
        private_class


def test_echoscu_and_storescp_over_tls(tmp_path, pki):
    with our_server('storescp', '-od', tmp_path, '+tls', pki / 'server.key',
                    pki / 'server.pem', '+cf', pki / 'ca.pem') as (proc, port):
        secure = run_app('echoscu', '+tls', pki / 'client.key', pki / 'client.pem',
                         '+cf', pki / 'ca.pem', '127.0.0.1', port)
        anonymous = run_app('echoscu', '+tla', '+cf', pki / 'ca.pem', '127.0.0.1', port)
        untrusted = run_app('echoscu', '+tla', '+cf', pki / 'rogue.pem', '127.0.0.1', port)
        plain = run_app('echoscu', '-ta', '2', '127.0.0.1', port)
    assert secure.returncode == 0, describe(secure)
    assert anonymous.returncode == 0, describe(anonymous)
    assert untrusted.returncode == common.EXIT_CONNECT, describe(untrusted)
    assert 'TLS handshake' in untrusted.stderr and 'certificate verify failed' in \
        untrusted.stderr
    assert plain.returncode == common.EXIT_ABORTED, describe(plain)


# -- storescu's plan and the progress bar -----------------------------------------

@pytest.mark.unit
def test_storescu_proposes_what_the_files_need_in_at_most_128_contexts():
    jpeg = uids.JPEG_BASELINE_PROCESS_1
    files = [storescu.Instance(f'f{n}', f'1.2.3.{n}', f'1.9.{n}',
                               uids.IMPLICIT_VR_LITTLE_ENDIAN, 10) for n in range(130)]
    files.insert(1, storescu.Instance('j', '1.2.3.0', '1.9.999', jpeg, 10))
    plans = storescu.plan_associations(files)
    assert [len(contexts) for contexts, _ in plans] == [128, 3]
    assert sum(len(batch) for _, batch in plans) == 131
    first = plans[0][0]
    assert list(first) == list(range(1, 256, 2))
    assert first[1].sop_class == '1.2.3.0'
    assert list(first[1].supported_ts) == [uids.IMPLICIT_VR_LITTLE_ENDIAN,
                                           uids.EXPLICIT_VR_LITTLE_ENDIAN]
    assert list(first[3].supported_ts) == [jpeg]  # a compressed file: its own context
    assert [f.path for f in plans[0][1][:3]] == ['f0', 'j', 'f1']
    assert [f.path for f in plans[1][1]] == ['f127', 'f128', 'f129']


@pytest.mark.unit
def test_progress_line_shows_rates_and_is_silent_off_a_terminal():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = common.Progress(4, 4_000_000, stream=stream)
        for _ in range(4):
            bar.advance(1, 1_000_000)
        bar.finish()
    assert pipe.getvalue() == ''
    text = terminal.getvalue()
    assert text.startswith('\r') and text.endswith('\n')
    assert re.search(r'100% \[#+\] 4/4 instances  [\d.]+ instances/s  [\d.]+ MB/s', text)


# -- our tools against our servers (subprocesses) -----------------------------------------

def test_echoscu_exit_codes_and_messages(tmp_path):
    with our_server('storescp', '-od', tmp_path, '-aet', 'STORE_SCP',
                    '--require-called-aet') as (proc, port):
        ok = run_app('echoscu', '-aec', 'STORE_SCP', '127.0.0.1', port)
        assert ok.returncode == 0, describe(ok)
        assert ok.stdout.strip() == (f'C-ECHO to STORE_SCP@127.0.0.1:{port}: (0x0000) '
                                     'Success: Success')
        rejected = run_app('echoscu', '-aec', 'SOMEONE', '127.0.0.1', port)
    assert rejected.returncode == common.EXIT_REJECTED, describe(rejected)
    assert ('association rejected by SOMEONE@127.0.0.1:%d: result 1 (rejected-permanent), '
            'source 1 (DICOM UL service-user), diagnostic 7 (called-AE-title-not-recognized)'
            % port) in rejected.stderr
    refused = run_app('echoscu', '-to', '5', '127.0.0.1', free_port())
    assert refused.returncode == common.EXIT_CONNECT, describe(refused)
    assert 'cannot connect' in refused.stderr and 'refused' in refused.stderr
    usage = run_app('echoscu', '-aet', 'A' * 17, '127.0.0.1', '104')
    assert usage.returncode == common.EXIT_USAGE and 'not an AE title' in usage.stderr


def test_a_timeout_names_the_wait_that_expired():
    # A listener that never answers: the TCP connect succeeds, no A-ASSOCIATE-AC comes.
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(1)
        result = run_app('echoscu', '-ta', '1', '127.0.0.1', silent.getsockname()[1])
    assert result.returncode == common.EXIT_TIMEOUT, describe(result)
    assert 'timeout waiting for the association answer' in result.stderr
    assert '(-ta 1 s)' in result.stderr


def test_our_find_move_get_against_our_qrscp(tmp_path):
    paths = make_archive_files(tmp_path / 'src')
    receive_port = free_port()
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE',
                    '--move-dest', f'MOVESCU=127.0.0.1:{receive_port}') as (proc, port):
        stored = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, tmp_path / 'src')
        assert stored.returncode == 0, describe(stored)
        assert stored.stdout.startswith('sent 7 of 7 instances')

        found = run_app('findscu', '-S', '-aec', 'ARCHIVE', '-k', 'QueryRetrieveLevel=STUDY',
                        '-k', 'PatientName=DOE*', '-k', 'StudyInstanceUID',
                        '-k', 'NumberOfStudyRelatedInstances', '--json', '-X', '-od',
                        tmp_path / 'rsp', '127.0.0.1', port)
        assert found.returncode == 0, describe(found)
        lines = [json.loads(line) for line in found.stdout.splitlines()]
        assert sorted(j['0020000D']['Value'][0] for j in lines) == study_uids(1, 2, 3)
        files = sorted((tmp_path / 'rsp').glob('rsp*.dcm'))
        assert [f.name for f in files] == ['rsp0001.dcm', 'rsp0002.dcm', 'rsp0003.dcm']
        assert pydicom.dcmread(files[0]).StudyInstanceUID in study_uids(1, 2, 3)

        wrong = run_app('findscu', '-S', '-aec', 'ARCHIVE', '-k', 'QueryRetrieveLevel=PATIENT',
                        '127.0.0.1', port)
        assert wrong.returncode == common.EXIT_FAILURE, describe(wrong)
        assert 'C-FIND failed: (0xA900)' in wrong.stderr

        moved = run_app('movescu', '-S', '-aec', 'ARCHIVE', '--port', receive_port,
                        '-od', tmp_path / 'moved', '-k', 'QueryRetrieveLevel=STUDY',
                        '-k', f'StudyInstanceUID={uid(1, 1)}', '127.0.0.1', port)
        assert moved.returncode == 0, describe(moved)
        assert 'completed 3, failed 0' in moved.stdout
        assert sorted(p.name for p in (tmp_path / 'moved').glob('*.dcm')) == [
            f'{u}.dcm' for u in instance_uids(1, 2, 3)]

        unknown = run_app('movescu', '-S', '-aec', 'ARCHIVE', '-aem', 'NOBODY',
                          '-k', 'QueryRetrieveLevel=STUDY', '-k', f'StudyInstanceUID={uid(1, 1)}',
                          '127.0.0.1', port)
        assert unknown.returncode == common.EXIT_FAILURE
        assert '(0xA801) Failure: Move destination unknown' in unknown.stdout

        got = run_app('getscu', '-P', '-aec', 'ARCHIVE', '-od', tmp_path / 'got',
                      '--study-folders', '-k', 'QueryRetrieveLevel=SERIES',
                      '-k', 'PatientID=P3', '-k', f'StudyInstanceUID={uid(1, 4)}',
                      '-k', f'SeriesInstanceUID={uid(2, 5)}', '127.0.0.1', port)
        assert got.returncode == 0, describe(got)
        assert 'received 2 instance(s)' in got.stdout
    received = sorted((tmp_path / 'got' / uid(1, 4)).glob('*.dcm'))
    assert [p.name for p in received] == [f'{u}.dcm' for u in instance_uids(6, 7)]
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in paths}
    for path in received:
        ds = pydicom.dcmread(path)
        assert ds.PixelData == by_uid[ds.SOPInstanceUID].PixelData


def test_legacy_commands_keep_their_options_and_output(tmp_path):
    (tmp_path / 'src').mkdir()
    make_ct_file(tmp_path / 'src' / 'a.dcm', uid(8, 1), rows=8, cols=8)
    (tmp_path / 'src' / 'junk.txt').write_text('x')
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        conn = ['--aet', 'ARCHIVE', '--address', '127.0.0.1', '--port', port]
        verify = run_app('verify', *conn)
        assert verify.returncode == 0, describe(verify)
        assert verify.stdout == 'Verification result (0x0000) Success: Success\n'
        store = run_app('store', '--file_or_dir', tmp_path / 'src', *conn)
        assert store.returncode == 0, describe(store)
        assert store.stdout.splitlines() == [
            'Store result: (0x0000) Success: Success',
            f'Invalid DICOM file {tmp_path / "src" / "junk.txt"}, skipping']
        find = run_app('find', *conn, '--root', 'patient', '--level', 'patient',
                       '--attr', 'PatientName=TEST*', 'PatientID=')
        assert find.returncode == 0, describe(find)
        assert find.stdout.startswith('C-FIND response:\n')
        assert "Patient's Name                      PN: 'TEST^CT'" in find.stdout
        move = run_app('move', *conn, '--attr', f'StudyInstanceUID={uid(8, 2)}',
                       '--dest_aet', 'NOWHERE')
        assert move.returncode == common.EXIT_FAILURE
        assert 'C-MOVE failed: (0xA801)' in move.stderr


def test_top_level_help_version_and_unknown_tool():
    bare = run_app()
    assert bare.returncode == common.EXIT_USAGE and 'qrscp' in bare.stderr
    assert 'verify' in bare.stderr
    version = run_app('--version')
    assert version.returncode == 0 and version.stdout.startswith('pynetdicom2 ')
    assert run_app('nosuchtool').returncode == common.EXIT_USAGE
    tool_version = run_app('storescu', '--version')
    assert tool_version.stdout == version.stdout


# -- DCMTK options (issue 19) ---------------------------------------------------------------

class RecordingPeer(ae_module.AE):
    """Verification, storage and C-FIND SCP noting what its peers bring: the SOP
    Instance UIDs stored, the queries, the user identities, the aborts (by source)."""

    def __init__(self):
        super().__init__('ANY-SCP', 0, bind_address='127.0.0.1')
        for service in (sopclass.verification_scp, sopclass.storage_scp,
                        sopclass.qr_find_scp):
            self.add_scp(service)
        self.dcm_timeout = 30
        self.stored, self.queries, self.identities, self.aborts = [], [], [], []

    def on_user_identity(self, asce, identity):
        self.identities.append((identity.user_identity_type, identity.primary_field,
                                identity.positive_response_req))

    def on_receive_store(self, context, ds):
        if not isinstance(ds, Dataset):   # the received file (store_in_file)
            ds = pydicom.dcmread(ds, force=True, stop_before_pixels=True)
        self.stored.append(str(ds.SOPInstanceUID))
        return 0x0000

    def on_receive_find(self, context, ds):
        self.queries.append(ds)
        return iter(())

    def on_abort(self, asce, exc):
        self.aborts.append(exc.source)

    def wait_for_aborts(self, count: int) -> list:
        """The aborts seen, once ``count`` have come (the server thread notes them after
        the tool has exited) or 30 s have passed."""
        deadline = time.monotonic() + 30
        while len(self.aborts) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.aborts


def test_log_level_takes_dcmtk_names():
    with RecordingPeer() as peer:
        port = peer.local_ae.port
        info = run_app('echoscu', '-ll', 'info', '--abort', '127.0.0.1', port)
        warn = run_app('echoscu', '-ll', 'warn', '--abort', '127.0.0.1', port)
        trace = run_app('echoscu', '-ll', 'trace', '127.0.0.1', port)
    assert info.returncode == 0, describe(info)
    # INFO is DCMTK's -v: the association and its messages (tests/test_logging.py).
    assert info.stderr.splitlines()[0] == 'I: Requesting Association', describe(info)
    assert info.stderr.splitlines()[-2:] == ['I: aborting the association (--abort)',
                                             'I: Aborting Association'], describe(info)
    assert 'D: ' not in info.stderr
    assert warn.returncode == 0 and warn.stderr == '', describe(warn)
    assert trace.returncode == 0 and 'D: ' in trace.stderr, describe(trace)
    assert 'T: ' in trace.stderr and 'Sta6' in trace.stderr, describe(trace)
    wrong = run_app('storescu', '-ll', 'verbose', '127.0.0.1', '104', 'x.dcm')
    assert wrong.returncode == common.EXIT_USAGE
    assert wrong.stderr == (
        "pynetdicom2 storescu: error: argument -ll/--log-level: invalid choice: 'verbose' "
        "(choose from 'fatal', 'error', 'warn', 'info', 'debug', 'trace')\n")


def test_repeat_sends_each_file_and_query_again_and_abort_ends_with_a_abort(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm', uid(9, 1), rows=8, cols=8)
    with RecordingPeer() as peer:
        port = peer.local_ae.port
        stored = run_app('storescu', '--repeat', '3', '-nh', '127.0.0.1', port, ct)
        found = run_app('findscu', '-S', '--repeat', '2', '--abort', '-k',
                        'QueryRetrieveLevel=STUDY', '127.0.0.1', port)
        aborts = peer.wait_for_aborts(1)
    assert stored.returncode == 0, describe(stored)
    assert stored.stdout.startswith('sent 3 of 3 instances')
    assert peer.stored == [uid(9, 1)] * 3
    assert found.returncode == 0, describe(found)
    assert [q.QueryRetrieveLevel for q in peer.queries] == ['STUDY', 'STUDY']
    assert aborts == [0]   # findscu's A-ABORT (source 0: service user); storescu released
    zero = run_app('storescu', '--repeat', '0', '127.0.0.1', port, ct)
    assert zero.returncode == common.EXIT_USAGE
    assert zero.stderr == ('pynetdicom2 storescu: error: argument --repeat: 0: give 1 or '
                           'more\n')


def test_user_identity_from_files_and_the_positive_response(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm', rows=8, cols=8)
    (tmp_path / 'token.jwt').write_text('eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl\n')
    (tmp_path / 'ticket.krb').write_bytes(b'\x01\x02\xff\x00')
    (tmp_path / 'assertion.xml').write_text('<saml:Assertion/>')
    with RecordingPeer() as peer:
        port = peer.local_ae.port
        runs = [run_app('storescu', *flags, '127.0.0.1', port, ct) for flags in (
            ['-usr', 'alice', '-pwd', 'secret'], ['-usr', 'alice', '-pwd', 'secret', '-rsp'],
            ['--jwt', tmp_path / 'token.jwt', '-rsp'], ['-kt', tmp_path / 'ticket.krb'],
            ['--saml', tmp_path / 'assertion.xml'])]
    for result in runs:
        assert result.returncode == 0, describe(result)
    # No positive response is asked for without -rsp, as DCMTK's tools (PS3.7 D.3.3.7.1).
    assert peer.identities == [(2, 'alice', 0), (2, 'alice', 1),
                               (5, 'eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl', 1),
                               (3, b'\x01\x02\xff\x00', 0), (4, '<saml:Assertion/>', 0)]
    for flags, message in [
            (['-rsp'], '-rsp needs a user identity (-usr, -kt, --saml or --jwt)'),
            (['-usr', 'a', '--jwt', tmp_path / 'token.jwt'],
             'one user identity at a time: -usr and --jwt given'),
            (['--saml', tmp_path / 'none.xml'],
             f'--saml: cannot read {tmp_path / "none.xml"}: No such file or directory')]:
        result = run_app('storescu', *flags, '127.0.0.1', free_port(), ct)
        assert result.returncode == common.EXIT_USAGE, describe(result)
        assert result.stderr == f'pynetdicom2 storescu: error: {message}\n'


class PduRecorder:
    """A relay between one requester and a server that notes the type and PDU length
    of every PDU the requester sends (PS3.8 9.3.1: type, reserved, 4-byte length of
    what follows)."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.pdus = []
        self.done = threading.Event()
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self) -> None:
        self.listener.settimeout(30)
        try:
            near, _ = self.listener.accept()
        except OSError:
            return
        far = socket.create_connection(('127.0.0.1', self.server_port), timeout=30)
        near.settimeout(30)
        back = threading.Thread(target=self._pump, args=(far, near, None), daemon=True)
        back.start()
        self._pump(near, far, bytearray())
        back.join(30)
        near.close()
        far.close()
        self.done.set()

    def _pump(self, source, sink, parse) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
                if parse is not None:
                    parse += data
                    while len(parse) >= 6:
                        length = int.from_bytes(parse[2:6], 'big')
                        if len(parse) < 6 + length:
                            break
                        self.pdus.append((parse[0], length))
                        del parse[:6 + length]
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_max_send_pdu_caps_what_storescu_sends(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm', rows=64, cols=64)   # 8 KiB of pixel data
    sizes = {}
    with RecordingPeer() as peer:       # it takes PDUs of 64 KiB
        for flags in ([], ['--max-send-pdu', '4096']):
            relay = PduRecorder(peer.local_ae.port)
            try:
                result = run_app('storescu', *flags, '127.0.0.1', relay.port, ct)
                assert relay.done.wait(30)
            finally:
                relay.close()
            assert result.returncode == 0, describe(result)
            sizes[bool(flags)] = [size for kind, size in relay.pdus if kind == 0x04]
    # The limit is on the PDU length, the variable field (PS3.8 D.1.1).
    assert max(sizes[False]) > 4096              # one P-DATA-TF for the data set
    assert max(sizes[True]) == 4096 and len(sizes[True]) >= 3
    assert peer.stored == [str(pydicom.dcmread(ct).SOPInstanceUID)] * 2
    small = run_app('storescu', '--max-send-pdu', '1024', '127.0.0.1', '104', ct)
    assert small.returncode == common.EXIT_USAGE
    assert small.stderr == ('pynetdicom2 storescu: error: argument --max-send-pdu: max PDU '
                            'length 1024 is not 0 (unlimited) or within 4096..4294967295\n')


def _study_files(directory: pathlib.Path, study: int, count: int, name='DOE^JOHN') -> list:
    """``count`` CT files of study ``uid(10, study)`` (Patient's Name ``name``)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(1, count + 1):
        path = make_ct_file(directory / f's{study}i{n}.dcm', uid(11, study, n), rows=8, cols=8)
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = 'ISO_IR 192'   # UTF-8, for the names outside ASCII
        ds.StudyInstanceUID, ds.PatientName, ds.Modality = uid(10, study), name, 'CT'
        ds.save_as(path)
        paths.append(path)
    return paths


def _tree(root: pathlib.Path) -> list:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*')
                  if p.is_file() and '.incoming' not in p.parts)


def test_storescp_sorts_into_folders_and_names_files_as_dcmtk(tmp_path):
    first = _study_files(tmp_path / 'src', 1, 2, name='Müller^José')
    again = first[0]
    runs = {
        'su': ['-su', 'PRE', '+uf', '-fe', '.DCM'],
        'ss': ['-ss', 'SCAN'],
        'sp': ['-sp', '-tn'],
    }
    for key, flags in runs.items():
        with our_server('storescp', '-od', tmp_path / key, *flags) as (proc, port):
            sent = run_app('storescu', '127.0.0.1', port, *first, again)
            assert sent.returncode == 0, describe(sent)
    study, one, two = uid(10, 1), uid(11, 1, 1), uid(11, 1, 2)
    # -su PRE: PRE_<StudyInstanceUID>; +uf: the copy received again gets _1; -fe .DCM.
    assert _tree(tmp_path / 'su') == [f'PRE_{study}/{one}.DCM', f'PRE_{study}/{one}_1.DCM',
                                      f'PRE_{study}/{two}.DCM']
    # -ss SCAN: SCAN_<date>_<time> of the study's first instance; a copy replaces.
    names = _tree(tmp_path / 'ss')
    assert [n.split('/')[1] for n in names] == [f'{one}.dcm', f'{two}.dcm']
    assert re.fullmatch(r'SCAN_\d{8}_\d{9}', names[0].split('/')[0]), names
    # -sp: the name in ASCII; -tn: <YYYYMMDDHHMMSSPPP>.<Modality>, numbered past the first.
    names = _tree(tmp_path / 'sp')
    assert len(names) == 3 and len({n.split('/')[0] for n in names}) == 1, names
    assert re.fullmatch(r'Muller_Jose_\d{8}_\d{9}', names[0].split('/')[0]), names
    for name in names:
        assert re.fullmatch(r'\d{17}(_\d+)?\.CT\.dcm', name.split('/')[1]), names


def test_storescp_runs_commands_on_reception_and_at_the_end_of_a_study(tmp_path):
    log = tmp_path / 'log.txt'
    study_a = _study_files(tmp_path / 'src', 1, 2)
    study_b = _study_files(tmp_path / 'src', 2, 1)
    with our_server('storescp', '-aet', 'OUR_SCP', '-od', tmp_path / 'out', '-ss', 'SCAN',
                    '-rns', '-xs', '-xcr', f'echo REC #f #a #c #r >> {log}',
                    '-xcs', f'echo EOS #a; ls #p >> {log}') as (proc, port):
        # A calling AE title with shell syntax in it: the placeholders are quoted.
        first = run_app('storescu', '-aet', 'MOD;false', '-aec', 'OUR_SCP', '127.0.0.1', port,
                        *study_a)
        # An instance of another study ends the first (its association has ended).
        second = run_app('storescu', '-aec', 'OUR_SCP', '127.0.0.1', port, *study_b)
        assert first.returncode == 0 and second.returncode == 0, describe(first)
        lines = log.read_text().splitlines()
    assert lines == [
        f'REC {uid(11, 1, 1)}.dcm MOD;false OUR_SCP 127.0.0.1',
        f'REC {uid(11, 1, 2)}.dcm MOD;false OUR_SCP 127.0.0.1',
        'CT000001', 'CT000002',      # renamed (-rns) before the command ran
        f'REC {uid(11, 2, 1)}.dcm STORESCU OUR_SCP 127.0.0.1']
    # The second study is still open: no end without a timeout or another study.
    folders = sorted((tmp_path / 'out').glob('SCAN_*'))
    assert [sorted(p.name for p in f.iterdir()) for f in folders] == [
        ['CT000001', 'CT000002'], [f'{uid(11, 2, 1)}.dcm']]


def test_storescp_ends_a_study_after_the_eostudy_timeout(tmp_path):
    log = tmp_path / 'log.txt'
    study = _study_files(tmp_path / 'src', 3, 1)
    with our_server('storescp', '-od', tmp_path / 'out', '-su', '', '-tos', '1',
                    '-xcs', f'echo EOS #p >> {log}') as (proc, port):
        sent = run_app('storescu', '127.0.0.1', port, *study)
        assert sent.returncode == 0, describe(sent)
        deadline = time.monotonic() + 30     # the command runs in the background
        while not (log.exists() and log.read_text().endswith('\n')):
            assert time.monotonic() < deadline, 'no end of study within 30 s'
            time.sleep(0.05)
    assert log.read_text() == f'EOS {tmp_path / "out" / uid(10, 3)}\n'


@pytest.mark.parametrize('flags, message', [
    (['-rns'], '--rename-on-eostudy needs a folder per study: -ss, -su, -sp or '
     '--study-folders'),
    (['-ss', 'A', '-su', 'B'], 'one way of sorting into folders at a time: -ss and -su given'),
    (['-ss', 'A', '--fork'], '-ss needs one process: not with --workers or --fork'),
    (['+ac'], '+ac (host access control by TCP wrapper rules) is not supported: '
     '--allow-network/--deny-network limit the peers by address, --allow-calling by AE '
     'title'),
    (['-ss', '../up'], "argument -ss/--sort-conc-studies: '../up' cannot start a folder "
     'name'),
])
def test_storescp_refuses_dcmtk_options_that_cannot_work_together(tmp_path, flags, message):
    result = run_app('storescp', '-od', tmp_path / 'out', *flags, '--bind', '127.0.0.1', '0')
    assert result.returncode == common.EXIT_USAGE, describe(result)
    assert result.stderr == f'pynetdicom2 storescp: error: {message}\n'
    assert not (tmp_path / 'out').exists()


def test_storescu_sends_the_files_a_dicomdir_references_not_the_dicomdir(tmp_path):
    from pydicom.fileset import FileSet
    files = _study_files(tmp_path / 'src', 4, 2)
    media = tmp_path / 'media'
    fileset = FileSet()
    for path in files:
        fileset.add(path)
    fileset.write(media)            # DICOMDIR and PT000000/ST000000/SE000000/IM00000n
    with RecordingPeer() as peer:
        port = peer.local_ae.port
        named = run_app('storescu', '127.0.0.1', port, media / 'DICOMDIR')
        scanned = run_app('storescu', '127.0.0.1', port, media)
    for result in (named, scanned):
        assert result.returncode == 0, describe(result)
        # Each referenced file once, though the scan of the folder finds it too.
        assert result.stdout.startswith('sent 2 of 2 instances'), describe(result)
    assert sorted(peer.stored) == sorted([uid(11, 4, 1), uid(11, 4, 2)] * 2)


class MoveSource(ae_module.AE):
    """A C-MOVE SCP sending ``datasets`` to a destination AE in this process."""

    def __init__(self, datasets, destination_port: int):
        super().__init__('SOURCE', 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.qr_move_scp)
        self.add_scu(sopclass.storage_scu, [CT])
        self.dcm_timeout = 30
        self.datasets, self.destination_port = datasets, destination_port

    def on_receive_move(self, context, ds, destination):
        return ({'aet': destination, 'address': '127.0.0.1', 'port': self.destination_port},
                len(self.datasets), iter(self.datasets))


class SlowDestination(RecordingPeer):
    """Takes its time over every C-STORE but the first: a C-CANCEL sent after the
    first pending response arrives while the move is still under way."""

    def on_receive_store(self, context, ds):
        if self.stored:
            time.sleep(0.5)
        return super().on_receive_store(context, ds)


def test_movescu_cancel_stops_the_move_and_shows_the_final_response(tmp_path):
    datasets = [pydicom.dcmread(p) for p in _study_files(tmp_path / 'src', 5, 4)]
    query = ['-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', f'StudyInstanceUID={uid(10, 5)}']
    with SlowDestination() as destination:
        with MoveSource(datasets, destination.local_ae.port) as source:
            moved = run_app('movescu', *query, '--cancel', '1', '-aem', 'DEST', '127.0.0.1',
                            source.local_ae.port)
    assert moved.returncode == 0, describe(moved)      # cancelled, as asked
    found = re.fullmatch(r'C-MOVE to DEST: \(0xFE00\) Cancel: [^;]*; completed (\d), failed '
                         r'0, warning 0\n', moved.stdout)
    assert found and int(found.group(1)) < 4, describe(moved)
    assert len(destination.stored) == int(found.group(1))


def test_getscu_and_movescu_ignore_receive_but_keep_nothing(tmp_path):
    files = _study_files(tmp_path / 'src', 6, 2)
    query = ['-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', f'StudyInstanceUID={uid(10, 6)}']
    receive_port = free_port()
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE',
                    '--move-dest', f'MOVESCU=127.0.0.1:{receive_port}') as (proc, port):
        stored = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, *files)
        assert stored.returncode == 0, describe(stored)
        got = run_app('getscu', *query, '--ignore', '-aec', 'ARCHIVE', '-od', tmp_path / 'got',
                      '127.0.0.1', port)
        moved = run_app('movescu', *query, '--ignore', '+P', receive_port, '-aec', 'ARCHIVE',
                        '-od', tmp_path / 'moved', '127.0.0.1', port)
        alone = run_app('movescu', *query, '--ignore', '-aec', 'ARCHIVE', '127.0.0.1', port)
    assert got.returncode == 0, describe(got)
    assert got.stdout == ('C-GET: (0x0000) Success: Sub-operations complete - no failures or '
                          'warnings; received 2 instance(s) and kept none (--ignore)\n')
    assert not (tmp_path / 'got').exists()
    assert moved.returncode == 0, describe(moved)
    assert 'completed 2, failed 0, warning 0' in moved.stdout
    assert list((tmp_path / 'moved').rglob('*.dcm')) == []
    assert alone.returncode == common.EXIT_USAGE
    assert alone.stderr == ('pynetdicom2 movescu: error: --ignore needs +P: without it '
                            'movescu receives nothing\n')
