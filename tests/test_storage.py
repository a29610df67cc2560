"""Storage service (C-STORE SCU and SCP) and the storage AEs, end to end over loopback.

Every test looks at what lands on disk: names, bytes, pixel data, and the statuses the
SCU receives, including what a hostile UID or a peer dying mid-transfer leaves behind.
"""

from __future__ import annotations

import io
import os
import pathlib
import struct
import time
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, pdu, sopclass, statuses, uids
from pynetdicom2.exceptions import (
    AssociationAbortedError, ClassNotSupportedError, EventHandlingError)
from pynetdicom2.services.storage import encode_data_set, read_file_meta, read_instance_uids
from tests.fakepeer import associate_raw, read_until_closed
from tests.peers import dcmtk, make_ct_file, receiving_files, run_tool

CT = uids.CT_IMAGE_STORAGE


# -- helpers --------------------------------------------------------------------------

def make_server(storage_dir, ae_class=ae_module.StorageAE, **kwargs):
    server = ae_class(storage_dir, 'STORE_SCP', 0, bind_address='127.0.0.1', **kwargs)
    server.dcm_timeout = 5
    server.artim_timeout = 2
    return server


def client(supported_ts=None):
    scu = ae_module.ClientAE('STORE_SCU', supported_ts=supported_ts)
    scu.add_scu(sopclass.storage_scu, [CT]).add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 5
    return scu


def remote(server):
    return {'aet': 'STORE_SCP', 'address': '127.0.0.1', 'port': server.local_ae.port}


def store(server, *items, supported_ts=None):
    """C-STORE each item on one association; the statuses."""
    with client(supported_ts).request_association(remote(server)) as assoc:
        svc = assoc.get_scu(CT)
        return [svc(item, i + 1) for i, item in enumerate(items)]


def data_set_bytes(path) -> bytes:
    """A Part-10 file's data set: the bytes after its File Meta group."""
    raw = pathlib.Path(path).read_bytes()
    meta = read_file_meta(io.BytesIO(raw))
    assert meta is not None, f'{path} is not a Part-10 file'
    return raw[meta.data_set_offset:]


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def listing(directory) -> list:
    return sorted(os.listdir(directory))


@pytest.fixture
def server(store_dir):
    with make_server(store_dir) as srv:
        yield srv


