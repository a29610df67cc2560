"""Query/Retrieve and Modality Worklist services: our SCUs against our SCPs over loopback.

C-FIND (matches intact, statuses, handler failures, cancel), worklist, C-MOVE to a
StorageAE, C-GET into the requester's own association, and the identifier codec.
"""

from __future__ import annotations

import itertools
import struct
import threading
import time

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, sopclass, statuses, uids
from pynetdicom2.exceptions import (
    AssociationAbortedError, DIMSEProcessingError, EventHandlingError)
from pynetdicom2.services import queryretrieve as qr
from tests.peers import make_ct_file

STUDY_FIND = uids.STUDY_ROOT_FIND_SOP_CLASS
STUDY_MOVE = uids.STUDY_ROOT_MOVE_SOP_CLASS
STUDY_GET = uids.STUDY_ROOT_GET_SOP_CLASS
MWL = uids.MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
MR = uids.MR_IMAGE_STORAGE
TIMEOUT = 5


def query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = 'STUDY'
    ds.PatientName = ''
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


class QRServer(ae_module.AE):
    """An AE serving find, worklist, move and get through hooks set per test."""

    def __init__(self, supported_ts=None):
        super().__init__('QR_SCP', 0, supported_ts=supported_ts, bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.artim_timeout = 2
        self.add_scp(sopclass.qr_find_scp)
        self.add_scp(sopclass.modality_work_list_scp)
        self.add_scp(sopclass.qr_move_scp)
        self.add_scp(sopclass.qr_get_scp)
        self.add_scp(sopclass.verification_scp)
        # The C-STORE sub-operations of a C-GET go out on contexts for these classes.
        self.add_scu(sopclass.storage_scu, [CT, MR])
        self.find = lambda ctx, ds: iter(())
        self.move = None
        self.get = None
        self.received = []

    def on_receive_find(self, context, ds):
        self.received.append((context.sop_class, ds))
        return self.find(context, ds)

    def on_receive_move(self, context, ds, destination):
        self.received.append((context.sop_class, ds, destination))
        return self.move(context, ds, destination)

    def on_receive_get(self, context, ds):
        self.received.append((context.sop_class, ds))
        return self.get(context, ds)


@pytest.fixture
def server():
    with QRServer() as srv:
        yield srv


def remote(srv, aet='QR_SCP'):
    return {'aet': aet, 'address': '127.0.0.1', 'port': srv.local_ae.port}


def client(supported_ts=None):
    scu = ae_module.ClientAE('OUR_SCU', supported_ts=supported_ts)
    scu.dcm_timeout = TIMEOUT
    for service in (sopclass.qr_find_scu, sopclass.modality_work_list_scu,
                    sopclass.qr_move_scu, sopclass.verification_scu):
        scu.add_scu(service)
    return scu


def find_all(assoc, ds, sop_class=STUDY_FIND, msg_id=1):
    return list(itertools.islice(assoc.get_scu(sop_class)(ds, msg_id), 10000))


# -- identifier codec ----------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize('ts', [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                uids.EXPLICIT_VR_BIG_ENDIAN,
                                uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN])
def test_identifier_round_trips_in_each_transfer_syntax(ts):
    ds = query(PatientName='DOE^JOHN', PatientID='123', StudyDate='20240101-')
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.Rows = 512
    raw = qr.encode_identifier(ds, ts)
    back = qr.decode_identifier(raw, ts)
    assert back.PatientName == 'DOE^JOHN' and back.PatientID == '123'
    assert back.StudyDate == '20240101-' and back.Rows == 512
    if ts == uids.IMPLICIT_VR_LITTLE_ENDIAN:
        # (0008,0005) CS length 10, implicit VR: tag, 4-byte length, value.
        assert raw[:8] == b'\x08\x00\x05\x00\x0a\x00\x00\x00'
    if ts == uids.EXPLICIT_VR_BIG_ENDIAN:
        assert raw[:6] == b'\x00\x08\x00\x05CS'


