"""Query/Retrieve and worklist against real peers: DCMTK's tools and pynetdicom 3.

DCMTK findscu / movescu / getscu request from our SCPs (movescu's destination being
DCMTK storescp); our SCUs request from pynetdicom's find, get and move SCPs.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import struct

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from tests import peers
from tests.peers import (
    dcmtk, describe, make_ct_file, run_tool, start_dcmtk_scp, start_pynetdicom_peer)

CT = uids.CT_IMAGE_STORAGE
QR_PEER_SCRIPT = pathlib.Path(__file__).resolve().parent / 'peers' / 'qr_pynetdicom_scp.py'
DCMTK_TIMEOUTS = ['-to', '10', '-ta', '10', '-td', '10']


class QRServer(ae_module.AE):
    """Our find / worklist / move / get SCP; the hooks are set per test."""

    def __init__(self):
        super().__init__('QR_SCP', 0, bind_address='127.0.0.1')
        self.dcm_timeout = 10
        for service in (sopclass.qr_find_scp, sopclass.modality_work_list_scp,
                        sopclass.qr_move_scp, sopclass.qr_get_scp, sopclass.verification_scp):
            self.add_scp(service)
        self.add_scu(sopclass.storage_scu, [CT])
        self.requests = []
        self.find = self.move = self.get = None

    def on_receive_find(self, context, ds):
        self.requests.append(ds)
        return self.find(context, ds)

    def on_receive_move(self, context, ds, destination):
        self.requests.append((ds, destination))
        return self.move(context, ds, destination)

    def on_receive_get(self, context, ds):
        self.requests.append(ds)
        return self.get(context, ds)


@pytest.fixture
def server():
    with QRServer() as srv:
        yield srv


def ct_files(directory: pathlib.Path, count: int):
    directory.mkdir(exist_ok=True)
    return [make_ct_file(directory / f'ct{i}.dcm', rows=32 + i, cols=32) for i in range(count)]


def by_uid(paths):
    return {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in paths)}


def assert_same_instances(received_paths, sent_paths):
    received, sent = by_uid(received_paths), by_uid(sent_paths)
    assert sorted(received) == sorted(sent)
    for uid, ds in sent.items():
        assert received[uid].PixelData == ds.PixelData
        assert (received[uid].Rows, received[uid].Columns) == (ds.Rows, ds.Columns)


# -- DCMTK requesting from our SCPs ----------------------------------------------------

def test_dcmtk_findscu_study_root_gets_our_matches(server, tmp_path):
    def matches(ctx, ds):
        for i in range(4):
            match = Dataset()
            match.QueryRetrieveLevel = 'STUDY'
            match.PatientName = f'DCMTK^{i}'
            match.StudyInstanceUID = f'1.2.826.0.1.3680043.2.1125.{i + 1}'
            yield match, 0xFF00
    server.find = matches
    result = run_tool([dcmtk('findscu'), *DCMTK_TIMEOUTS, '-S', '-aec', 'QR_SCP',
                       '-k', 'QueryRetrieveLevel=STUDY', '-k', 'PatientName=',
                       '-k', 'StudyInstanceUID=', '-X', '-od', str(tmp_path),
                       '127.0.0.1', str(server.local_ae.port)])
    assert result.returncode == 0, describe(result)
    files = sorted(tmp_path.glob('rsp*.dcm'))
    assert [f.name for f in files] == [f'rsp{i:04d}.dcm' for i in range(1, 5)]
    got = [pydicom.dcmread(f) for f in files]
    assert [str(ds.PatientName) for ds in got] == [f'DCMTK^{i}' for i in range(4)]
    assert [ds.StudyInstanceUID for ds in got] == [
        f'1.2.826.0.1.3680043.2.1125.{i + 1}' for i in range(4)]
    query = server.requests[0]
    assert query.QueryRetrieveLevel == 'STUDY' and query.PatientName == ''


def test_dcmtk_findscu_gets_a_match_our_handler_yields_with_success(server, tmp_path):
    # 0.9.x handlers answer one match with (ds, SUCCESS). DCMTK reads no identifier on a
    # final response (PS3.4 Table C.4-1) and then fails the release on the P-DATA it
    # left unread, so for it the match goes in a pending response first.
    def one(ctx, ds):
        match = Dataset()
        match.QueryRetrieveLevel = 'STUDY'
        match.PatientName = 'ONLY^MATCH'
        match.StudyInstanceUID = '1.2.826.0.1.3680043.2.1125.9'
        yield match, 0x0000
    server.find = one
    result = run_tool([dcmtk('findscu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aec', 'QR_SCP',
                       '-k', 'QueryRetrieveLevel=STUDY', '-k', 'PatientName=',
                       '-k', 'StudyInstanceUID=', '-X', '-od', str(tmp_path),
                       '127.0.0.1', str(server.local_ae.port)])
    assert result.returncode == 0, describe(result)
    assert 'Release Failed' not in result.stderr, describe(result)
    files = sorted(tmp_path.glob('rsp*.dcm'))
    assert [str(pydicom.dcmread(f).PatientName) for f in files] == ['ONLY^MATCH']


ORIGINAL_FIND_SCU = """
import sys
from pydicom.dataset import Dataset
from pynetdicom2 import applicationentity, sopclass, uids
ae = applicationentity.ClientAE('ORIG_SCU').add_scu(sopclass.qr_find_scu)
query = Dataset()
query.QueryRetrieveLevel = 'STUDY'
query.PatientName = ''
remote = {'aet': 'QR_SCP', 'address': '127.0.0.1', 'port': int(sys.argv[1])}
with ae.request_association(remote) as assoc:
    for ds, status in assoc.get_scu(uids.STUDY_ROOT_FIND_SOP_CLASS)(query, 1):
        print(None if ds is None else str(ds.PatientName), int(status))
