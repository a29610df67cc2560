"""The qrscp archive (pynetdicom2.apps.qrscp) driven over the network, as peers see it:
re-parenting refused with 0xC000 and an Error Comment while every query answers as
before, a re-stored SOP Instance UID replacing file and row (also from 8 associations
at once, round after round), values that do not parse stored and answered verbatim at
every level, retrieves with wildcard or range keys refused, and a qrscp killed with
SIGKILL in the middle of a batch starting again clean.

Peers: a raw DIMSE peer built on the library (to read Error Comments), and our
``storescu``, ``findscu``, ``getscu`` and ``movescu`` tools as subprocesses. DCMTK's
tools against qrscp are in tests/interop/test_qrscp_interop.py.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import sys
import threading
import time

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, sopclass, uids
from pynetdicom2.apps import qrindex, qrscp
from pynetdicom2.services.queryretrieve import decode_identifier, encode_identifier
from tests import peers
from tests.peers import describe, make_ct_file
from tests.test_apps import our_server, run_app
from tests.test_qrindex import (
    BAD_VALUES, instance_file, raw_value, read_index, uid, written_as,
)

pytestmark = pytest.mark.filterwarnings('ignore:Invalid value for VR')

CT = uids.CT_IMAGE_STORAGE
STUDY_FIND = uids.STUDY_ROOT_FIND_SOP_CLASS
PATIENT_FIND = uids.PATIENT_ROOT_FIND_SOP_CLASS
PATIENT_GET = uids.PATIENT_ROOT_GET_SOP_CLASS
STUDY_GET = uids.STUDY_ROOT_GET_SOP_CLASS
STUDY_MOVE = uids.STUDY_ROOT_MOVE_SOP_CLASS
PATIENT_MOVE = uids.PATIENT_ROOT_MOVE_SOP_CLASS
TIMEOUT = 10


def start_archive(storage: pathlib.Path) -> qrscp.Archive:
    storage.mkdir(parents=True, exist_ok=True)
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    server = qrscp.Archive(str(storage), index, 'ARCHIVE', 0, bind_address='127.0.0.1')
    server.dcm_timeout = TIMEOUT
    server.artim_timeout = TIMEOUT
    return server


@pytest.fixture
def archive(tmp_path):
    server = start_archive(tmp_path / 'pacs')
    with server:
        yield server
    server.index.close()


def remote(server) -> dict:
    return {'aet': 'ARCHIVE', 'address': '127.0.0.1', 'port': server.local_ae.port}


SOP_CLASSES = [CT, STUDY_FIND, PATIENT_FIND, PATIENT_MOVE, STUDY_MOVE, PATIENT_GET, STUDY_GET]


def connect(server):
    """An association with the archive for CT storage and every Q/R model we use."""
    return client().request_association(remote(server), sop_classes=SOP_CLASSES)


def client(*sop_classes) -> ae_module.ClientAE:
    scu = ae_module.ClientAE('SCU')
    scu.dcm_timeout = TIMEOUT
    scu.add_scu(sopclass.storage_scu, [CT])
    for sop_class in (STUDY_FIND, PATIENT_FIND):
        scu.add_scu(sopclass.qr_find_scu, [sop_class])
    for sop_class in (PATIENT_MOVE, STUDY_MOVE):
        scu.add_scu(sopclass.qr_move_scu, [sop_class])
    for sop_class in (PATIENT_GET, STUDY_GET):
        scu.add_scu(sopclass.qr_get_scu, [sop_class])
    scu.add_scp(sopclass.storage_scp)
    return scu


def store(assoc, ds: Dataset, msg_id: int = 1):
    """C-STORE ``ds`` by hand: the C-STORE-RSP (status and Error Comment to read)."""
    ctx = assoc.context_for(CT)
    rq = dimse.CStoreRQMessage()
    rq.message_id = msg_id
    rq.affected_sop_class_uid = CT
    rq.affected_sop_instance_uid = ds.SOPInstanceUID
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = encode_identifier(ds, ctx.supported_ts)
    assoc.send(rq, ctx.id)
    rsp, _ = assoc.receive()
    assert isinstance(rsp, dimse.CStoreRSPMessage)
    return rsp


def retrieve(assoc, rq, sop_class: str, identifier: Dataset, msg_id: int = 1):
    """C-MOVE / C-GET by hand: every message the archive answers with, to the final."""
    ctx = assoc.context_for(sop_class)
    rq.message_id = msg_id
    rq.sop_class_uid = sop_class
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = encode_identifier(identifier, ctx.supported_ts)
    assoc.send(rq, ctx.id)
    received = []
    for _ in range(100):
        msg, _ = assoc.receive()
        received.append(msg)
        if not isinstance(msg, dimse.CStoreRQMessage) and msg.status != 0xFF00:
            return received
    raise AssertionError('no final response in 100 messages')


def instance(tmp_path, sop, study, series, **kwargs) -> Dataset:
    return pydicom.dcmread(instance_file(tmp_path / f'{sop}.src', sop, study, series,
                                         **kwargs))


def query(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def find(assoc, identifier: Dataset, sop_class: str = PATIENT_FIND) -> list:
    return [ds for ds, status in assoc.get_scu(sop_class)(identifier, 1) if ds is not None
            and status.is_pending]


def snapshot(assoc) -> dict:
    """What a C-FIND at every level answers, every attribute the index keeps asked."""
    answers = {}
    for level in qrindex.LEVELS:
        keys = {kw: '' for lv in qrindex.LEVELS[:qrindex.LEVELS.index(level) + 1]
                for kw, _ in qrindex.ATTRIBUTES[lv]}
        answers[level] = sorted(str(ds) for ds in find(assoc, query(level, **keys)))
    return answers


def stored_files(server) -> list:
    return sorted(p.relative_to(server.storage_dir).as_posix()
                  for p in pathlib.Path(server.storage_dir).rglob('*')
                  if p.is_file() and not p.name.startswith(('index.sqlite', '.qrscp')))


def refusals(caplog) -> list:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == qrscp.logger.name]


# -- re-parenting --------------------------------------------------------------------------

def test_an_instance_that_would_reparent_a_study_or_series_is_refused(archive, tmp_path,
                                                                      caplog):
    caplog.set_level(logging.WARNING)
    with connect(archive) as assoc:
        first = store(assoc, instance(tmp_path, uid(3, 1), uid(1, 1), uid(2, 1),
                                      patient_id='P1', name='DOE^JOHN'), 1)
        assert first.status == 0x0000
        before, files = snapshot(assoc), stored_files(archive)
        other_patient = store(assoc, instance(tmp_path, uid(3, 2), uid(1, 1), uid(2, 2),
                                              patient_id='P2', name='ROE^JANE'), 2)
        other_study = store(assoc, instance(tmp_path, uid(3, 3), uid(1, 2), uid(2, 1),
                                            patient_id='P1'), 3)
        after = snapshot(assoc)
    assert (other_patient.status, other_patient.error_comment) == (
        0xC000, 'study already belongs to Patient ID P1, not P2')
    assert (other_study.status, other_study.error_comment) == (
        0xC000, 'Series Instance UID already belongs to another study')
    assert after == before
    assert stored_files(archive) == files == [f'{uid(1, 1)}/{uid(3, 1)}.dcm']
    logged = refusals(caplog)
    assert len(logged) == 2 and all('from SCU@127.0.0.1:' in line for line in logged)
    assert f'study {uid(1, 1)} belongs to patient P1' in logged[0]
    assert f'series {uid(2, 1)} belongs to study {uid(1, 1)}' in logged[1]


def test_our_storescu_cannot_reparent_and_findscu_shows_the_original(tmp_path):
    (tmp_path / 'first').mkdir()
    (tmp_path / 'second').mkdir()
    instance_file(tmp_path / 'first' / 'a.dcm', uid(3, 1), uid(1, 1), uid(2, 1),
                  patient_id='P1', name='DOE^JOHN')
    instance_file(tmp_path / 'second' / 'b.dcm', uid(3, 2), uid(1, 1), uid(2, 9),
                  patient_id='P2', name='ROE^JANE')
    instance_file(tmp_path / 'second' / 'c.dcm', uid(3, 3), uid(1, 7), uid(2, 1),
                  patient_id='P1', name='DOE^JOHN')
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        ok = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, tmp_path / 'first')
        refused = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port,
                          tmp_path / 'second')
        found = run_app('findscu', '-P', '-aec', 'ARCHIVE', '-k', 'QueryRetrieveLevel=IMAGE',
                        '-k', 'PatientID', '-k', 'PatientName', '-k', 'StudyInstanceUID',
                        '-k', 'SeriesInstanceUID', '-k', 'SOPInstanceUID', '--json',
                        '127.0.0.1', port)
        log = peers.process_output(proc)
    assert ok.returncode == 0, describe(ok)
    assert refused.returncode == 1, describe(refused)
    assert 'sent 0 of 2 instances' in refused.stdout and '2 failed' in refused.stdout
    assert found.returncode == 0, describe(found)
    (match,) = [json.loads(line) for line in found.stdout.splitlines()]
    assert (match['00100020']['Value'], match['00100010']['Value'][0]['Alphabetic'],
            match['0020000D']['Value'], match['0020000E']['Value']) == (
        ['P1'], 'DOE^JOHN', [uid(1, 1)], [uid(2, 1)])
    assert log.count('refused') >= 2 and 'STORESCU@127.0.0.1' in log


# -- one SOP Instance UID, one file -----------------------------------------------------------

def test_a_restored_instance_replaces_the_old_and_reindex_cannot_bring_it_back(tmp_path):
    server = start_archive(tmp_path / 'pacs')
    with server, connect(server) as assoc:
        first = store(assoc, instance(tmp_path, uid(3, 1), uid(1, 1), uid(2, 1),
                                      InstanceNumber='1', name='FIRST^VERSION'), 1)
        second = store(assoc, instance(tmp_path, uid(3, 1), uid(1, 2), uid(2, 2),
                                       InstanceNumber='2', name='SECOND^VERSION'), 2)
        (image,) = find(assoc, query('IMAGE', SOPInstanceUID=uid(3, 1), StudyInstanceUID='',
                                     PatientName='', InstanceNumber=''))
        studies = find(assoc, query('STUDY', StudyInstanceUID=''))
    server.index.close()
    assert (first.status, second.status) == (0, 0)
    assert stored_files(server) == [f'{uid(1, 2)}/{uid(3, 1)}.dcm']
    assert (image.StudyInstanceUID, str(image.PatientName), image.InstanceNumber) == (
        uid(1, 2), 'SECOND^VERSION', 2)
    assert [ds.StudyInstanceUID for ds in studies] == [uid(1, 2)]
    assert qrscp.main(['--storage', str(tmp_path / 'pacs'), '--reindex', '-q']) == 0
    index = qrindex.Index(str(tmp_path / 'pacs' / 'index.sqlite'), str(tmp_path / 'pacs'))
    try:
        assert index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 1}
        assert index.instance(uid(3, 1))[1] == str(tmp_path / 'pacs' / uid(1, 2) /
                                                   f'{uid(3, 1)}.dcm')
    finally:
        index.close()


def test_concurrent_stores_of_one_uid_leave_file_and_index_in_agreement(archive, tmp_path):
    threads_count, rounds = 8, 5
    sop = uid(3, 500)
    # Two places for the instance, so that a replacement also moves the file.
    places = [(uid(1, 500), uid(2, 500)), (uid(1, 501), uid(2, 501))]
    versions = {}
    for thread in range(threads_count):
        for round_ in range(rounds):
            study, series = places[(thread + round_) % 2]
            folder = tmp_path / f'v{thread}-{round_}'
            folder.mkdir()
            versions[thread, round_] = instance(
                folder, sop, study, series, patient_id='P500',
                name=f'THREAD{thread}^ROUND{round_}', InstanceNumber=thread * 100 + round_)
    results = {}
    for round_ in range(rounds):
        barrier = threading.Barrier(threads_count, timeout=30)

        def send(thread):
            with connect(archive) as assoc:
                barrier.wait()
                results[thread, round_] = store(assoc, versions[thread, round_]).status

        workers = [threading.Thread(target=send, args=(n,)) for n in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers)
        files = [p for p in pathlib.Path(archive.storage_dir).rglob('*.dcm')]
        assert len(files) == 1, files
        assert not list(pathlib.Path(archive.storage_dir).rglob('*.part'))
        on_disk = pydicom.dcmread(files[0])
        sent_now = {int(versions[t, round_].InstanceNumber) for t in range(threads_count)}
        assert on_disk.SOPInstanceUID == sop and on_disk.InstanceNumber in sent_now
        assert archive.index.instance(sop)[1] == str(files[0])
        with connect(archive) as assoc:
            (image,) = find(assoc, query('IMAGE', SOPInstanceUID=sop, PatientName='',
                                         StudyInstanceUID='', SeriesInstanceUID='',
                                         InstanceNumber=''))
        assert (image.InstanceNumber, str(image.PatientName), image.StudyInstanceUID,
                image.SeriesInstanceUID) == (
            on_disk.InstanceNumber, str(on_disk.PatientName), on_disk.StudyInstanceUID,
            on_disk.SeriesInstanceUID)
        assert archive.index.counts() == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 1, 'IMAGE': 1}
    assert set(results.values()) == {0x0000} and len(results) == threads_count * rounds


# -- values that do not parse as their VR -------------------------------------------------

@pytest.mark.parametrize('level', qrindex.LEVELS)
def test_bad_values_are_stored_and_answered_verbatim_at_every_level(archive, tmp_path, level):
    # Files, sent as they are (the library's C-STORE SCU sends a file's bytes).
    odd = instance_file(tmp_path / 'odd.dcm', uid(3, 1), uid(1, 1), uid(2, 1),
                        patient_id='ODD', **{kw: text for kw, (vr, text) in BAD_VALUES.items()})
    good = instance_file(tmp_path / 'good.dcm', uid(3, 2), uid(1, 2), uid(2, 2),
                         patient_id='GOOD', StudyDate='20200315', StudyTime='101500',
                         SeriesNumber='7', InstanceNumber='3', PatientWeight='70.5')
    depth = qrindex.LEVELS.index(level)
    asked = [kw for kw in BAD_VALUES
             if qrindex.LEVELS.index(qrindex.COLUMNS[kw][0]) <= depth]
    with connect(archive) as assoc:
        statuses = [int(assoc.get_scu(CT)(str(path), n)) for n, path in ((1, odd), (2, good))]
        everything = find(assoc, query(level, PatientID='', **{kw: '' for kw in asked}))
        exact = {kw: find(assoc, query(level, PatientID='', **{
            kw: written_as(BAD_VALUES[kw][0], BAD_VALUES[kw][1])}))
            for kw in asked if '-' not in BAD_VALUES[kw][1]}
        ranges = {kw: find(assoc, query(level, PatientID='', **{
            kw: '19000101-20991231' if BAD_VALUES[kw][0] == 'DA' else '000000-235959'}))
            for kw in asked if BAD_VALUES[kw][0] in ('DA', 'TM')}
    assert statuses == [0, 0]
    by_patient = {str(ds.PatientID): ds for ds in everything}
    assert sorted(by_patient) == ['GOOD', 'ODD']
    for keyword in asked:
        assert raw_value(by_patient['ODD'], keyword) == BAD_VALUES[keyword][1], keyword
    for keyword, found in exact.items():
        assert [str(ds.PatientID) for ds in found] == ['ODD'], keyword
    for keyword, found in ranges.items():
        assert [str(ds.PatientID) for ds in found] == ['GOOD'], keyword
    # What is on disk is what was sent.
    path = pathlib.Path(archive.storage_dir, uid(1, 1), f'{uid(3, 1)}.dcm')
    for keyword, (vr, text) in BAD_VALUES.items():
        assert raw_value(pydicom.dcmread(path), keyword) == text


# -- retrieves name what they retrieve --------------------------------------------------------

@pytest.mark.parametrize('rq_class, sop_class, keys, comment', [
    (dimse.CGetRQMessage, PATIENT_GET, {'QueryRetrieveLevel': 'PATIENT', 'PatientID': '*'},
     'no wildcard in a retrieve: PatientID *'),
    (dimse.CGetRQMessage, STUDY_GET, {'QueryRetrieveLevel': 'STUDY',
                                      'StudyInstanceUID': '1.2*'},
     'no wildcard in a retrieve: StudyInstanceUID 1.2*'),
    (dimse.CMoveRQMessage, PATIENT_MOVE, {'QueryRetrieveLevel': 'PATIENT',
                                          'PatientID': 'PAT*'},
     'no wildcard in a retrieve: PatientID PAT*'),
    (dimse.CMoveRQMessage, STUDY_MOVE, {'QueryRetrieveLevel': 'STUDY',
                                        'StudyInstanceUID': '20240101-20241231'},
     'no range in a retrieve: StudyInstanceUID 20240101-20241231'),
    # Cut after a whole word to the 64 characters of LO: the UID goes, not the reason.
    (dimse.CMoveRQMessage, STUDY_MOVE, {'QueryRetrieveLevel': 'SERIES',
                                        'StudyInstanceUID': uid(1, 1),
                                        'SeriesInstanceUID': uid(2, 1) + '.*'},
     'no wildcard in a retrieve: SeriesInstanceUID...'),
    (dimse.CGetRQMessage, STUDY_GET, {'QueryRetrieveLevel': 'STUDY', 'PatientName': 'DOE*'},
     'a retrieve at level STUDY needs StudyInstanceUID'),
])
def test_a_retrieve_with_a_wildcard_or_range_key_is_refused(tmp_path, caplog, rq_class,
                                                            sop_class, keys, comment):
    caplog.set_level(logging.WARNING)
    server = start_archive(tmp_path / 'pacs')
    destination = ae_module.StorageAE(str(tmp_path / 'dest'), 'DEST', 0,
                                      bind_address='127.0.0.1')
    with server, destination:
        server.move_destinations['DEST'] = {'aet': 'DEST', 'address': '127.0.0.1',
                                            'port': destination.local_ae.port}
        with connect(server) as assoc:
            for n in (1, 2):
                assert store(assoc, instance(tmp_path, uid(3, n), uid(1, n), uid(2, n),
                                             patient_id='PAT1'), n).status == 0
            rq = rq_class()
            if rq_class is dimse.CMoveRQMessage:
                rq.move_destination = 'DEST'
            level = keys.pop('QueryRetrieveLevel')
            answers = retrieve(assoc, rq, sop_class, query(level, **keys), 5)
            # The association goes on: an exact retrieve works.
            got = assoc.get_scu(STUDY_GET)(query('STUDY', StudyInstanceUID=uid(1, 1)), 6)
            received = [data for _, data in got]
    server.index.close()
    (final,) = answers  # no C-STORE, no pending response: the refusal alone
    assert (final.status, final.error_comment) == (0xC000, comment)
    assert len(comment) <= 64
    assert len(received) == 1
    assert not (tmp_path / 'dest').exists() or not list((tmp_path / 'dest').iterdir())
    logged = refusals(caplog)
    assert len(logged) == 1 and 'from SCU@127.0.0.1:' in logged[0]
    assert ('C-GET' if rq_class is dimse.CGetRQMessage else 'C-MOVE') in logged[0]


def test_a_find_at_a_level_the_model_lacks_is_refused_with_a900_and_a_comment(archive,
                                                                           caplog):
    caplog.set_level(logging.WARNING)
    with connect(archive) as assoc:
        ctx = assoc.context_for(STUDY_FIND)
        rq = dimse.CFindRQMessage()
        rq.message_id = 3
        rq.sop_class_uid = STUDY_FIND
        rq.priority = dimse.PRIORITY_MEDIUM
        rq.data_set = encode_identifier(query('PATIENT', PatientID=''), ctx.supported_ts)
        assoc.send(rq, ctx.id)
        rsp, _ = assoc.receive()
    assert (rsp.status, rsp.error_comment) == (
        0xA900, 'level PATIENT is not part of the study root information model')
    (logged,) = refusals(caplog)
    assert logged.startswith('C-FIND from SCU@127.0.0.1:')


def test_our_getscu_and_movescu_are_refused_a_wildcard_and_get_a_list_of_uids(tmp_path):
    (tmp_path / 'src').mkdir()
    for n in (1, 2, 3):
        instance_file(tmp_path / 'src' / f'{n}.dcm', uid(3, n), uid(1, n), uid(2, n),
                      patient_id='PAT1')
    receive_port = peers.free_port()
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE',
                    '--move-dest', f'MOVESCU=127.0.0.1:{receive_port}') as (proc, port):
        stored = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, tmp_path / 'src')
        assert stored.returncode == 0, describe(stored)
        wild_get = run_app('getscu', '-P', '-aec', 'ARCHIVE', '-od', tmp_path / 'got',
                           '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID=PAT*',
                           '127.0.0.1', port)
        wild_move = run_app('movescu', '-S', '-aec', 'ARCHIVE', '--port', receive_port,
                            '-od', tmp_path / 'moved', '-k', 'QueryRetrieveLevel=STUDY',
                            '-k', 'StudyInstanceUID=1.2*', '127.0.0.1', port)
        listed = run_app('getscu', '-S', '-aec', 'ARCHIVE', '-od', tmp_path / 'listed',
                         '-k', 'QueryRetrieveLevel=STUDY',
                         '-k', f'StudyInstanceUID={uid(1, 1)}\\{uid(1, 3)}', '127.0.0.1', port)
        log = peers.process_output(proc)
    assert wild_get.returncode == 1, describe(wild_get)
    assert '(0xC000)' in wild_get.stdout and 'received 0 instance(s)' in wild_get.stdout
    assert not list((tmp_path / 'got').glob('*.dcm'))
    assert wild_move.returncode == 1, describe(wild_move)
    assert ('(0xC000) Failure: Unable to process (no wildcard in a retrieve: '
            'StudyInstanceUID 1.2*); completed 0') in wild_move.stdout
    assert listed.returncode == 0, describe(listed)
    assert sorted(p.name for p in (tmp_path / 'listed').glob('*.dcm')) == [
        f'{uid(3, 1)}.dcm', f'{uid(3, 3)}.dcm']
    assert 'C-GET from GETSCU@127.0.0.1' in log and 'C-MOVE from MOVESCU@127.0.0.1' in log


# -- starting again after a crash ---------------------------------------------------------

def _archive_state(storage: pathlib.Path):
    """(files on disk, (SOP Instance UID, path) rows of the index) of a stopped archive."""
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    try:
        rows = sorted(read_index(index.path, 'SELECT SOPInstanceUID, path FROM instance'))
        (pending,), = read_index(index.path, 'SELECT COUNT(*) FROM placement')
    finally:
        index.close()
    files = sorted(p.relative_to(storage).as_posix() for p in storage.rglob('*.dcm'))
    return files, rows, pending


def test_qrscp_killed_in_the_middle_of_a_batch_starts_again_clean(tmp_path):
    batch = tmp_path / 'batch'
    batch.mkdir()
    sources = {}
    for n in range(24):
        path = make_ct_file(batch / f'{n:02d}.dcm', uid(3, 1000 + n), rows=512, cols=512)
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(1, 1000 + n // 8), uid(2, 1000 + n // 4)
        ds.PatientID = 'BATCH'
        ds.save_as(path)
        sources[ds.SOPInstanceUID] = ds.StudyInstanceUID
    storage = tmp_path / 'pacs'
    with our_server('qrscp', '--storage', storage, '-aet', 'ARCHIVE') as (proc, port):
        sender = peers._spawn([sys.executable, '-m', 'pynetdicom2', 'storescu', '-aec',
                               'ARCHIVE', '127.0.0.1', str(port), str(batch)])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sender.poll() is None:
                placed = list(storage.rglob('*.dcm'))
                parts = list(storage.rglob('*.part'))
                if len(placed) >= 3 and parts:
                    break
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            sender.wait(30)
        finally:
            peers.stop_process(sender)
    assert sender.returncode != 0  # the batch was cut short by the kill
    crashed_with = sorted(p.relative_to(storage).as_posix() for p in storage.rglob('*.part'))
    # What a crash leaves, and what is not ours to remove.
    (storage / '.incoming').mkdir(exist_ok=True)
    (storage / '.incoming' / 'dead.part').write_bytes(b'half a data set')
    (storage / 'some' / 'folder').mkdir(parents=True)
    (storage / 'some' / 'folder' / '.tmp-0123abcd.part').write_bytes(b'half')
    (storage / 'keep.part').write_bytes(b'not ours')
    (storage / '.incoming' / 'notes.txt').write_text('not ours either')
    outside = tmp_path / '.tmp-outside.part'
    outside.write_bytes(b'outside the storage')
    (storage / '.tmp-link.part').symlink_to(outside)

    with our_server('qrscp', '--storage', storage, '-aet', 'ARCHIVE') as (proc, port):
        found = run_app('findscu', '-S', '-aec', 'ARCHIVE', '-k', 'QueryRetrieveLevel=IMAGE',
                        '-k', 'StudyInstanceUID', '-k', 'SOPInstanceUID', '--json',
                        '127.0.0.1', port)
        files, rows, pending = _archive_state(storage)
        leftovers = sorted(p.relative_to(storage).as_posix() for p in storage.rglob('*.part'))
        got = run_app('getscu', '-P', '-aec', 'ARCHIVE', '-od', tmp_path / 'got',
                      '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID=BATCH',
                      '127.0.0.1', port)
        again = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, batch)
        after_files, after_rows, _ = _archive_state(storage)
        log = peers.process_output(proc)
    assert leftovers == ['.tmp-link.part', 'keep.part'], (leftovers, crashed_with)
    assert outside.exists() and (storage / '.incoming' / 'notes.txt').exists()
    assert 'left by a transfer that never finished' in log
    # The index describes exactly the files on disk, each under its own UID.
    assert pending == 0
    assert sorted(path for _, path in rows) == files and 3 <= len(files) < len(sources)
    for sop, path in rows:
        assert pydicom.dcmread(storage / path, stop_before_pixels=True).SOPInstanceUID == sop
        assert path == f'{sources[sop]}/{sop}.dcm'
    assert found.returncode == 0, describe(found)
    answered = sorted(json.loads(line)['00080018']['Value'][0]
                      for line in found.stdout.splitlines())
    assert answered == sorted(sop for sop, _ in rows)
    assert got.returncode == 0, describe(got)
    assert f'received {len(rows)} instance(s)' in got.stdout
    assert again.returncode == 0, describe(again)
    assert len(after_files) == len(sources)
    assert sorted(path for _, path in after_rows) == after_files


def test_a_second_qrscp_on_the_same_storage_is_refused(tmp_path):
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE'):
        second = run_app('qrscp', '--storage', tmp_path / 'pacs', '--bind', '127.0.0.1', '0')
    assert second.returncode == 1, describe(second)
    assert 'another qrscp is using the storage' in second.stderr