def uid_of(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


# -- our SCU to our StorageAE -----------------------------------------------------------

def test_file_arrives_under_its_uid_with_identical_data_set(server, store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.4.5.6.7')
    [status] = store(server, str(src))
    assert isinstance(status, statuses.Status) and int(status) == 0x0000
    assert listing(store_dir) == ['1.2.3.4.5.6.7.dcm']
    received = store_dir / '1.2.3.4.5.6.7.dcm'
    assert data_set_bytes(received) == data_set_bytes(src)
    got, want = pydicom.dcmread(received), pydicom.dcmread(src)
    assert got.PixelData == want.PixelData
    assert got.file_meta.MediaStorageSOPInstanceUID == '1.2.3.4.5.6.7'
    assert got.file_meta.MediaStorageSOPClassUID == CT
    assert got.file_meta.TransferSyntaxUID == uids.EXPLICIT_VR_LITTLE_ENDIAN
    assert got.file_meta.ImplementationClassUID == ae_module.IMPLEMENTATION_UID


def test_pathlike_and_dataset_both_work(server, store_dir, tmp_path):
    src_a = make_ct_file(tmp_path / 'a.dcm', sop_instance_uid='1.2.3.1')
    src_b = make_ct_file(tmp_path / 'b.dcm', sop_instance_uid='1.2.3.2', rows=32, cols=48)
    statuses_ = store(server, src_a, pydicom.dcmread(src_b))
    assert [int(s) for s in statuses_] == [0, 0]
    assert listing(store_dir) == ['1.2.3.1.dcm', '1.2.3.2.dcm']
    got = pydicom.dcmread(store_dir / '1.2.3.2.dcm')
    want = pydicom.dcmread(src_b)
    assert (got.Rows, got.Columns) == (32, 48)
    assert got.PixelData == want.PixelData
    assert str(got.PatientName) == 'TEST^CT'


def test_twenty_instances_over_one_association(server, store_dir, tmp_path):
    sources = [make_ct_file(tmp_path / f'{i}.dcm', sop_instance_uid=f'1.2.840.99.{i}')
               for i in range(20)]
    with client().request_association(remote(server)) as assoc:
        svc = assoc.get_scu(CT)
        results = [svc(str(src), i + 1) for i, src in enumerate(sources)]
    assert [int(s) for s in results] == [0] * 20
    assert listing(store_dir) == sorted(f'1.2.840.99.{i}.dcm' for i in range(20))
    for i, src in enumerate(sources):
        assert data_set_bytes(store_dir / f'1.2.840.99.{i}.dcm') == data_set_bytes(src)


def test_duplicate_uid_gets_suffix_then_out_of_resources(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.9')
    with make_server(store_dir) as srv:
        srv.max_iterations = 2
        results = store(srv, src, src, src, src)
    assert [int(s) for s in results] == [0, 0, 0, 0xA700]
    assert results[3].is_failure
    assert listing(store_dir) == ['1.2.3.9.dcm', '1.2.3.9_1.dcm', '1.2.3.9_2.dcm']
    for name in listing(store_dir):
        assert data_set_bytes(store_dir / name) == data_set_bytes(src)


def test_move_originator_and_priority_reach_the_scp(tmp_path):
    seen = []

    @sopclass.sop_classes([CT])
    def recording_scp(asce, ctx, msg):
        seen.append((msg.message_id, msg.affected_sop_class_uid, msg.affected_sop_instance_uid,
                     msg.priority, msg.move_originator_aet, msg.move_originator_message_id,
                     type(msg.data_set)))
        asce.send(sopclass.response_to(msg, dimse.CStoreRSPMessage, 0xB000), ctx.id)

    srv = ae_module.AE('STORE_SCP', 0, bind_address='127.0.0.1').add_scp(recording_scp)
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.77')
    with srv:
        with client().request_association(remote(srv)) as assoc:
            svc = assoc.get_scu(CT)
            status = svc(src, 7, move_originator_aet='MOVER', move_originator_message_id=3)
            plain = svc(src, 8)
    assert int(status) == 0xB000 and status.is_warning
    assert int(plain) == 0xB000
    assert seen[0] == (7, CT, '1.2.3.77', dimse.PRIORITY_MEDIUM, 'MOVER', 3, bytes)
    assert seen[1][4:6] == (None, None)


def test_hook_statuses_as_int_and_default_ae_hook(store_dir, tmp_path):
    class IntStatusAE(ae_module.AE):
        def on_receive_store(self, context, ds):
            # A store_in_file class: an open Part-10 file at its start.
            assert ds.tell() == 0
            self.received = pydicom.dcmread(ds)
            return 0xB007

    srv = IntStatusAE('STORE_SCP', 0, bind_address='127.0.0.1').add_scp(sopclass.storage_scp)
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.78')
    with srv:
        [status] = store(srv, src)
    assert int(status) == 0xB007 and status.is_warning
    assert srv.received.SOPInstanceUID == '1.2.3.78'
    assert srv.received.PixelData == pydicom.dcmread(src).PixelData

    plain = ae_module.AE('STORE_SCP', 0, bind_address='127.0.0.1').add_scp(sopclass.storage_scp)
    with plain:
        [status] = store(plain, src)
    assert int(status) == 0xB006  # the original's default answer


# -- transfer syntaxes ------------------------------------------------------------------

def test_explicit_file_reencoded_when_only_implicit_accepted(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.10')
    with make_server(store_dir, supported_ts=[uids.IMPLICIT_VR_LITTLE_ENDIAN]) as srv:
        [status] = store(srv, src)
    assert int(status) == 0
    got = pydicom.dcmread(store_dir / '1.2.3.10.dcm')
    assert got.file_meta.TransferSyntaxUID == uids.IMPLICIT_VR_LITTLE_ENDIAN
    assert got.PixelData == pydicom.dcmread(src).PixelData
    assert got.Rows == 64 and str(got.PatientName) == 'TEST^CT'


def test_big_endian_file_reencoded_to_little_endian_keeps_pixels(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'be.dcm', sop_instance_uid='1.2.3.11', rows=8, cols=8,
                       transfer_syntax=uids.EXPLICIT_VR_BIG_ENDIAN)
    with make_server(store_dir, supported_ts=[uids.EXPLICIT_VR_LITTLE_ENDIAN]) as srv:
        [status] = store(srv, src)
    assert int(status) == 0
    got = pydicom.dcmread(store_dir / '1.2.3.11.dcm')
    assert got.file_meta.TransferSyntaxUID == uids.EXPLICIT_VR_LITTLE_ENDIAN
    # The ramp make_ct_file writes: value i at pixel i, now in little endian order.
    assert got.PixelData == b''.join(i.to_bytes(2, 'little') for i in range(64))


def test_little_endian_dataset_to_big_endian_swaps_pixels(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'le.dcm', sop_instance_uid='1.2.3.12', rows=4, cols=4)
    ds = pydicom.dcmread(src)
    before = ds.PixelData
    with make_server(store_dir, supported_ts=[uids.EXPLICIT_VR_BIG_ENDIAN]) as srv:
        [status] = store(srv, ds)
    assert int(status) == 0
    assert ds.PixelData == before  # the caller's data set is left as it was
    got = pydicom.dcmread(store_dir / '1.2.3.12.dcm')
    assert got.file_meta.TransferSyntaxUID == uids.EXPLICIT_VR_BIG_ENDIAN
    assert got.PixelData == b''.join(i.to_bytes(2, 'big') for i in range(16))


def test_deflated_both_ways(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.13')
    deflated = [uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]
    with make_server(store_dir, supported_ts=deflated) as srv:
        [status] = store(srv, src, supported_ts=deflated + [uids.EXPLICIT_VR_LITTLE_ENDIAN])
    assert int(status) == 0
    stored = store_dir / '1.2.3.13.dcm'
    got = pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    assert got.PixelData == pydicom.dcmread(src).PixelData
    # And back: the deflated file to an SCP that only takes explicit little endian.
    second = tmp_path / 'second'
    with make_server(second) as srv:
        [status] = store(srv, stored)
    assert int(status) == 0
    back = pydicom.dcmread(second / '1.2.3.13.dcm')
    assert back.file_meta.TransferSyntaxUID == uids.EXPLICIT_VR_LITTLE_ENDIAN
    assert back.PixelData == got.PixelData


@pytest.fixture
def jpeg_file(tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.14')
    out = tmp_path / 'jpeg.dcm'
    result = run_tool([dcmtk('dcmcjpeg'), '+eb', str(src), str(out)])
    assert result.returncode == 0, result.stderr
    assert pydicom.dcmread(out).file_meta.TransferSyntaxUID == uids.JPEG_BASELINE_PROCESS_1
    return out


def test_jpeg_file_refused_when_only_uncompressed_accepted_and_lossy_decompression_refused(
        server, store_dir, jpeg_file):
    # Decompressing is the default (tests/test_transcode.py); decompress_lossy=False
    # refuses it, as DCMTK's +dls.
    with client(supported_ts=[uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.JPEG_BASELINE_PROCESS_1]
                ).request_association(remote(server)) as assoc:
        assert [c.supported_ts for c in assoc.accepted_contexts.values()
                if c.sop_class == CT] == [uids.EXPLICIT_VR_LITTLE_ENDIAN]
        with pytest.raises(ClassNotSupportedError) as info:
            assoc.get_scu(CT)(jpeg_file, 1, decompress_lossy=False)
        # Nothing was sent: the association still answers an echo.
        assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2)) == 0
    text = str(info.value)
    assert 'JPEG Baseline' in text and uids.JPEG_BASELINE_PROCESS_1 in text
    assert 'Explicit VR Little Endian' in text
    assert listing(store_dir) == []


def test_jpeg_file_arrives_byte_identical_when_accepted(store_dir, jpeg_file):
    jpeg_first = [uids.JPEG_BASELINE_PROCESS_1, uids.EXPLICIT_VR_LITTLE_ENDIAN]
    with make_server(store_dir, supported_ts=jpeg_first) as srv:
        [status] = store(srv, jpeg_file, supported_ts=jpeg_first)
    assert int(status) == 0
    uid = uid_of(jpeg_file)
    received = store_dir / f'{uid}.dcm'
    assert listing(store_dir) == [f'{uid}.dcm']
    assert data_set_bytes(received) == data_set_bytes(jpeg_file)
    assert pydicom.dcmread(received).file_meta.TransferSyntaxUID == uids.JPEG_BASELINE_PROCESS_1


def test_context_chosen_by_the_files_own_syntax(store_dir, tmp_path, jpeg_file):
    """Two contexts for CT (JPEG and explicit LE): each file goes on the one in its syntax."""
    plain = make_ct_file(tmp_path / 'plain.dcm', sop_instance_uid='1.2.3.15')
    scu = client()
    contexts = {1: ae_module.PContextDefList(1, CT, [uids.JPEG_BASELINE_PROCESS_1]),
                3: ae_module.PContextDefList(3, CT, [uids.EXPLICIT_VR_LITTLE_ENDIAN])}
    with make_server(store_dir, supported_ts=[uids.JPEG_BASELINE_PROCESS_1,
                                              uids.EXPLICIT_VR_LITTLE_ENDIAN]) as srv:
        assoc = ae_module.AssociationRequester(scu, scu.max_pdu_length, remote(srv), contexts)
        assoc.request()
        try:
            svc = assoc.get_scu(CT)
            results = [svc(plain, 1), svc(jpeg_file, 2), svc(pydicom.dcmread(plain), 3)]
        finally:
            assoc.release()
    assert [int(s) for s in results] == [0, 0, 0]
    jpeg_uid = uid_of(jpeg_file)
    assert data_set_bytes(store_dir / f'{jpeg_uid}.dcm') == data_set_bytes(jpeg_file)
    assert data_set_bytes(store_dir / '1.2.3.15.dcm') == data_set_bytes(plain)
    assert (pydicom.dcmread(store_dir / '1.2.3.15_1.dcm').file_meta.TransferSyntaxUID
            == uids.EXPLICIT_VR_LITTLE_ENDIAN)


def test_context_chosen_by_the_data_sets_own_sop_class(server, store_dir, tmp_path):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.16'))
    ds.SOPClassUID = uids.MR_IMAGE_STORAGE
    scu = client()
    scu.add_scu(sopclass.storage_scu, [uids.MR_IMAGE_STORAGE])
    with scu.request_association(remote(server)) as assoc:
        # The service was fetched for CT; the MR data set still goes on the MR context.
        assert int(assoc.get_scu(CT)(ds, 1)) == 0
    got = pydicom.dcmread(store_dir / '1.2.3.16.dcm')
    assert got.file_meta.MediaStorageSOPClassUID == uids.MR_IMAGE_STORAGE
    assert got.SOPClassUID == uids.MR_IMAGE_STORAGE


def test_unaccepted_sop_class_raises_before_sending(server, tmp_path):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm'))
    ds.SOPClassUID = uids.MR_IMAGE_STORAGE
    with client().request_association(remote(server)) as assoc:
        with pytest.raises(ClassNotSupportedError, match=uids.MR_IMAGE_STORAGE):
            assoc.get_scu(CT)(ds, 1)
        assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2)) == 0


# -- the SCP's refusals and failures ------------------------------------------------------

@pytest.mark.filterwarnings('ignore:Invalid value for VR UI', 'ignore:The value length')
@pytest.mark.parametrize('hostile', ['../evil', '../../etc/x', 'a/b', '1.2.3/../../x',
                                     '1' * 65, '.1.2', '1..2', 'C:\\x'])
def test_hostile_uid_is_refused_and_nothing_escapes(tmp_path, hostile):
    outer = tmp_path / 'outer'
    inner = outer / 'inner'
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # pydicom warns about the invalid UI value
        ds.SOPInstanceUID = hostile
    with make_server(inner) as srv:
        with client().request_association(remote(srv)) as assoc:
            status = assoc.get_scu(CT)(ds, 1)
            # The association stays usable after the refusal.
            assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2)) == 0
    assert int(status) == 0xC000 and status.is_failure
    assert listing(inner) == []
    assert listing(outer) == ['inner']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ct.dcm', 'outer']