@pytest.mark.unit
def test_a_deflated_identifier_is_padded_to_even_length():
    # PS3.5 A.5: an odd deflated stream gets one trailing NULL; DCMTK refuses odd PDVs.
    import zlib
    odd_seen = False
    for n in range(40):
        ds = query(PatientName='X' * n, PatientID=f'{n * 7919:x}', StudyInstanceUID=f'1.2.{n}')
        raw = qr.encode_identifier(ds, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
        packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        odd_seen |= len(packer.compress(qr.encode_identifier(
            ds, uids.EXPLICIT_VR_LITTLE_ENDIAN)) + packer.flush()) % 2 == 1
        assert len(raw) % 2 == 0
        back = qr.decode_identifier(raw, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
        assert back.PatientName == 'X' * n
    assert odd_seen  # the padding was needed at least once


@pytest.mark.unit
def test_identifier_that_does_not_decode_is_a_dimse_error():
    with pytest.raises(DIMSEProcessingError, match='Deflated'):
        qr.decode_identifier(b'\x00\x01garbage', uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)


# -- C-FIND --------------------------------------------------------------------------

def test_find_five_matches_arrive_intact_and_distinct(server):
    def matches(ctx, ds):
        match = Dataset()  # one object, changed after every yield
        for i in range(5):
            match.PatientName = f'DOE^{i}'
            match.PatientID = f'ID{i}'
            match.QueryRetrieveLevel = 'STUDY'
            yield match, statuses.C_FIND_PENDING
    server.find = matches
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query(PatientName='DOE*'), msg_id=7)
    assert [(str(ds.PatientName), ds.PatientID) for ds, _ in responses[:5]] == [
        (f'DOE^{i}', f'ID{i}') for i in range(5)]
    assert [int(status) for _, status in responses] == [0xFF00] * 5 + [0x0000]
    assert all(status.is_pending for _, status in responses[:5])
    final_ds, final = responses[5]
    assert final_ds is None and final.is_success
    sop_class, received = server.received[0]
    assert sop_class == STUDY_FIND
    assert received.PatientName == 'DOE*' and received.QueryRetrieveLevel == 'STUDY'


def test_find_accepts_ints_as_statuses(server):
    def matches(ctx, ds):
        yield query(PatientName='A'), 0xFF00
        yield query(PatientName='B'), 0xFF01
    server.find = matches
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query())
    assert [(int(s), s.status_type) for _, s in responses] == [
        (0xFF00, 'Pending'), (0xFF01, 'Pending'), (0x0000, 'Success')]
    assert [str(ds.PatientName) for ds, _ in responses[:2]] == ['A', 'B']


def test_find_a_non_pending_status_from_the_handler_is_the_final_one(server):
    def matches(ctx, ds):
        yield query(PatientName='A'), 0xFF00
        yield None, 0xA700
        raise AssertionError('not iterated after the final status')
    server.find = matches
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query())
    assert [int(s) for _, s in responses] == [0xFF00, 0xA700]
    assert responses[1][1].is_failure


def one_match(ctx, ds):
    """A 0.9.x-style handler answering with one match as its final response."""
    yield query(PatientName='ONLY^MATCH', PatientID='P1'), statuses.SUCCESS


def test_find_a_match_yielded_with_success_travels_with_the_final_response(server):
    server.find = one_match
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query())
    assert [(str(ds.PatientName), ds.PatientID, int(s)) for ds, s in responses] == [
        ('ONLY^MATCH', 'P1', 0x0000)]
    assert responses[0][1].is_success


def test_find_a_match_yielded_with_a_failure_travels_with_it(server):
    server.find = lambda ctx, ds: iter([(query(PatientName='WHY'), 0xA700)])
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query())
    assert [(str(ds.PatientName), int(s)) for ds, s in responses] == [('WHY', 0xA700)]


def test_worklist_scu_yields_the_identifier_of_a_final_response(server):
    server.find = one_match
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query(), sop_class=MWL)
    assert [(str(ds.PatientName), int(s)) for ds, s in responses] == [('ONLY^MATCH', 0)]


def test_commands_find_and_c_find_yield_a_final_identifier(server):
    from pynetdicom2 import c_find, commands
    server.find = one_match
    found = list(itertools.islice(commands.find('OUR_SCU', remote(server), query()), 10))
    assert [str(ds.PatientName) for ds in found] == ['ONLY^MATCH']
    pairs = list(itertools.islice(c_find(remote(server), 'OUR_SCU', query(), STUDY_FIND), 10))
    assert [(str(ds.PatientName), int(s)) for ds, s in pairs] == [('ONLY^MATCH', 0)]