"""


def test_the_released_0_9_8_find_scu_gets_a_match_yielded_with_success(server):
    # 0.9.8's SCU yields (ds, status) for a final response carrying an identifier.
    server.find = lambda ctx, ds: iter([(_match('ONLY^MATCH'), 0x0000)])
    # -I: the released package, never ours from the working directory.
    result = run_tool([peers.original_python(), '-I', '-c', ORIGINAL_FIND_SCU,
                       str(server.local_ae.port)], timeout=60)
    assert result.returncode == 0, describe(result)
    assert result.stdout.splitlines() == ['ONLY^MATCH 0'], describe(result)


def _match(name):
    match = Dataset()
    match.QueryRetrieveLevel = 'STUDY'
    match.PatientName = name
    return match


def test_dcmtk_findscu_worklist_gets_our_items(server, tmp_path):
    def items(ctx, ds):
        for i in range(2):
            item = Dataset()
            item.PatientName = f'WL^{i}'
            item.PatientID = f'W{i}'
            step = Dataset()
            step.Modality = 'CT'
            step.ScheduledStationAETitle = 'CT_1'
            item.ScheduledProcedureStepSequence = [step]
            yield item, 0xFF00
    server.find = items
    result = run_tool([dcmtk('findscu'), *DCMTK_TIMEOUTS, '-W', '-aec', 'QR_SCP',
                       '-k', 'PatientName=', '-k', 'PatientID=',
                       '-k', 'ScheduledProcedureStepSequence[0].Modality=CT',
                       '-k', 'ScheduledProcedureStepSequence[0].ScheduledStationAETitle=',
                       '-X', '-od', str(tmp_path), '127.0.0.1', str(server.local_ae.port)])
    assert result.returncode == 0, describe(result)
    got = [pydicom.dcmread(f) for f in sorted(tmp_path.glob('rsp*.dcm'))]
    assert [(str(ds.PatientName), ds.PatientID) for ds in got] == [('WL^0', 'W0'),
                                                                   ('WL^1', 'W1')]
    assert got[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == 'CT_1'
    assert server.requests[0].ScheduledProcedureStepSequence[0].Modality == 'CT'


def test_dcmtk_movescu_moves_to_dcmtk_storescp(server, tmp_path):
    files = ct_files(tmp_path / 'src', 3)
    out = tmp_path / 'storescp'
    out.mkdir()
    with start_dcmtk_scp('storescp', ['-aet', 'DEST', '-od', str(out)]) as (proc, port):
        server.move = lambda ctx, ds, dest: (
            {'aet': 'DEST', 'address': '127.0.0.1', 'port': port} if dest == 'DEST' else None,
            3, [str(f) for f in files])
        result = run_tool([dcmtk('movescu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aet', 'MOVESCU',
                           '-aec', 'QR_SCP', '-aem', 'DEST',
                           '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3',
                           '127.0.0.1', str(server.local_ae.port)])
        assert result.returncode == 0, describe(result) + peers.process_output(proc)
    assert server.requests[0][1] == 'DEST'
    assert server.requests[0][0].StudyInstanceUID == '1.2.3'
    assert_same_instances(sorted(out.iterdir()), files)


def test_dcmtk_movescu_to_an_unknown_destination_fails(server):
    server.move = lambda ctx, ds, dest: None
    result = run_tool([dcmtk('movescu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aec', 'QR_SCP',
                       '-aem', 'NOWHERE', '-k', 'QueryRetrieveLevel=STUDY',
                       '-k', 'StudyInstanceUID=1.2.3', '127.0.0.1', str(server.local_ae.port)])
    assert 'Final Move Response (Refused: MoveDestinationUnknown)' in result.stderr, \
        describe(result)


def test_dcmtk_getscu_gets_files_with_their_pixel_data(server, tmp_path):
    files = ct_files(tmp_path / 'src', 3)
    server.get = lambda ctx, ds: (3, [str(f) for f in files])
    out = tmp_path / 'getscu'
    out.mkdir()
    result = run_tool([dcmtk('getscu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aec', 'QR_SCP',
                       '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3',
                       '-od', str(out), '127.0.0.1', str(server.local_ae.port)])
    assert result.returncode == 0, describe(result)
    assert_same_instances(sorted(out.iterdir()), files)


# Uncompressed syntaxes (PS3.5 A.1-A.3, A.5) a sub-operation may have to use.
IMPLICIT, EXPLICIT = uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN
BIG, DEFLATED = uids.EXPLICIT_VR_BIG_ENDIAN, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN


class GetOnlyServer(ae_module.AE):
    """A 0.9.x-style C-GET SCP: no storage class of its own, Datasets from its hook."""

    def __init__(self, preferred_ts):
        rest = [ts for ts in (EXPLICIT, IMPLICIT, BIG, DEFLATED) if ts != preferred_ts]
        super().__init__('QR_SCP', 0, supported_ts=[preferred_ts, *rest],
                         bind_address='127.0.0.1')
        # The storage class's syntax by our order, not the requester's first choice
        # (the default for storage classes), so each syntax is exercised.
        self.ts_preferences = {CT: [preferred_ts, *rest]}
        self.dcm_timeout = 10
        self.add_scp(sopclass.qr_get_scp)
        self.datasets = []

    def on_receive_get(self, context, ds):
        return len(self.datasets), iter(self.datasets)


def pixel_values(ds):
    """Pixel values in the byte order of the file's syntax (PS3.5 7.3)."""
    order = '>' if ds.file_meta.TransferSyntaxUID == BIG else '<'
    return struct.unpack(f'{order}{len(ds.PixelData) // 2}H', ds.PixelData)