@pytest.mark.filterwarnings('ignore:Invalid value for VR UI')
def test_hostile_uid_answer_carries_an_error_comment(store_dir, tmp_path):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds.SOPInstanceUID = '../evil'
    with make_server(store_dir) as srv:
        with client().request_association(remote(srv)) as assoc:
            ctx = assoc.context_for(CT)
            rq = dimse.CStoreRQMessage()
            rq.message_id = 5
            rq.affected_sop_class_uid = CT
            rq.affected_sop_instance_uid = '../evil'
            rq.priority = dimse.PRIORITY_MEDIUM
            rq.data_set = encode_data_set(ds, ctx.supported_ts)
            assoc.send(rq, ctx.id)
            rsp, _ = assoc.receive()
    assert isinstance(rsp, dimse.CStoreRSPMessage)
    assert rsp.status == 0xC000 and rsp.message_id_being_responded_to == 5
    assert rsp.affected_sop_instance_uid == '../evil'
    assert 'invalid SOP Instance UID' in rsp.error_comment
    assert listing(store_dir) == []


def test_event_handling_error_answers_c000_and_association_stays(store_dir, tmp_path):
    class FlakyAE(ae_module.StorageAE):
        failures = 1

        def on_receive_store(self, context, ds):
            if self.failures:
                self.failures -= 1
                raise EventHandlingError('not now')
            return super().on_receive_store(context, ds)

    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.20')
    with make_server(store_dir, ae_class=FlakyAE) as srv:
        results = store(srv, src, src)
    assert [int(s) for s in results] == [0xC000, 0x0000]
    # The refused one left no temporary file behind.
    assert listing(store_dir) == ['1.2.3.20.dcm']