@pytest.mark.parametrize('implementation_uid, final_identifier', [
    ('1.2.826.0.1.3680043.8.498.1.1.155105445218102811803000', True),  # pynetdicom2 0.9.x
    ('1.2.276.0.7230010.3.0.3.6.7', False),                          # DCMTK 3.6.7
])
def test_find_final_identifier_only_for_requesters_that_read_it(
        server, monkeypatch, implementation_uid, final_identifier):
    # Other requesters get the match in a pending response first (PS3.4 Table C.4-1).
    from pynetdicom2 import asceprovider
    server.find = one_match
    monkeypatch.setattr(asceprovider, 'IMPLEMENTATION_UID', implementation_uid)
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, query())
    got = [(str(ds.PatientName) if ds is not None else None, int(s)) for ds, s in responses]
    if final_identifier:
        assert got == [('ONLY^MATCH', 0x0000)]
    else:
        assert got == [('ONLY^MATCH', 0xFF00), (None, 0x0000)]


@pytest.mark.parametrize('fail_after', [None, 2])
def test_find_event_handling_error_gives_c000_and_the_association_stays(server, fail_after):
    def failing(ctx, ds):
        if fail_after is None:
            raise EventHandlingError('database down')

        def gen():
            for i in range(fail_after):
                yield query(PatientName=f'P{i}'), 0xFF00
            raise EventHandlingError('database down')
        return gen()

    server.find = failing
    with client().request_association(remote(server)) as assoc:
        first = find_all(assoc, query(), msg_id=1)
        server.find = lambda ctx, ds: iter([(query(PatientName='OK'), 0xFF00)])
        second = find_all(assoc, query(), msg_id=2)
    assert [int(s) for _, s in first] == [0xFF00] * (fail_after or 0) + [0xC000]
    assert first[-1][1].is_failure and 'Unable to process' in first[-1][1].description
    assert [(str(ds.PatientName) if ds else None, int(s)) for ds, s in second] == [
        ('OK', 0xFF00), (None, 0x0000)]


def test_find_other_handler_exception_aborts_that_association(server):
    def broken(ctx, ds):
        raise KeyError('bug')
    server.find = broken
    with pytest.raises(AssociationAbortedError) as info:
        with client().request_association(remote(server)) as assoc:
            find_all(assoc, query())
    assert info.value.source == 0
    server.find = lambda ctx, ds: iter([(query(PatientName='X'), 0xFF00)])
    with client().request_association(remote(server)) as assoc:
        assert len(find_all(assoc, query())) == 2


@pytest.mark.parametrize('ts', [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_BIG_ENDIAN,
                                uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN])
def test_find_in_the_accepted_transfer_syntax(ts):
    with QRServer(supported_ts=[ts]) as srv:
        srv.find = lambda ctx, ds: iter([(query(PatientName=f'{ds.PatientName}^X'), 0xFF00)])
        with client(supported_ts=[ts]).request_association(remote(srv)) as assoc:
            assert assoc.context_for(STUDY_FIND).supported_ts == ts
            responses = find_all(assoc, query(PatientName='Q'))
    assert str(responses[0][0].PatientName) == 'Q^X'
    assert int(responses[1][1]) == 0


def test_worklist_find_uses_on_receive_find(server):
    def items(ctx, ds):
        for i in range(2):
            item = Dataset()
            item.PatientName = f'WL^{i}'
            step = Dataset()
            step.Modality = ds.ScheduledProcedureStepSequence[0].Modality
            step.ScheduledStationAETitle = 'CT1'
            item.ScheduledProcedureStepSequence = [step]
            yield item, 0xFF00
    server.find = items
    request = Dataset()
    request.PatientName = ''
    step = Dataset()
    step.Modality = 'CT'
    step.ScheduledStationAETitle = ''
    request.ScheduledProcedureStepSequence = [step]
    with client().request_association(remote(server)) as assoc:
        responses = find_all(assoc, request, sop_class=MWL)
    assert [int(s) for _, s in responses] == [0xFF00, 0xFF00, 0x0000]
    assert [str(ds.PatientName) for ds, _ in responses[:2]] == ['WL^0', 'WL^1']
    assert responses[0][0].ScheduledProcedureStepSequence[0].Modality == 'CT'
    assert server.received[0][0] == MWL