def assert_same_pixels(received_paths, sent_paths, ts):
    received = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, received_paths)}
    sent = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, sent_paths)}
    assert sorted(received) == sorted(sent)
    for uid, ds in sent.items():
        assert received[uid].file_meta.TransferSyntaxUID == ts
        assert pixel_values(received[uid]) == pixel_values(ds)
        assert received[uid].PatientName == ds.PatientName


@pytest.mark.parametrize('ts, switches', [
    (IMPLICIT, []), (EXPLICIT, []), (BIG, []), (DEFLATED, ['+xd'])])
def test_dcmtk_getscu_gets_datasets_from_a_0_9_x_style_get_scp(tmp_path, ts, switches):
    # The Datasets were read from Explicit VR Little Endian files; our AE prefers ``ts``
    # among the syntaxes getscu proposes for the storage classes (+xd adds deflate).
    files = ct_files(tmp_path / 'src', 2)
    out = tmp_path / 'getscu'
    out.mkdir()
    with GetOnlyServer(ts) as srv:
        srv.datasets = [pydicom.dcmread(f) for f in files]
        result = run_tool([dcmtk('getscu'), *DCMTK_TIMEOUTS, '-v', *switches, '-S',
                           '-aec', 'QR_SCP', '-k', 'QueryRetrieveLevel=STUDY',
                           '-k', 'StudyInstanceUID=1.2.3', '-od', str(out),
                           '127.0.0.1', str(srv.local_ae.port)])
    assert result.returncode == 0, describe(result)
    assert 'Number of Completed Suboperations : 2' in result.stderr, describe(result)
    assert_same_pixels(sorted(out.iterdir()), files, ts)