def test_other_hook_exception_aborts_only_that_association(store_dir, tmp_path):
    class BrokenAE(ae_module.StorageAE):
        def on_receive_store(self, context, ds):
            raise RuntimeError('bug in the handler')

    src = make_ct_file(tmp_path / 'ct.dcm')
    with make_server(store_dir, ae_class=BrokenAE) as srv:
        with pytest.raises(AssociationAbortedError):
            store(srv, src)
        with client().request_association(remote(srv)) as assoc:
            assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)) == 0
    assert wait_until(lambda: listing(store_dir) == [])


# -- a peer dying in the middle of a data set ------------------------------------------------

@pytest.mark.parametrize('how', ['a-abort', 'close'])
def test_peer_dying_mid_data_set_leaves_nothing(server, store_dir, tmp_path, how):
    src = make_ct_file(tmp_path / 'big.dcm', sop_instance_uid='1.2.3.30', rows=256, cols=256)
    rq = dimse.CStoreRQMessage()
    rq.message_id = 1
    rq.affected_sop_class_uid = CT
    rq.affected_sop_instance_uid = '1.2.3.30'
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = data_set_bytes(src)
    pdus = [p.encode() for p in rq.encode(1, 4096)]
    assert len(pdus) > 20
    sock = associate_raw(server.local_ae.port, CT)
    try:
        for raw in pdus[:len(pdus) // 2]:
            sock.sendall(raw)
        # The data set is streaming into a temporary file, under no final name.
        assert wait_until(lambda: receiving_files(store_dir) == 1)
        assert not any(n.endswith('.dcm') for n in listing(store_dir))
        if how == 'a-abort':
            sock.sendall(pdu.AAbortPDU(0, 0).encode())
    finally:
        sock.close()
    assert wait_until(lambda: listing(store_dir) == [] and receiving_files(store_dir) == 0), \
        listing(store_dir)
    # The AE keeps serving.
    with client().request_association(remote(server)) as assoc:
        assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)) == 0
        assert int(assoc.get_scu(CT)(src, 2)) == 0
    assert listing(store_dir) == ['1.2.3.30.dcm']


def test_peer_stalling_mid_data_set_times_out_and_leaves_nothing(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'big.dcm', sop_instance_uid='1.2.3.31', rows=128, cols=128)
    rq = dimse.CStoreRQMessage()
    rq.message_id = 1
    rq.affected_sop_class_uid = CT
    rq.affected_sop_instance_uid = '1.2.3.31'
    rq.data_set = data_set_bytes(src)
    pdus = [p.encode() for p in rq.encode(1, 4096)]
    with make_server(store_dir) as srv:
        srv.dcm_timeout = 0.5
        sock = associate_raw(srv.local_ae.port, CT)
        try:
            for raw in pdus[:3]:
                sock.sendall(raw)
            assert wait_until(lambda: receiving_files(store_dir) == 1)
            # We send nothing more: the SCP gives up after dcm_timeout and cleans up.
            assert wait_until(lambda: listing(store_dir) == [] and
                              receiving_files(store_dir) == 0, timeout=5), listing(store_dir)
            # ... and the connection is closed (after an A-ABORT, PS3.8 9.2.3 ARTIM/AA-2).
            rest = read_until_closed(sock, timeout=5)
            assert rest == b'' or rest[0] == 0x07, rest[:16]
        finally:
            sock.close()


# -- pieces: file meta reading, the mixin without a network ---------------------------------