def send_request(assoc, rq, sop_class, msg_id):
    """Send ``rq`` by hand (no SCU generator), to watch the SCP's answers one by one."""
    ctx = assoc.context_for(sop_class)
    rq.message_id = msg_id
    rq.sop_class_uid = sop_class
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = qr.encode_identifier(query(), ctx.supported_ts)
    assoc.send(rq, ctx.id)


def send_cancel(assoc, sop_class, msg_id):
    cancel = dimse.CCancelRQMessage()
    cancel.message_id_being_responded_to = msg_id
    assoc.send(cancel, assoc.context_for(sop_class).id)


def many_matches(record, limit=20000):
    def matches(ctx, ds):
        sent = 0
        try:
            for sent in range(1, limit + 1):
                yield query(PatientName=f'M^{sent}'), 0xFF00
        finally:
            record['yielded'] = sent
            record['closed_at'] = time.monotonic()
    return matches


def test_closing_the_find_generator_cancels_and_the_association_stays(server):
    record = {}
    server.find = many_matches(record)
    with client().request_association(remote(server)) as assoc:
        gen = assoc.get_scu(STUDY_FIND)(query(), 1)
        first = [next(gen) for _ in range(3)]
        gen.close()
        # The SCP stopped well before its 20000 matches and the drain read its final.
        assert record['yielded'] < 20000
        server.find = lambda ctx, ds: iter([(query(PatientName='AFTER'), 0xFF00)])
        after = find_all(assoc, query(), msg_id=2)
    assert [str(ds.PatientName) for ds, _ in first] == ['M^1', 'M^2', 'M^3']
    assert [(str(ds.PatientName) if ds else None, int(s)) for ds, s in after] == [
        ('AFTER', 0xFF00), (None, 0)]


def test_find_scp_answers_c_cancel_with_fe00(server):
    record = {}
    server.find = many_matches(record)
    with client().request_association(remote(server)) as assoc:
        send_request(assoc, dimse.CFindRQMessage(), STUDY_FIND, 11)
        rsp, _ = assoc.receive()
        assert rsp.status == 0xFF00
        send_cancel(assoc, STUDY_FIND, 11)
        statuses_seen = []
        for _ in range(20000):
            rsp, _ = assoc.receive()
            assert rsp.message_id_being_responded_to == 11
            statuses_seen.append(rsp.status)
            if rsp.status != 0xFF00:
                break
        # A late cancel (after the final response) is ignored: the next find works.
        send_cancel(assoc, STUDY_FIND, 11)
        server.find = lambda ctx, ds: iter([(query(PatientName='NEXT'), 0xFF00)])
        after = find_all(assoc, query(), msg_id=12)
    assert statuses_seen[-1] == 0xFE00
    assert record['yielded'] < 20000
    assert [int(s) for _, s in after] == [0xFF00, 0]


# -- C-MOVE --------------------------------------------------------------------------

