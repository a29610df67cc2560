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

def test_universal_matching_is_no_condition():
    assert qrindex.condition('patient.PatientName', 'PN', '') is None
    assert qrindex.condition('patient.PatientName', 'PN', None) is None
    assert qrindex.condition('study.AccessionNumber', 'SH', '*') is None


def test_single_value_matching():
    assert qrindex.condition('study.AccessionNumber', 'SH', 'A1') == (
        'study.AccessionNumber = ?', ['A1'])
    # Person names compare without regard to case; trailing '^' is not significant.
    assert qrindex.condition('patient.PatientName', 'PN', 'Doe^John^') == (
        'patient.PatientName = ? COLLATE NOCASE', ['Doe^John'])


def test_wildcards_become_glob_or_like_with_literals_escaped():
    assert qrindex.condition('series.Modality', 'CS', 'C?') == ('series.Modality GLOB ?',
                                                                ['C?'])
    assert qrindex.condition('study.StudyDescription', 'LO', '[x]*') == (
        'study.StudyDescription GLOB ?', ['[[]x]*'])
    assert qrindex.condition('patient.PatientName', 'PN', 'DO_%*') == (
        "patient.PatientName LIKE ? ESCAPE '\\'", ['DO\\_\\%%'])


def test_ranges_for_dates_and_times():
    # On the range column, where a value that does not parse as a date is NULL.
    assert qrindex.condition('study.StudyDate', 'DA', '20240101-20240131') == (
        "(study.StudyDate_range >= ? AND study.StudyDate_range <= ?)",
        ['20240101', '20240131'])
    assert qrindex.condition('study.StudyDate', 'DA', '2024.01.01-')[1] == ['20240101']
    # An upper time bound covers its whole hour or minute.
    assert qrindex.condition('study.StudyTime', 'TM', '08-09')[1] == ['080000', '095959.999999']
    assert qrindex.condition('study.StudyTime', 'TM', '-1030')[1] == ['103059.999999']


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


def test_index_counts_each_level(archive_index):
    assert archive_index.counts() == {'PATIENT': 3, 'STUDY': 4, 'SERIES': 5, 'IMAGE': 7}


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


def test_index_never_resolves_a_path_outside_the_storage(archive_index):
    assert archive_index.resolve('../../etc/passwd') is None
    assert archive_index.resolve('a/b.dcm') == os.path.join(archive_index.storage_dir, 'a',
                                                            'b.dcm')


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