@pytest.mark.unit
def test_read_file_meta_with_and_without_group_length(tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.40')
    raw = src.read_bytes()
    meta = read_file_meta(io.BytesIO(raw))
    assert meta.sop_class_uid == CT and meta.sop_instance_uid == '1.2.3.40'
    assert meta.transfer_syntax == uids.EXPLICIT_VR_LITTLE_ENDIAN
    group_length = struct.unpack('<L', raw[140:144])[0]
    assert raw[132:136] == b'\x02\x00\x00\x00' and meta.data_set_offset == 144 + group_length
    # Without (0002,0000) the elements themselves say where the data set starts.
    stripped = raw[:132] + raw[144:]
    meta2 = read_file_meta(io.BytesIO(stripped))
    assert meta2._replace(data_set_offset=0) == meta._replace(data_set_offset=0)
    assert stripped[meta2.data_set_offset:] == raw[meta.data_set_offset:]
    assert read_file_meta(io.BytesIO(b'\x00' * 128 + b'XXXX')) is None
    assert read_file_meta(io.BytesIO(b'short')) is None


def test_file_without_group_length_is_sent_as_is(server, store_dir, tmp_path):
    raw = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.41').read_bytes()
    stripped = tmp_path / 'nogl.dcm'
    stripped.write_bytes(raw[:132] + raw[144:])
    [status] = store(server, stripped)
    assert int(status) == 0
    assert data_set_bytes(store_dir / '1.2.3.41.dcm') == data_set_bytes(tmp_path / 'ct.dcm')


def test_file_without_meta_is_read_by_pydicom(server, store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.42')
    bare = tmp_path / 'bare.dcm'
    bare.write_bytes(data_set_bytes(src))
    [status] = store(server, bare)
    assert int(status) == 0
    assert pydicom.dcmread(store_dir / '1.2.3.42.dcm').PixelData == pydicom.dcmread(src).PixelData


@pytest.mark.unit
def test_read_instance_uids_from_raw_bytes(tmp_path):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.43'))
    for ts in (uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_BIG_ENDIAN,
               uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN):
        assert read_instance_uids(encode_data_set(ds, ts), ts) == (CT, '1.2.3.43')


@pytest.mark.unit
def test_client_storage_ae_folder_owner_and_legacy_get_file(tmp_path):
    scu = ae_module.ClientStorageAE(tmp_path / 'got', 'GETSCU')
    assert scu.supported_scp[CT] is sopclass.storage_scp and CT in scu.store_in_file
    assert scu.max_iterations == 10
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.44'))
    ctx = ae_module.PContextDefList(1, CT, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    raw = encode_data_set(ds, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    # The factory: a temporary file of the folder (unnamed where the system can) until
    # committed.
    owner = scu.incoming_data_set(CT, '1.2.3.44', uids.EXPLICIT_VR_LITTLE_ENDIAN)
    owner.write(raw)
    assert receiving_files(tmp_path / 'got') == 1
    assert not any(name.endswith('.dcm') for name in listing(tmp_path / 'got'))
    assert owner.check() is None
    assert owner.commit(ctx) == str(tmp_path / 'got' / '1.2.3.44.dcm')
    owner.release()
    # 0.9.x code calling get_file / discard_file: the same owner behind the file.
    command = Dataset()
    command.AffectedSOPClassUID = CT
    command.AffectedSOPInstanceUID = '1.2.3.44'
    fp, start = scu.get_file(ctx, command)
    fp.write(raw)
    fp.incoming_data_set.commit(ctx)
    scu.discard_file(fp)
    assert fp.closed
    assert listing(tmp_path / 'got') == ['1.2.3.44.dcm', '1.2.3.44_1.dcm']
    for name in listing(tmp_path / 'got'):
        assert data_set_bytes(tmp_path / 'got' / name) == raw
    # A discarded transfer leaves nothing.
    fp, _ = scu.get_file(ctx, command)
    fp.write(raw[:100])
    scu.discard_file(fp)
    assert fp.closed and len(listing(tmp_path / 'got')) == 2


@pytest.mark.unit
def test_write_meta_matches_pydicoms_own_file_meta_writer():
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_file_meta_info

    from pynetdicom2.ae import write_meta
    from pynetdicom2.asceprovider import IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME

    command_set = Dataset()
    command_set.AffectedSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
    command_set.AffectedSOPInstanceUID = '1.2.3.456'          # odd length: padded
    ours = io.BytesIO()
    write_meta(ours, command_set, '1.2.840.10008.1.2')
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = command_set.AffectedSOPClassUID
    meta.MediaStorageSOPInstanceUID = command_set.AffectedSOPInstanceUID
    meta.TransferSyntaxUID = '1.2.840.10008.1.2'
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    theirs = io.BytesIO()
    theirs.write(b'\x00' * 128 + b'DICM')
    write_file_meta_info(DicomFileLike(theirs), meta, enforce_standard=True)
    assert ours.getvalue() == theirs.getvalue()


# -- the 0.9.8 pattern: the hook only decides the status (API.md section 2) ---------------------

class Recording098AE(ae_module.StorageAE):
    """The commonest 0.9.x storage server: a StorageAE whose on_receive_store reads the
    file with pydicom and returns a status of its own, never calling super."""

    answer = statuses.SUCCESS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def on_receive_store(self, context, ds):
        if isinstance(ds, bytes):  # a SOP class taken out of store_in_file
            ds = pydicom.filereader.read_dataset(io.BytesIO(ds), False, True)
        else:
            ds = pydicom.dcmread(ds)
        self.seen.append(str(ds.SOPInstanceUID))
        return self.answer


def temporary_files(directory) -> list:
    return [name for name in listing(directory) if name.endswith('.part')]


@pytest.mark.parametrize('answer', [statuses.SUCCESS, 0x0000, statuses.Status(0xB007),
                                    0xB000])
def test_098_hook_returning_success_without_super_keeps_every_file(store_dir, tmp_path,
                                                                   answer):
    sources = [make_ct_file(tmp_path / f'{i}.dcm', sop_instance_uid=f'1.2.3.60.{i}')
               for i in range(5)]
    with make_server(store_dir, ae_class=Recording098AE) as srv:
        srv.answer = answer
        with client().request_association(remote(srv)) as assoc:
            svc = assoc.get_scu(CT)
            results = []
            for i, src in enumerate(sources):
                results.append(int(svc(str(src), i + 1)))
                # The response has arrived: the file is under its final name already.
                assert f'1.2.3.60.{i}.dcm' in listing(store_dir)
    assert results == [int(answer)] * 5
    assert srv.seen == [f'1.2.3.60.{i}' for i in range(5)]
    assert listing(store_dir) == [f'1.2.3.60.{i}.dcm' for i in range(5)]
    for i, src in enumerate(sources):
        assert data_set_bytes(store_dir / f'1.2.3.60.{i}.dcm') == data_set_bytes(src)


@pytest.mark.parametrize('answer', [statuses.C_STORE_OUT_OF_RESOURCES, 0xC123, 0xA900,
                                    statuses.PROCESSING_FAILURE])
def test_098_hook_returning_a_failure_keeps_nothing(store_dir, tmp_path, answer):
    sources = [make_ct_file(tmp_path / f'{i}.dcm', sop_instance_uid=f'1.2.3.61.{i}')
               for i in range(3)]
    with make_server(store_dir, ae_class=Recording098AE) as srv:
        srv.answer = answer
        results = store(srv, *sources)
    assert [int(s) for s in results] == [int(answer)] * 3
    assert all(s.is_failure for s in results)
    assert len(srv.seen) == 3
    assert listing(store_dir) == []


def test_098_hook_that_calls_super_then_fails_keeps_nothing(store_dir, tmp_path):
    class SecondThoughts(ae_module.StorageAE):
        def on_receive_store(self, context, ds):
            assert super().on_receive_store(context, ds) == statuses.SUCCESS
            return statuses.C_STORE_CANNOT_UNDERSTAND

    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.62')
    with make_server(store_dir, ae_class=SecondThoughts) as srv:
        [status] = store(srv, src)
    assert int(status) == 0xC000
    assert listing(store_dir) == []


def test_098_hook_that_closes_the_file_still_keeps_it(store_dir, tmp_path):
    class Closing(ae_module.StorageAE):
        def on_receive_store(self, context, ds):
            with ds:
                pydicom.dcmread(ds, stop_before_pixels=True)
            # ds.name is a path a hook can open again (0.9.8 gave the final one).
            assert pydicom.dcmread(ds.name).SOPInstanceUID == '1.2.3.63'
            return statuses.SUCCESS

    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.63')
    with make_server(store_dir, ae_class=Closing) as srv:
        [status] = store(srv, src)
    assert int(status) == 0
    assert listing(store_dir) == ['1.2.3.63.dcm']
    assert data_set_bytes(store_dir / '1.2.3.63.dcm') == data_set_bytes(src)


def test_098_bytes_hook_of_a_folder_storage_keeps_the_file_too(store_dir, tmp_path):
    """A SOP class taken out of store_in_file: the hook gets bytes, and its Success
    still means the instance is in the folder."""
    class BytesHook(ae_module.StorageAE):
        def on_receive_store(self, context, ds):
            assert isinstance(ds, bytes)
            self.got = ds
            return statuses.SUCCESS

    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.64')
    with make_server(store_dir, ae_class=BytesHook) as srv:
        srv.store_in_file.discard(CT)
        [status] = store(srv, src)
    assert int(status) == 0
    assert srv.got == data_set_bytes(src)
    assert listing(store_dir) == ['1.2.3.64.dcm']
    assert data_set_bytes(store_dir / '1.2.3.64.dcm') == data_set_bytes(src)


def test_098_get_file_override_keeps_the_users_file_whatever_the_status(tmp_path):
    """A 0.9.8 get_file override writing where it likes: the file stays the user's,
    never renamed nor deleted, even when the store fails."""
    own = tmp_path / 'own'
    own.mkdir()

    class OwnFiles(ae_module.AE):
        answer = statuses.C_STORE_OUT_OF_RESOURCES

        def get_file(self, context, command_set):
            fp = open(own / f'{command_set.AffectedSOPInstanceUID}.dcm', 'w+b')
            ae_module.write_meta(fp, command_set, context.supported_ts)
            return fp, 0

        def on_receive_store(self, context, ds):
            assert ds.tell() == 0 and pydicom.dcmread(ds).SOPInstanceUID
            return self.answer

    srv = OwnFiles('STORE_SCP', 0, bind_address='127.0.0.1').add_scp(sopclass.storage_scp)
    srv.dcm_timeout = 5
    a = make_ct_file(tmp_path / 'a.dcm', sop_instance_uid='1.2.3.65.1')
    b = make_ct_file(tmp_path / 'b.dcm', sop_instance_uid='1.2.3.65.2')
    with srv:
        [failed] = store(srv, a)
        srv.answer = statuses.SUCCESS
        [succeeded] = store(srv, b)
    assert (int(failed), int(succeeded)) == (0xA700, 0)
    assert listing(own) == ['1.2.3.65.1.dcm', '1.2.3.65.2.dcm']
    assert data_set_bytes(own / '1.2.3.65.1.dcm') == data_set_bytes(a)
    assert data_set_bytes(own / '1.2.3.65.2.dcm') == data_set_bytes(b)


# -- integrity before Success: the data set parses to its end and is the one named ----------

def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element (PS3.5 7.1.2)."""
    if len(value) % 2:
        value += b'\x00' if vr == b'UI' else b' '
    if vr in (b'OB', b'OW', b'SQ', b'UN', b'UT'):
        return struct.pack('<HH2s2xL', group, elem, vr, len(value)) + value
    return struct.pack('<HH2sH', group, elem, vr, len(value)) + value


def uid_elements(sop_instance_uid: str, sop_class_uid: str = CT) -> bytes:
    return (element(0x0008, 0x0016, b'UI', sop_class_uid.encode())
            + element(0x0008, 0x0018, b'UI', sop_instance_uid.encode()))


def truncated_data_sets(tmp_path) -> dict:
    whole = data_set_bytes(make_ct_file(tmp_path / 'whole.dcm', sop_instance_uid='1.2.3.70'))
    header = uid_elements('1.2.3.70')
    return {
        # (0010,0010) says 200 bytes, 4 follow.
        'value-past-the-end': header + struct.pack('<HH2sH', 0x0010, 0x0010, b'PN', 200)
        + b'AB^C',
        # A real CT whose pixel data lost its last 1000 bytes on the way.
        'pixel-data-cut': whole[:-1000],
        # An undefined-length sequence (0008,1115) with one item, never delimited.
        'sequence-never-closed': header
        + struct.pack('<HH2s2xL', 0x0008, 0x1115, b'SQ', 0xFFFFFFFF)
        + struct.pack('<HHL', 0xFFFE, 0xE000, 14) + element(0x0008, 0x1150, b'UI', b'1.2.3'),
    }


def send_raw_store(assoc, data: bytes, sop_instance_uid: str, msg_id: int,
                   sop_class_uid: str = CT) -> dimse.CStoreRSPMessage:
    """A C-STORE-RQ carrying ``data`` as it is, on the explicit VR little endian context."""
    ctx = assoc.context_for(CT, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert ctx.supported_ts == uids.EXPLICIT_VR_LITTLE_ENDIAN
    rq = dimse.CStoreRQMessage()
    rq.message_id = msg_id
    rq.affected_sop_class_uid = sop_class_uid
    rq.affected_sop_instance_uid = sop_instance_uid
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = data
    assoc.send(rq, ctx.id)
    rsp, _ = assoc.receive()
    assert isinstance(rsp, dimse.CStoreRSPMessage)
    assert rsp.message_id_being_responded_to == msg_id
    return rsp


@pytest.mark.parametrize('in_file', [True, False])
@pytest.mark.parametrize('ae_class', [ae_module.StorageAE, Recording098AE])
def test_truncated_data_sets_are_refused_and_leave_nothing(store_dir, tmp_path, caplog,
                                                           ae_class, in_file):
    cases = truncated_data_sets(tmp_path)
    good = data_set_bytes(make_ct_file(tmp_path / 'good.dcm', sop_instance_uid='1.2.3.71'))
    with make_server(store_dir, ae_class=ae_class) as srv:
        if not in_file:
            srv.store_in_file.discard(CT)
        with client().request_association(remote(srv)) as assoc:
            answers = {name: send_raw_store(assoc, data, '1.2.3.70', n)
                       for n, (name, data) in enumerate(cases.items(), 1)}
            assert listing(store_dir) == []
            # The association goes on: a good one is kept.
            assert send_raw_store(assoc, good, '1.2.3.71', 9).status == 0
    assert {name: rsp.status for name, rsp in answers.items()} == dict.fromkeys(cases, 0xC000)
    comments = {name: rsp.error_comment for name, rsp in answers.items()}
    assert comments['value-past-the-end'].startswith('truncated: (0010,0010)')
    assert comments['pixel-data-cut'].startswith('truncated: (7FE0,0010)')
    assert comments['sequence-never-closed'].startswith('unclosed: sequence (0008,1115)')
    assert all(len(c) <= 64 and '\\' not in c for c in comments.values())
    assert listing(store_dir) == ['1.2.3.71.dcm']
    if ae_class is Recording098AE:
        assert srv.seen == ['1.2.3.71']  # the hook never saw the truncated ones
    refusals = [r for r in caplog.records if r.levelname == 'WARNING' and 'refused' in
                r.getMessage() and '1.2.3.70' in r.getMessage()]
    assert len(refusals) == 3 and all('STORE_SCU@127.0.0.1' in r.getMessage()
                                      for r in refusals)


@pytest.mark.parametrize('in_file', [True, False])
def test_data_set_naming_another_instance_or_class_is_refused_a900(store_dir, tmp_path,
                                                                   in_file):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.72'))
    other_instance = encode_data_set(ds, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    ds.SOPClassUID = uids.MR_IMAGE_STORAGE
    ds.SOPInstanceUID = '1.2.3.73'
    other_class = encode_data_set(ds, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    ds.SOPClassUID = CT
    del ds.SOPInstanceUID
    no_instance = encode_data_set(ds, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    with make_server(store_dir, ae_class=Recording098AE) as srv:
        if not in_file:
            srv.store_in_file.discard(CT)
        with client().request_association(remote(srv)) as assoc:
            rsp_instance = send_raw_store(assoc, other_instance, '1.2.3.99', 1)
            rsp_class = send_raw_store(assoc, other_class, '1.2.3.73', 2)
            rsp_missing = send_raw_store(assoc, no_instance, '1.2.3.74', 3)
    assert (rsp_instance.status, rsp_class.status, rsp_missing.status) == (
        0xA900, 0xA900, 0xC000)
    assert 'SOP Instance UID 1.2.3.72' in rsp_instance.error_comment
    assert 'SOP Class UID' in rsp_class.error_comment
    assert rsp_missing.error_comment == 'no SOP Instance UID in the data set'
    assert srv.seen == []
    assert listing(store_dir) == []


def test_plain_ae_hook_is_not_asked_to_accept_a_truncated_data_set(tmp_path):
    class Counting(ae_module.AE):
        calls = 0

        def on_receive_store(self, context, ds):
            Counting.calls += 1
            return statuses.SUCCESS

    srv = Counting('STORE_SCP', 0, bind_address='127.0.0.1').add_scp(sopclass.storage_scp)
    cases = truncated_data_sets(tmp_path)
    with srv:
        with client().request_association(remote(srv)) as assoc:
            answers = [send_raw_store(assoc, data, '1.2.3.70', n).status
                       for n, data in enumerate(cases.values(), 1)]
    assert answers == [0xC000] * 3 and Counting.calls == 0


def test_in_memory_store_over_max_memory_store_answers_a700_and_goes_on(store_dir, tmp_path):
    big = make_ct_file(tmp_path / 'big.dcm', sop_instance_uid='1.2.3.75', rows=256, cols=256)
    small = make_ct_file(tmp_path / 'small.dcm', sop_instance_uid='1.2.3.76', rows=8, cols=8)
    class InMemoryAE(ae_module.AE):
        def on_receive_store(self, context, ds):
            self.got = len(ds)
            return statuses.SUCCESS

    plain = InMemoryAE('STORE_SCP', 0, bind_address='127.0.0.1').add_scp(sopclass.storage_scp)
    # The plain AE gathers the bytes in memory, the folder storage reads them back
    # from its file for the hook: both stop at max_memory_store.
    for srv in (plain, make_server(store_dir)):
        with srv:
            srv.store_in_file.discard(CT)
            srv.max_memory_store = 64 * 1024
            with client().request_association(remote(srv)) as assoc:
                too_big = send_raw_store(assoc, data_set_bytes(big), '1.2.3.75', 1)
                ok = assoc.get_scu(CT)(small, 2)
        assert too_big.status == 0xA700, srv
        assert 'max_memory_store' in too_big.error_comment
        assert int(ok) == 0
    assert plain.got == len(data_set_bytes(small))
    assert listing(store_dir) == ['1.2.3.76.dcm']


# -- C-GET and C-MOVE: the same promise for a ClientStorageAE and a destination StorageAE ------

class GetSource(ae_module.AE):
    """A C-GET and C-MOVE SCP sending the files of ``self.files``."""

    def __init__(self):
        super().__init__('SOURCE', 0, bind_address='127.0.0.1')
        self.dcm_timeout = 5
        self.add_scp(sopclass.qr_get_scp).add_scp(sopclass.qr_move_scp)
        self.add_scu(sopclass.storage_scu, [CT])
        self.files = []
        self.destination = None

    def on_receive_get(self, context, ds):
        return len(self.files), list(self.files)

    def on_receive_move(self, context, ds, destination):
        return self.destination, len(self.files), list(self.files)


class Getter098(ae_module.ClientStorageAE):
    answer = statuses.SUCCESS

    def on_receive_store(self, context, ds):
        self.seen = getattr(self, 'seen', []) + [str(pydicom.dcmread(ds).SOPInstanceUID)]
        return self.answer


def study_query() -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = '1.2.3'
    return query


@pytest.mark.parametrize('answer, kept', [(statuses.SUCCESS, True), (0xB000, True),
                                          (statuses.C_STORE_OUT_OF_RESOURCES, False)])
def test_098_client_storage_ae_as_c_get_requester(tmp_path, answer, kept):
    sources = [make_ct_file(tmp_path / f'{i}.dcm', sop_instance_uid=f'1.2.3.80.{i}')
               for i in range(3)]
    received = tmp_path / 'received'
    getter = Getter098(received, 'GETTER')
    getter.answer = answer
    getter.dcm_timeout = 5
    getter.add_scu(sopclass.qr_get_scu)
    with GetSource() as source:
        source.files = [str(s) for s in sources]
        with getter.request_association(
                {'aet': 'SOURCE', 'address': '127.0.0.1', 'port': source.local_ae.port},
                sop_classes=[uids.STUDY_ROOT_GET_SOP_CLASS, CT]) as assoc:
            gen = assoc.get_scu(uids.STUDY_ROOT_GET_SOP_CLASS)(study_query(), 1)
            yielded = []
            for _ in range(10):
                try:
                    context, data = next(gen)
                except StopIteration as stop:
                    final = stop.value
                    break
                # Not answered yet: not under its final name yet.
                assert f'1.2.3.80.{len(yielded)}.dcm' not in listing(received)
                yielded.append(data)
    assert len(yielded) == 3
    assert srv_seen(getter) == [f'1.2.3.80.{i}' for i in range(3)]
    if kept:
        # A warning is a sub-operation with a warning: 0xB000 (PS3.4 C.4.3.1.3.1).
        assert int(final) == (0 if int(answer) == 0 else 0xB000)
        assert listing(received) == [f'1.2.3.80.{i}.dcm' for i in range(3)]
        for i, src in enumerate(sources):
            assert data_set_bytes(received / f'1.2.3.80.{i}.dcm') == data_set_bytes(src)
    else:
        assert int(final) == 0xB000  # every sub-operation failed (PS3.4 C.4.3.1.3.1)
        assert listing(received) == []


def srv_seen(ae) -> list:
    return getattr(ae, 'seen', [])


@pytest.mark.parametrize('answer, kept', [(statuses.SUCCESS, True),
                                          (statuses.C_STORE_CANNOT_UNDERSTAND, False)])
def test_098_storage_ae_as_c_move_destination(tmp_path, answer, kept):
    sources = [make_ct_file(tmp_path / f'{i}.dcm', sop_instance_uid=f'1.2.3.81.{i}')
               for i in range(3)]
    dest_dir = tmp_path / 'dest'
    mover = ae_module.ClientAE('MOVER').add_scu(sopclass.qr_move_scu)
    mover.dcm_timeout = 5
    with GetSource() as source, make_server(dest_dir, ae_class=Recording098AE) as dest:
        dest.answer = answer
        source.files = [str(s) for s in sources]
        source.destination = remote(dest)
        with mover.request_association(
                {'aet': 'SOURCE', 'address': '127.0.0.1', 'port': source.local_ae.port},
                sop_classes=[uids.STUDY_ROOT_MOVE_SOP_CLASS]) as assoc:
            responses = list(assoc.get_scu(uids.STUDY_ROOT_MOVE_SOP_CLASS)(
                study_query(), 'STORE_SCP', 1))
    final_status, final = responses[-1]
    assert dest.seen == [f'1.2.3.81.{i}' for i in range(3)]
    if kept:
        assert int(final_status) == 0 and final.num_of_completed_sub_ops == 3
        assert listing(dest_dir) == [f'1.2.3.81.{i}.dcm' for i in range(3)]
        for i, src in enumerate(sources):
            assert data_set_bytes(dest_dir / f'1.2.3.81.{i}.dcm') == data_set_bytes(src)
    else:
        assert final.num_of_failed_sub_ops == 3
        assert listing(dest_dir) == []


# -- Error Comments ----------------------------------------------------------------------------

@pytest.mark.unit
def test_error_comment_is_cut_at_a_word_never_inside_a_number():
    from pynetdicom2.services.common import error_comment
    assert error_comment('short one') == 'short one'
    assert error_comment('a\\b\x00c  d\n') == 'a/b c d'
    text = 'truncated: (7FE0,0010) needs 524288 bytes, 1000 left in item 3 of (0008,1115)'
    cut = error_comment(text)
    assert len(cut) <= 64 and cut.endswith('...')
    assert cut == 'truncated: (7FE0,0010) needs 524288 bytes, 1000 left in item...'
    assert text.startswith(cut[:-3])
    uid_text = 'SOP Instance UID ' + '1.2.840.10008.' * 4 + ' in the data set'
    cut = error_comment(uid_text)
    assert cut == 'SOP Instance UID...'
    assert len(error_comment('x' * 100)) == 64