class Destination(ae_module.StorageAE):
    """A StorageAE that also notes the command set of each C-STORE it receives."""

    def __init__(self, storage_dir, delay=0.0, supported_ts=None):
        super().__init__(storage_dir, 'DEST', 0, supported_ts=supported_ts,
                         bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.commands = []
        self.delay = delay

    def get_file(self, context, command_set):
        self.commands.append(command_set)
        return super().get_file(context, command_set)

    def on_receive_store(self, context, ds):
        time.sleep(self.delay)
        return super().on_receive_store(context, ds)


def ct_files(directory, count, **kwargs):
    directory.mkdir(exist_ok=True)
    return [make_ct_file(directory / f'ct{i}.dcm', **kwargs) for i in range(count)]


def move_all(assoc, destination='DEST', msg_id=5, sop_class=STUDY_MOVE):
    gen = assoc.get_scu(sop_class)(query(StudyInstanceUID='1.2.3'), destination, msg_id)
    return list(itertools.islice(gen, 1000))


def counts(rsp):
    return (rsp.num_of_remaining_sub_ops, rsp.num_of_completed_sub_ops,
            rsp.num_of_failed_sub_ops, rsp.num_of_warning_sub_ops)


@pytest.fixture
def destination(tmp_path):
    with Destination(tmp_path / 'dest') as dest:
        yield dest


def dest_config(dest):
    return {'aet': 'DEST', 'address': '127.0.0.1', 'port': dest.local_ae.port}


def test_move_sends_three_ct_files_to_the_destination(server, destination, tmp_path):
    files = ct_files(tmp_path / 'src', 3)
    server.move = lambda ctx, ds, dest: (dest_config(destination) if dest == 'DEST' else None,
                                         3, [str(f) for f in files])
    with client().request_association(remote(server)) as assoc:
        responses = move_all(assoc, msg_id=5)
    assert [int(s) for s, _ in responses] == [0xFF00] * 3 + [0x0000]
    assert [counts(r) for _, r in responses] == [
        (2, 1, 0, 0), (1, 2, 0, 0), (0, 3, 0, 0), (None, 3, 0, 0)]
    assert all(r.message_id_being_responded_to == 5 for _, r in responses)
    assert server.received[0][2] == 'DEST'
    for source in files:
        sent = pydicom.dcmread(source)
        got = pydicom.dcmread(destination.storage_dir + f'/{sent.SOPInstanceUID}.dcm')
        assert got.PixelData == sent.PixelData and got.SOPClassUID == CT
    assert [(c.MoveOriginatorApplicationEntityTitle.strip(), c.MoveOriginatorMessageID)
            for c in destination.commands] == [('OUR_SCU', 5)] * 3


def test_move_of_datasets_and_a_class_the_destination_refuses(server, destination, tmp_path):
    ct = pydicom.dcmread(ct_files(tmp_path / 'src', 1)[0])
    mr = Dataset()
    mr.SOPClassUID = MR
    mr.SOPInstanceUID = generate_uid()
    mr.PatientName = 'MR^ONLY'
    with destination.lock:  # the destination refuses every class but CT
        for ctx_id, ctx in list(destination.context_def_list.items()):
            if ctx.sop_class not in (CT, uids.VERIFICATION_SOP_CLASS):
                del destination.context_def_list[ctx_id]
    server.move = lambda ctx, ds, dest: (dest_config(destination), 2, iter([mr, ct]))
    with client().request_association(remote(server)) as assoc:
        responses = move_all(assoc)
    final_status, final = responses[-1]
    assert int(final_status) == 0xB000 and final_status.is_warning
    assert counts(final) == (None, 1, 1, 0)
    failed = qr.decode_identifier(final.data_set, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert failed.FailedSOPInstanceUIDList == mr.SOPInstanceUID
    assert (tmp_path / 'dest' / f'{ct.SOPInstanceUID}.dcm').exists()


# Every syntax a native data set may have to be re-encoded in (PS3.5 A.1-A.3, A.5).
NATIVE_TS = [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
             uids.EXPLICIT_VR_BIG_ENDIAN, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]


def pixel_values(ds, ts=None):
    """The 16-bit pixel values of ``ds``, read in the byte order of ``ts`` (its own
    file's syntax by default): pydicom keeps OW values as the bytes it read."""
    ts = ts or ds.file_meta.TransferSyntaxUID
    order = '>' if ts == uids.EXPLICIT_VR_BIG_ENDIAN else '<'
    return struct.unpack(f'{order}{len(ds.PixelData) // 2}H', ds.PixelData)


@pytest.mark.parametrize('accepted', NATIVE_TS)
@pytest.mark.parametrize('source_ts', [uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                       uids.EXPLICIT_VR_BIG_ENDIAN])
def test_move_encodes_a_dataset_for_the_syntax_the_destination_accepts(
        server, tmp_path, source_ts, accepted):
    # A 0.9.x handler gives Datasets read from files; the destination takes one syntax.
    path = make_ct_file(tmp_path / 'src.dcm', transfer_syntax=source_ts)
    sent = pydicom.dcmread(path)
    with Destination(tmp_path / 'dest', supported_ts=[accepted]) as dest:
        server.move = lambda ctx, ds, d: (dest_config(dest), 1, iter([sent]))
        with client().request_association(remote(server)) as assoc:
            responses = move_all(assoc)
    assert [int(s) for s, _ in responses] == [0xFF00, 0x0000]
    got = pydicom.dcmread(tmp_path / 'dest' / f'{sent.SOPInstanceUID}.dcm')
    assert got.file_meta.TransferSyntaxUID == accepted
    assert pixel_values(got) == pixel_values(pydicom.dcmread(path))
    assert (got.Rows, got.PatientName, got.PixelSpacing) == (
        sent.Rows, sent.PatientName, sent.PixelSpacing)


def test_move_to_an_unknown_destination_is_a801(server):
    server.move = lambda ctx, ds, dest: (None, 0, [])
    with client().request_association(remote(server)) as assoc:
        responses = move_all(assoc, destination='NOWHERE')
        again = move_all(assoc, destination='NOWHERE', msg_id=6)
    assert [int(s) for s, _ in responses] == [0xA801]
    assert 'NOWHERE' in responses[0][1].error_comment
    assert [int(s) for s, _ in again] == [0xA801]


def test_a_known_destination_that_cannot_be_reached_is_a702_with_all_failed(
        server, tmp_path, caplog):
    # 0xA801 would say the destination is unknown; it is known, but down: no
    # sub-operation can be performed (PS3.4 C.4.2.1.5).
    files = ct_files(tmp_path / 'src', 2)
    with Destination(tmp_path / 'dest') as dead:
        port = dead.local_ae.port
    server.move = lambda ctx, ds, dest: (
        {'aet': 'DEST', 'address': '127.0.0.1', 'port': port}, 2, [str(f) for f in files])
    with caplog.at_level('WARNING', logger='pynetdicom2.services.queryretrieve'):
        with client().request_association(remote(server)) as assoc:
            responses = move_all(assoc)
    assert [int(s) for s, _ in responses] == [0xA702]
    assert counts(responses[0][1]) == (None, 0, 2, 0)
    assert responses[0][1].error_comment == (
        f'cannot reach move destination DEST at 127.0.0.1:{port}')
    [warning] = [r.getMessage() for r in caplog.records if 'move destination' in r.getMessage()]
    assert warning.startswith('C-MOVE from OUR_SCU@127.0.0.1:')
    assert f'cannot associate with move destination DEST at 127.0.0.1:{port}: ' in warning
    assert warning.endswith('; 2 sub-operation(s) failed')


def test_move_event_handling_error_is_c000_and_the_association_stays(server):
    def failing(ctx, ds, dest):
        raise EventHandlingError('archive offline')
    server.move = failing
    with client().request_association(remote(server)) as assoc:
        responses = move_all(assoc)
        assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(9).is_success
    assert [int(s) for s, _ in responses] == [0xC000]
    assert responses[0][1].error_comment == 'archive offline'


def test_move_scp_answers_c_cancel_with_fe00(server, tmp_path):
    files = ct_files(tmp_path / 'src', 8)
    with Destination(tmp_path / 'dest', delay=0.2) as slow:
        server.move = lambda ctx, ds, dest: (dest_config(slow), 8, [str(f) for f in files])
        with client().request_association(remote(server)) as assoc:
            rq = dimse.CMoveRQMessage()
            rq.move_destination = 'DEST'
            send_request(assoc, rq, STUDY_MOVE, 21)
            first, _ = assoc.receive()
            send_cancel(assoc, STUDY_MOVE, 21)
            rsps = [first]
            while rsps[-1].status == 0xFF00 and len(rsps) < 20:
                rsps.append(assoc.receive()[0])
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(22).is_success
    final = rsps[-1]
    assert final.status == 0xFE00
    remaining, completed, failed, warning = counts(final)
    assert completed < 8 and failed == 0 and remaining == 8 - completed


def test_closing_the_move_generator_cancels_and_the_association_stays(server, tmp_path):
    files = ct_files(tmp_path / 'src', 8)
    with Destination(tmp_path / 'dest', delay=0.2) as slow:
        server.move = lambda ctx, ds, dest: (dest_config(slow), 8, [str(f) for f in files])
        with client().request_association(remote(server)) as assoc:
            gen = assoc.get_scu(STUDY_MOVE)(query(), 'DEST', 31)
            status, rsp = next(gen)
            gen.close()
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(32).is_success
        stored = list((tmp_path / 'dest').glob('*.dcm'))
    assert int(status) == 0xFF00 and rsp.num_of_completed_sub_ops == 1
    assert 1 <= len(stored) < 8


# -- C-GET ---------------------------------------------------------------------------

def get_client(store_in_file=True, scp_role=True, supported_ts=None,
               ae_class=ae_module.ClientAE):
    scu = ae_class('GET_SCU', supported_ts=supported_ts)
    scu.dcm_timeout = TIMEOUT
    scu.add_scu(sopclass.qr_get_scu)
    if scp_role:
        if store_in_file:
            scu.add_scp(sopclass.storage_scp)
        else:
            scu.add_scp(sopclass.sop_classes([CT])(lambda asce, ctx, msg: None))
    else:
        scu.update_context_def_list([CT])
    return scu


def run_get(gen, on_item=None):
    """Consume a C-GET generator; returns (items, final status)."""
    items = []
    for _ in range(1000):
        try:
            item = next(gen)
        except StopIteration as stop:
            return items, stop.value
        items.append(on_item(item) if on_item else item)
    raise AssertionError('C-GET did not end')


def read_file(item):
    ctx, fp = item
    return ctx, pydicom.dcmread(fp)


def test_get_receives_three_instances_in_files(server, tmp_path):
    files = ct_files(tmp_path / 'src', 3)
    server.get = lambda ctx, ds: (3, [str(f) for f in files])
    scu = get_client()
    with scu.request_association(remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        assert assoc.roles[CT] == (0, 1)
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 3), read_file)
        assert assoc.get_scu(STUDY_GET)  # still established
    assert int(final) == 0x0000
    sent = [pydicom.dcmread(f) for f in files]
    assert [ds.SOPInstanceUID for _, ds in items] == [ds.SOPInstanceUID for ds in sent]
    assert [ds.PixelData for _, ds in items] == [ds.PixelData for ds in sent]
    assert all(ctx.sop_class == CT for ctx, _ in items)


def test_get_yields_decoded_datasets_without_store_in_file(server, tmp_path):
    datasets = [pydicom.dcmread(f) for f in ct_files(tmp_path / 'src', 2)]
    server.get = lambda ctx, ds: (2, iter(datasets))
    with get_client(store_in_file=False).request_association(
            remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1))
    assert int(final) == 0
    assert all(isinstance(ds, Dataset) for _, ds in items)
    assert [ds.PixelData for _, ds in items] == [ds.PixelData for ds in datasets]