@pytest.mark.parametrize('ts', [IMPLICIT, EXPLICIT, BIG])
def test_pynetdicom_getscu_gets_datasets_from_a_0_9_x_style_get_scp(tmp_path, ts):
    peers.require_pynetdicom()
    files = ct_files(tmp_path / 'src', 2)
    out = tmp_path / 'getscu'
    out.mkdir()
    with GetOnlyServer(ts) as srv:
        srv.datasets = [pydicom.dcmread(f) for f in files]
        result = run_tool([peers.pynetdicom_python(), '-m', 'pynetdicom', 'getscu', '-v', '-S',
                           '-aec', 'QR_SCP', '-k', 'QueryRetrieveLevel=STUDY',
                           '-k', 'StudyInstanceUID=1.2.3', '-od', str(out),
                           '127.0.0.1', str(srv.local_ae.port)], timeout=60)
    assert result.returncode == 0, describe(result)
    assert 'Completed: 2, Failed: 0' in result.stderr, describe(result)
    assert_same_pixels(sorted(out.iterdir()), files, ts)


@pytest.mark.parametrize('ts, switches', [(IMPLICIT, ['+xi']), (BIG, ['+xb']),
                                          (DEFLATED, ['+xd'])])
def test_dcmtk_movescu_moves_datasets_to_a_storescp_taking_one_syntax(
        server, tmp_path, ts, switches):
    # A 0.9.x on_receive_move gives Datasets read from Explicit VR Little Endian files.
    files = ct_files(tmp_path / 'src', 2)
    out = tmp_path / 'storescp'
    out.mkdir()
    with start_dcmtk_scp('storescp', ['-aet', 'DEST', *switches, '-od', str(out)]) as (
            proc, port):
        server.move = lambda ctx, ds, dest: (
            {'aet': 'DEST', 'address': '127.0.0.1', 'port': port}, 2,
            (pydicom.dcmread(f) for f in files))
        result = run_tool([dcmtk('movescu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aet', 'MOVESCU',
                           '-aec', 'QR_SCP', '-aem', 'DEST',
                           '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3',
                           '127.0.0.1', str(server.local_ae.port)])
        assert result.returncode == 0, describe(result) + peers.process_output(proc)
    assert 'Final Move Response (Success)' in result.stderr, describe(result)
    assert_same_pixels(sorted(out.iterdir()), files, ts)


# -- our SCUs requesting from pynetdicom ---------------------------------------------

def test_our_find_scu_to_pynetdicom_gets_three_matches():
    with start_pynetdicom_peer(['--find-responses', '3']) as (proc, port):
        scu = ae_module.ClientAE('OUR_SCU').add_scu(sopclass.qr_find_scu)
        scu.dcm_timeout = 10
        query = Dataset()
        query.QueryRetrieveLevel = 'STUDY'
        query.PatientName = ''
        query.PatientID = ''
        with scu.request_association(
                {'aet': 'PYNETDICOM', 'address': '127.0.0.1', 'port': port}) as assoc:
            responses = list(itertools.islice(
                assoc.get_scu(uids.STUDY_ROOT_FIND_SOP_CLASS)(query, 1), 100))
    assert [int(s) for _, s in responses] == [0xFF00] * 3 + [0x0000]
    assert [(str(ds.PatientName), ds.PatientID) for ds, _ in responses[:3]] == [
        (f'PATIENT^{i}', str(i)) for i in range(3)]
    assert responses[3][0] is None


def start_qr_peer(files_dir, *extra, timeout=15):
    """Run our pynetdicom C-GET / C-MOVE SCP script; a context manager of (proc, port)."""
    return _qr_peer([peers.require_pynetdicom(), str(QR_PEER_SCRIPT), '--files-dir',
                     str(files_dir), *extra], timeout)


class _qr_peer:
    def __init__(self, argv, timeout):
        self.argv, self.timeout = argv, timeout

    def __enter__(self):
        # tests.peers' own spawner: own session, output in files, recorded in CHILDREN.
        self.proc = peers._spawn(self.argv)
        try:
            port = peers._read_port_line(self.proc, self.timeout)
        except BaseException:
            peers.stop_process(self.proc)
            raise
        return self.proc, port

    def __exit__(self, *exc_info):
        peers.stop_process(self.proc)
        return False


def test_our_get_scu_from_pynetdicom_get_scp(tmp_path):
    files = ct_files(tmp_path / 'src', 3)
    scu = ae_module.ClientAE('OUR_GET_SCU')
    scu.dcm_timeout = 10
    scu.add_scu(sopclass.qr_get_scu)
    scu.add_scp(sopclass.storage_scp)
    log = tmp_path / 'requests.jsonl'
    received = []
    with start_qr_peer(tmp_path / 'src', '--request-log', str(log)) as (proc, port):
        with scu.request_association(
                {'aet': 'PYNETDICOM_QR', 'address': '127.0.0.1', 'port': port},
                sop_classes=[uids.STUDY_ROOT_GET_SOP_CLASS, CT]) as assoc:
            query = Dataset()
            query.QueryRetrieveLevel = 'STUDY'
            query.StudyInstanceUID = '1.2.3'
            gen = assoc.get_scu(uids.STUDY_ROOT_GET_SOP_CLASS)(query, 1)
            for _ in range(10):
                try:
                    ctx, fp = next(gen)
                except StopIteration as stop:
                    final = stop.value
                    break
                out = tmp_path / f'got{len(received)}.dcm'
                out.write_bytes(fp.read())
                received.append(out)
        requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert int(final) == 0x0000
    assert requests[0]['QueryRetrieveLevel'] == 'STUDY'
    assert requests[0]['calling_aet'] == 'OUR_GET_SCU'
    assert_same_instances(received, files)


def test_our_move_scu_from_pynetdicom_move_scp_to_our_storage_ae(tmp_path):
    files = ct_files(tmp_path / 'src', 3)
    with ae_module.StorageAE(tmp_path / 'dest', 'OUR_DEST', 0, bind_address='127.0.0.1') as dest:
        dest.dcm_timeout = 10
        move_dest = f'OUR_DEST=127.0.0.1:{dest.local_ae.port}'
        with start_qr_peer(tmp_path / 'src', '--move-dest', move_dest) as (proc, port):
            scu = ae_module.ClientAE('OUR_MOVE_SCU').add_scu(sopclass.qr_move_scu)
            scu.dcm_timeout = 10
            query = Dataset()
            query.QueryRetrieveLevel = 'STUDY'
            query.StudyInstanceUID = '1.2.3'
            with scu.request_association(
                    {'aet': 'PYNETDICOM_QR', 'address': '127.0.0.1', 'port': port}) as assoc:
                move = assoc.get_scu(uids.STUDY_ROOT_MOVE_SOP_CLASS)
                responses = list(itertools.islice(move(query, 'OUR_DEST', 1), 100))
                unknown = list(itertools.islice(move(query, 'NOBODY', 2), 100))
    final_status, final = responses[-1]
    assert int(final_status) == 0x0000, [int(s) for s, _ in responses]
    assert final.num_of_completed_sub_ops == 3 and final.num_of_failed_sub_ops == 0
    assert all(s.is_pending for s, _ in responses[:-1])
    assert [int(s) for s, _ in unknown] == [0xA801]
    assert_same_instances(sorted((tmp_path / 'dest').glob('*.dcm')), files)
