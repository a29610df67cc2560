"""Tests of pynetdicom2.fragmentation: a message out as P-DATA-TF PDUs through
``iter_pdu_batches`` (the path the association sends by), checked PDV by PDV against
PS3.8 9.3.5 and Annex E and put back together by the assembler; a received P-DATA-TF
split into its PDVs by ``PDataFragments``."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc

import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import dimse, fragmentation, reassembly
from pynetdicom2.exceptions import DIMSEProcessingError, PDUProcessingError


# -- what goes on the wire ------------------------------------------------------------

def parse_pdus(pdus, max_pdu_length):
    """Split P-DATA-TF PDUs into (context_id, control_header, fragment, pdu_index)."""
    pdvs = []
    for index, raw in enumerate(pdus):
        raw = bytes(raw)
        pdu_type, length = struct.unpack_from('>BxL', raw)
        assert pdu_type == 0x04
        assert length == len(raw) - 6
        if max_pdu_length:
            assert length <= max_pdu_length
        offset = 6
        while offset < len(raw):
            item_length, context_id, control = struct.unpack_from('>LBB', raw, offset)
            fragment = raw[offset + 6:offset + 4 + item_length]
            assert len(fragment) == item_length - 2
            pdvs.append((context_id, control, fragment, index))
            offset += 4 + item_length
        assert offset == len(raw)
    return pdvs


def check_pdvs(pdvs, data_length):
    """The control headers follow PS3.8 E.2 and the fragments are in order."""
    controls = [control for _, control, _, _ in pdvs]
    commands = [c for c in controls if c & dimse.COMMAND_FRAGMENT]
    assert commands == [0x01] * (len(commands) - 1) + [0x03]
    data = controls[len(commands):]
    assert all(not c & dimse.COMMAND_FRAGMENT for c in data)
    if data_length is None:
        assert data == []
    else:
        assert data == [0x00] * (len(data) - 1) + [0x02]
    for _, control, fragment, _ in pdvs:
        if not control & dimse.LAST_FRAGMENT:
            assert len(fragment) % 2 == 0  # PS3.8 E.1: fragments are even


def reassemble(pdvs, data_sink=None):
    assembler = reassembly.MessageAssembler(data_sink)
    results = [assembler.feed(context_id, control, memoryview(fragment))
               for context_id, control, fragment, _ in pdvs]
    assert all(r is None for r in results[:-1])
    assert not assembler.in_progress
    return results[-1]


def store_request(data):
    msg = dimse.CStoreRQMessage()
    msg.message_id = 3
    msg.priority = dimse.PRIORITY_MEDIUM
    msg.sop_class_uid = '1.2.840.10008.5.1.4.1.1.7'
    msg.affected_sop_instance_uid = '1.2.3.4.5.6.7.8.9'
    msg.data_set = data
    return msg


def payload(size):
    return bytes(i * 7 % 251 for i in range(min(size, 1 << 16))) * (size >> 16) + \
        bytes(i * 7 % 251 for i in range(size % (1 << 16)))


def split_pdus(stream):
    """Cut a byte stream of PDUs at their headers (PS3.8 9.3.1: type, reserved, length)."""
    pdus, offset = [], 0
    while offset < len(stream):
        length = struct.unpack_from('>L', stream, offset + 2)[0]
        pdus.append(stream[offset:offset + 6 + length])
        offset += 6 + length
    assert offset == len(stream)
    return pdus


def pdus_of(msg, pc_id, max_pdu_length):
    """The P-DATA-TF PDUs ``msg`` is sent as, as the association sends them: each
    batch of ``iter_pdu_batches`` copied out before the next is asked for."""
    return split_pdus(b''.join(bytes(buf) for batch in msg.iter_pdu_batches(pc_id, max_pdu_length)
                               for buf in batch))


def pdvs_in(batch):
    """``(context_id, control_header, fragment)`` of each PDU of one batch, the fragment
    not copied; the batch is checked to be whole PDUs of one PDV each, a 12-byte header
    (PS3.8 9.3.1 and 9.3.5.1) then its fragment."""
    assert len(batch) % 2 == 0
    for header, fragment in zip(batch[::2], batch[1::2]):
        pdu_type, pdu_length, item_length, context_id, control = \
            struct.unpack('>BxLLBB', header)
        length = len(memoryview(fragment))
        assert (pdu_type, pdu_length, item_length) == (0x04, length + 6, length + 2)
        yield context_id, control, fragment


def sizes_for(max_pdu_length):
    frag = fragmentation.fragment_length(max_pdu_length)
    big = 2 * frag + 2 if max_pdu_length == 0 else max(50_000, 40 * frag) + 6
    return [0, 1, 33, frag, 3 * frag, 3 * frag + 2, big]


CASES = [(m, s) for m in (0, 16, 100, 16384) for s in sizes_for(m)]


@pytest.mark.parametrize('max_pdu_length, size', CASES)
def test_fragmentation_and_reassembly_of_bytes(max_pdu_length, size):
    data = payload(size)
    msg = store_request(data)
    pdus = pdus_of(msg, 5, max_pdu_length)
    limit = max_pdu_length or fragmentation.MAX_FRAGMENT_LENGTH + 6
    assert all(len(p) <= limit + 6 for p in pdus)
    pdvs = parse_pdus(pdus, max_pdu_length)
    assert {context_id for context_id, _, _, _ in pdvs} == {5}
    check_pdvs(pdvs, size)
    received = reassemble(pdvs)
    assert type(received) is dimse.CStoreRQMessage and received.context_id == 5
    assert received.data_set == data
    assert received.affected_sop_instance_uid == '1.2.3.4.5.6.7.8.9'
    assert received.message_id == 3


@pytest.mark.parametrize('max_pdu_length, size', CASES)
def test_fragmentation_of_a_file_into_a_data_sink(max_pdu_length, size, tmp_path):
    data = payload(size)
    path = tmp_path / 'data.bin'
    path.write_bytes(b'PREFIX' + data)
    sinks = []

    def data_sink(msg):
        assert msg.context_id == 7 and isinstance(msg, dimse.CStoreRQMessage)
        sinks.append(io.BytesIO())
        return sinks[-1]

    with open(path, 'rb') as fp:
        fp.seek(6)
        msg = store_request(fp)
        pdus = pdus_of(msg, 7, max_pdu_length)
        assert not fp.closed
    pdvs = parse_pdus(pdus, max_pdu_length)
    check_pdvs(pdvs, size)
    received = reassemble(pdvs, data_sink)
    assert len(sinks) == 1 and received.data_set is sinks[0]
    assert sinks[0].getvalue() == data


def test_file_reads_that_return_short_chunks():
    class Trickle(io.RawIOBase):
        """A raw stream that hands out at most 3 bytes per read."""

        def __init__(self, data):
            self.data, self.pos = data, 0

        def readable(self):
            return True

        def readinto(self, buf):
            chunk = self.data[self.pos:self.pos + min(3, len(buf))]
            buf[:len(chunk)] = chunk
            self.pos += len(chunk)
            return len(chunk)

    data = payload(1001)
    pdvs = parse_pdus(pdus_of(store_request(Trickle(data)), 1, 100), 100)
    check_pdvs(pdvs, len(data))
    assert all(len(f) == 94 for _, c, f, _ in pdvs if c == 0x00)
    assert reassemble(pdvs).data_set == data


@pytest.mark.parametrize('max_pdu_length', [0, 100, 16384])
@pytest.mark.parametrize('source', ['bytes', 'file'])
@pytest.mark.parametrize('size', [2, 4, 200])
@pytest.mark.parametrize('way', ['batches', 'encode'])
def test_data_set_starts_in_a_new_pdu(max_pdu_length, source, size, way):
    # GDCM-based peers hang when the command's last fragment and the data set share a
    # P-DATA-TF PDU; 0.9.8, DCMTK, pynetdicom and Orthanc never send that (API.md 7).
    data = payload(size)
    msg = store_request(io.BytesIO(data) if source == 'file' else data)
    if way == 'batches':
        pdus = pdus_of(msg, 1, max_pdu_length)
    else:
        pdus = [p.encode() for p in msg.encode(1, max_pdu_length)]
    pdvs = parse_pdus(pdus, max_pdu_length)
    check_pdvs(pdvs, size)
    # One PDV per PDU: the last command fragment ends its PDU, the data set follows.
    assert [index for _, _, _, index in pdvs] == list(range(len(pdus)))
    last_command = [control for _, control, _, _ in pdvs].index(0x03)
    assert pdvs[last_command + 1][1] & dimse.COMMAND_FRAGMENT == 0
    assert pdvs[last_command + 1][3] == pdvs[last_command][3] + 1
    assert reassemble(pdvs).data_set == data


def test_message_without_data_set_is_one_command_pdv():
    msg = dimse.CEchoRQMessage()
    msg.message_id = 1
    msg.sop_class_uid = '1.2.840.10008.1.1'
    pdus = pdus_of(msg, 1, 0)
    raw = msg.encode_command_set()
    assert pdus == [struct.pack('>BxLLBB', 4, len(raw) + 6, len(raw) + 2, 1, 3) + raw]
    assert reassemble(parse_pdus(pdus, 0)).data_set is None


def test_fragment_length():
    assert fragmentation.fragment_length(16384) == 16378
    assert fragmentation.fragment_length(17) == 10  # even, PS3.8 E.1
    assert fragmentation.fragment_length(8) == 2
    assert fragmentation.fragment_length(0) == fragmentation.fragment_length(None) == \
        4 * 1024 * 1024
    assert fragmentation.fragment_length(0xFFFFFFFF) == 4 * 1024 * 1024
    with pytest.raises(DIMSEProcessingError, match='no room for a fragment'):
        fragmentation.fragment_length(7)


@pytest.mark.parametrize('max_pdu_length', [0, 16, 100, 16384])
def test_a_small_message_is_one_batch_of_the_same_pdus(max_pdu_length, tmp_path):
    # The short way of small messages gives the PDUs the general one gives; a file
    # opened with open(path, 'rb') is read to its end either way.
    frag = fragmentation.fragment_length(max_pdu_length)
    command = store_request(None).encode_command_set()
    path = tmp_path / 'data'

    def sources(data):
        if type(data) is not bytes:  # None, a bytearray, a BytesIO: the general way
            yield data, data, 0
            return
        yield data, data, len(data)
        path.write_bytes(b'PREAMBLE' + data)
        files = []
        for _ in range(2):
            fp = open(path, 'rb')
            fp.seek(8)
            files.append(fp)
        yield files[0], files[1], len(data)
        assert files[1].tell() == 8 + len(data)
        for fp in files:
            fp.close()

    for data in (None, b'', payload(2), payload(frag), payload(frag + 2),
                 payload(frag + 1), bytearray(payload(4)), io.BytesIO(payload(4))):
        for small_source, general_source, length in sources(data):
            small = fragmentation.small_message_batch(command, small_source, 3,
                                                      max_pdu_length)
            general = list(bytes(part) for batch in fragmentation.iter_pdu_batches(
                command, general_source, 3, max_pdu_length) for part in batch)
            fits = len(command) <= frag and (data is None or type(data) is bytes
                                             and length <= frag)
            if isinstance(small_source, io.BufferedReader):
                # Read to its end, or not at all (the general way reads it then).
                assert small_source.tell() == 8 + (length if fits else 0)
            if not fits:
                assert small is None
                continue
            assert [bytes(part) for part in small] == general
    for pc_id in (0, 2, 256, '1', None):
        assert fragmentation.small_message_batch(b'\0' * 4, None, pc_id, 0) is None


def test_a_file_that_grew_since_its_size_was_read_is_sent_whole(tmp_path, monkeypatch):
    path = tmp_path / 'data'
    path.write_bytes(b'PREAMBLE' + payload(100))
    command = store_request(None).encode_command_set()
    real_fstat = os.fstat

    class Smaller:  # the size as it was before the last 50 bytes were written
        def __init__(self, fd):
            self.st_size = real_fstat(fd).st_size - 50
    monkeypatch.setattr(fragmentation.os, 'fstat', Smaller)
    with open(path, 'rb') as fp:
        fp.seek(8)
        assert fragmentation.small_message_batch(command, fp, 3, 16384) is None
        assert fp.tell() == 8  # nothing read: the general way reads it to its end
        monkeypatch.undo()
        sent = [bytes(part) for batch in fragmentation.iter_pdu_batches(
            command, fp, 3, 16384) for part in batch]
    assert sent[-1] == payload(100)


def test_sending_errors():
    # PS3.8 9.3.5.1: the ID we send a PDV on is odd, 1..255 (pdu's one rule).
    for pc_id in (0, 2, 256, '1'):
        with pytest.raises(DIMSEProcessingError, match='presentation context ID'):
            list(store_request(b'').iter_pdu_batches(pc_id, 100))
    with pytest.raises(DIMSEProcessingError, match='bytes or a binary file'):
        list(store_request(Dataset()).iter_pdu_batches(1, 100))

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buf):
            raise OSError('device gone')

    with pytest.raises(DIMSEProcessingError, match='device gone'):
        list(store_request(Broken()).iter_pdu_batches(1, 100))
    with pytest.raises(DIMSEProcessingError, match='binary mode'):
        list(store_request(io.StringIO('text')).iter_pdu_batches(1, 100))


# -- memory stays bounded -----------------------------------------------------------

def test_sending_64_mib_of_bytes_keeps_memory_bounded():
    data = bytes(64 * 1024 * 1024)
    msg = store_request(data)
    tracemalloc.start()
    try:
        total = sum(len(buf) for batch in msg.iter_pdu_batches(1, 16384) for buf in batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > len(data)   # fragments and headers, none of them a copy
    assert peak < 1024 * 1024


# -- sending in batches ------------------------------------------------------------------

@pytest.mark.parametrize('max_pdu', [64, 4096, 16384, 0])
@pytest.mark.parametrize('source', ['bytes', 'file'])
def test_batches_are_whole_pdus_of_about_a_mib(max_pdu, source, tmp_path):
    data = payload(3 * 1024 * 1024 + 7)
    path = tmp_path / 'data'
    path.write_bytes(data)
    msg = store_request(data)
    if source == 'file':
        msg.data_set = open(path, 'rb')
    try:
        # Each batch checked and copied before the next is asked for: the file's read
        # buffers are reused from one batch to the next.
        batches = [[(context_id, control, bytes(fragment))
                    for context_id, control, fragment in pdvs_in(batch)]
                   for batch in msg.iter_pdu_batches(1, max_pdu)]
    finally:
        if source == 'file':
            msg.data_set.close()
    pdvs = [(context_id, control, fragment, 0)
            for batch in batches for context_id, control, fragment in batch]
    check_pdvs(pdvs, len(data))
    assert reassemble(pdvs).data_set == data
    sizes = [sum(len(fragment) for _, _, fragment in batch) for batch in batches]
    assert all(size < (1 << 20) + fragmentation.fragment_length(max_pdu) for size in sizes)
    if max_pdu == 16384:
        assert 3 <= len(batches) <= 6


# -- receiving: the PDVs of a P-DATA-TF --------------------------------------------------

def pdv_item(context_id, control, fragment):
    """A PDV item as PS3.8 9.3.5.1 lays it out: item length, context ID, control, data."""
    return struct.pack('>LBB', len(fragment) + 2, context_id, control) + fragment


def test_one_pdv_filling_the_pdu_is_a_view_into_the_received_bytes():
    body = bytearray(pdv_item(3, 0x03, b'\x01\x02\x03\x04'))
    pdvs = list(fragmentation.PDataFragments(memoryview(body)))
    assert [(c, m, bytes(f)) for c, m, f in pdvs] == [(3, 0x03, b'\x01\x02\x03\x04')]
    body[-1] = 0xFF                     # the receive buffer, reused: nothing was copied
    assert bytes(pdvs[0][2]) == b'\x01\x02\x03\xff'


def test_several_pdvs_come_out_in_order_and_as_often_as_asked():
    items = [(1, 0x01, b'ab'), (1, 0x03, b''), (1, 0x00, b'cdef'), (5, 0x02, b'g')]
    body = memoryview(b''.join(pdv_item(*item) for item in items))
    fragments = fragmentation.PDataFragments(body)
    for _ in range(2):                  # logged first at DEBUG, then fed to the assembler
        assert [(c, m, bytes(f)) for c, m, f in fragments] == items
    assert all(isinstance(f, memoryview) and f.obj is body.obj for _, _, f in fragments)


@pytest.mark.parametrize('tail, words', [
    (b'\x00\x00\x00', 'truncated item length'),
    (struct.pack('>LB', 1, 1), 'item length 1 is below 2'),
    (struct.pack('>LBB', 9, 1, 0) + b'abc', 'declares 9 bytes, only 5 left'),
])
def test_a_bad_pdv_anywhere_refuses_the_whole_pdu_before_any_is_used(tail, words):
    good = pdv_item(1, 0x01, b'ab') + pdv_item(1, 0x03, b'cd')
    with pytest.raises(PDUProcessingError, match=words) as info:
        fragmentation.PDataFragments(memoryview(good + tail))
    # Offsets count from the start of the PDU, its 6-byte header included.
    assert f'offset {6 + len(good)} ' in str(info.value)