class GetOnlyAE(ae_module.AE):
    """A 0.9.x-style C-GET SCP: it lists no storage class of its own."""

    def __init__(self):
        super().__init__('GET_SCP', 0, supported_ts=NATIVE_TS, bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.add_scp(sopclass.qr_get_scp)
        self.items = []

    def on_receive_get(self, context, ds):
        return len(self.items), iter(self.items)


@pytest.mark.parametrize('accepted', NATIVE_TS)
@pytest.mark.parametrize('source_ts, kind', [
    (uids.EXPLICIT_VR_LITTLE_ENDIAN, 'dataset'), (uids.EXPLICIT_VR_BIG_ENDIAN, 'dataset'),
    (uids.IMPLICIT_VR_LITTLE_ENDIAN, 'dataset'), (uids.EXPLICIT_VR_LITTLE_ENDIAN, 'path')])
def test_get_encodes_each_sub_operation_for_the_accepted_syntax(
        tmp_path, source_ts, kind, accepted):
    path = make_ct_file(tmp_path / 'src.dcm', transfer_syntax=source_ts)
    with GetOnlyAE() as srv:
        srv.items = [pydicom.dcmread(path) if kind == 'dataset' else str(path)]
        with get_client(supported_ts=[accepted]).request_association(
                remote(srv, 'GET_SCP'), sop_classes=[STUDY_GET, CT]) as assoc:
            assert assoc.context_for(CT).supported_ts == accepted
            items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1), read_file)
    assert int(final) == 0x0000
    [(ctx, got)] = items
    assert ctx.supported_ts == accepted
    assert got.SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID
    assert pixel_values(got, accepted) == pixel_values(pydicom.dcmread(path))


def test_get_of_a_class_without_context_counts_as_failed(server, tmp_path):
    ct_path = str(ct_files(tmp_path / 'src', 1)[0])
    mr = Dataset()
    mr.SOPClassUID = MR
    mr.SOPInstanceUID = generate_uid()
    server.get = lambda ctx, ds: (2, [mr, ct_path])
    with get_client().request_association(remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1), read_file)
    assert len(items) == 1 and int(final) == 0xB000


def test_get_needs_the_scp_role_for_the_storage_class(server, tmp_path):
    files = ct_files(tmp_path / 'src', 2)
    server.get = lambda ctx, ds: (2, [str(f) for f in files])
    with get_client(scp_role=False).request_association(
            remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        assert CT not in assoc.roles
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1))
    assert items == [] and int(final) == 0xB000


def test_get_event_handling_error_is_c000_and_the_association_stays(server, tmp_path):
    def failing(ctx, ds):
        raise EventHandlingError('no such study')
    server.get = failing
    with get_client().request_association(remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1))
        files = ct_files(tmp_path / 'src', 1)
        server.get = lambda ctx, ds: (1, [str(files[0])])
        again, final_again = run_get(assoc.get_scu(STUDY_GET)(query(), 2), read_file)
    assert items == [] and int(final) == 0xC000
    assert len(again) == 1 and int(final_again) == 0


def test_get_into_a_client_storage_ae_stores_through_on_receive_store(server, tmp_path):
    files = ct_files(tmp_path / 'src', 2)
    server.get = lambda ctx, ds: (2, [str(f) for f in files])
    scu = ae_module.ClientStorageAE(tmp_path / 'got', 'GET_SCU')
    # Workaround: with every storage class registered first, the GET context gets an
    # ID above 255, which contexts_to_propose(sop_classes) does not renumber (aebase.py).
    scu.context_def_list.clear()
    scu.update_context_def_list([CT], store_in_file=True)
    scu.add_scu(sopclass.qr_get_scu)
    with scu.request_association(remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1), read_file)
    assert int(final) == 0 and len(items) == 2
    for source in files:
        uid = pydicom.dcmread(source).SOPInstanceUID
        assert pydicom.dcmread(tmp_path / 'got' / f'{uid}.dcm').PixelData == \
            pydicom.dcmread(source).PixelData


class OwnStoreHookAE(ae_module.ClientAE):
    """A 0.9.8-style client: its own on_receive_store warns (0xB007) for each data set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hook_calls = []

    def on_receive_store(self, context, ds):
        self.hook_calls.append(context.sop_class)
        return 0xB007


@pytest.mark.parametrize('ae_class, final_status, hook_calls', [
    # The library's own hook (0xB006) is not asked: each C-STORE is answered 0x0000.
    (ae_module.ClientAE, 0x0000, None),
    # A subclass's hook is: its warnings make the C-GET end with 0xB000.
    (OwnStoreHookAE, 0xB000, [CT, CT])])
def test_get_asks_on_receive_store_only_when_the_ae_has_its_own(
        server, tmp_path, ae_class, final_status, hook_calls):
    files = ct_files(tmp_path / 'src', 2)
    server.get = lambda ctx, ds: (2, [str(f) for f in files])
    scu = get_client(ae_class=ae_class)
    with scu.request_association(remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        items, final = run_get(assoc.get_scu(STUDY_GET)(query(), 1), read_file)
    assert int(final) == final_status and len(items) == 2
    assert getattr(scu, 'hook_calls', None) == hook_calls


def test_closing_the_get_generator_cancels_and_the_association_stays(server, tmp_path):
    files = ct_files(tmp_path / 'src', 6)
    record = {}

    def slow(ctx, ds):
        def gen():
            try:
                for n, f in enumerate(files, 1):
                    record['yielded'] = n
                    yield str(f)
            finally:
                record['closed'] = True
        return 6, gen()
    server.get = slow
    with get_client().request_association(remote(server), sop_classes=[STUDY_GET, CT]) as assoc:
        gen = assoc.get_scu(STUDY_GET)(query(), 1)
        ctx, fp = next(gen)
        first = pydicom.dcmread(fp)
        gen.close()
        server.get = lambda ctx, ds: (1, [str(files[5])])
        again, final = run_get(assoc.get_scu(STUDY_GET)(query(), 2), read_file)
    assert first.SOPInstanceUID == pydicom.dcmread(files[0]).SOPInstanceUID
    assert record['yielded'] < 6 and record['closed']
    assert len(again) == 1 and int(final) == 0
