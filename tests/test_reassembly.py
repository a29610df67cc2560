"""Tests of pynetdicom2.reassembly: received fragments put together into messages, with
every way a peer can get the sequence wrong (PS3.8 Annex E), data sinks that fail, and
memory that stays bounded."""

from __future__ import annotations

import io
import tracemalloc

import pytest

from pynetdicom2 import dimse, reassembly
from pynetdicom2.exceptions import DIMSEProcessingError
from tests.test_fragmentation import parse_pdus, payload, pdus_of, pdvs_in, store_request


def command_bytes(msg):
    return msg.encode_command_set()


def test_data_fragment_before_any_command():
    with pytest.raises(DIMSEProcessingError, match='without a command set'):
        reassembly.MessageAssembler().feed(1, 0x02, b'\x00\x00')


def test_data_fragment_before_the_command_is_complete():
    assembler = reassembly.MessageAssembler()
    raw = command_bytes(store_request(b'\x00\x00'))
    assert assembler.feed(1, 0x01, raw[:10]) is None
    with pytest.raises(DIMSEProcessingError, match='before its command set was complete'):
        assembler.feed(1, 0x02, b'\x00\x00')


def test_fragment_for_another_presentation_context():
    assembler = reassembly.MessageAssembler()
    raw = command_bytes(store_request(b'\x00\x00'))
    assembler.feed(1, 0x03, raw)
    with pytest.raises(DIMSEProcessingError,
                       match='presentation context 3 arrived in the middle of a message '
                             'on context 1'):
        assembler.feed(3, 0x02, b'\x00\x00')


def test_garbage_command_set():
    with pytest.raises(DIMSEProcessingError, match='command set'):
        reassembly.MessageAssembler().feed(1, 0x03, b'\x01\x02\x03')


def test_command_fragment_after_the_command_was_complete():
    assembler = reassembly.MessageAssembler()
    raw = command_bytes(store_request(b'\x00\x00'))
    assembler.feed(1, 0x03, raw)
    with pytest.raises(DIMSEProcessingError,
                       match='command fragment after the command set of CStoreRQMessage'):
        assembler.feed(1, 0x03, raw)


def test_data_fragment_after_a_message_without_data_set():
    assembler = reassembly.MessageAssembler()
    echo = dimse.CEchoRQMessage()
    echo.message_id = 42
    assert isinstance(assembler.feed(1, 0x03, command_bytes(echo)), dimse.CEchoRQMessage)
    with pytest.raises(DIMSEProcessingError,
                       match='after CEchoRQMessage \\(message ID 42\\), whose Command Data '
                             'Set Type says no data set follows'):
        assembler.feed(1, 0x02, b'\x00\x00')


def test_command_set_size_is_bounded():
    assembler = reassembly.MessageAssembler()
    chunk = bytes(64 * 1024)
    with pytest.raises(DIMSEProcessingError, match='longer than 1048576 bytes'):
        for _ in range(17):
            assembler.feed(1, 0x01, chunk)


def test_reserved_control_bits_are_not_checked():
    msg = store_request(b'\x01\x02')
    assembler = reassembly.MessageAssembler()
    assert assembler.feed(1, 0xFC | 0x03, command_bytes(msg)) is None
    received = assembler.feed(1, 0xFC | 0x02, b'\x01\x02')
    assert received.data_set == b'\x01\x02'


def test_fragments_are_copied_out_of_a_reused_buffer():
    msg = store_request(b'\x01\x02\x03\x04')
    raw = command_bytes(msg)
    buffer = bytearray(len(raw) + 4)
    view = memoryview(buffer)
    assembler = reassembly.MessageAssembler()
    buffer[:len(raw)] = raw
    assembler.feed(1, 0x03, view[:len(raw)])
    buffer[:2] = b'\x05\x06'
    assembler.feed(1, 0x00, view[:2])
    buffer[:2] = b'\xff\xff'  # the receive buffer is reused for the next PDU
    buffer[:2] = b'\x07\x08'
    received = assembler.feed(1, 0x02, view[:2])
    buffer[:2] = b'\x00\x00'
    assert received.data_set == b'\x05\x06\x07\x08'
    assert received.affected_sop_instance_uid == '1.2.3.4.5.6.7.8.9'


def test_abort_returns_the_open_sink_and_starts_afresh():
    sink = io.BytesIO()
    assembler = reassembly.MessageAssembler(lambda msg: sink)
    assembler.feed(1, 0x03, command_bytes(store_request(b'\x00\x00')))
    assembler.feed(1, 0x00, b'\x01\x02')
    assert assembler.in_progress
    assert assembler.abort() is sink
    assert not assembler.in_progress and assembler.abort() is None
    # The next message assembles from a clean state, on any context.
    echo = dimse.CEchoRQMessage()
    echo.message_id = 2
    received = assembler.feed(3, 0x03, command_bytes(echo))
    assert received.message_id == 2 and received.context_id == 3


def test_sink_write_failure_drops_the_file_and_delivers_the_error():
    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            raise OSError(28, 'No space left on device')

    full = Full()
    discarded = []
    assembler = reassembly.MessageAssembler(lambda msg: full, discarded.append)
    assembler.feed(1, 0x03, command_bytes(store_request(b'\x00\x00\x00\x00')))
    assert assembler.feed(1, 0x00, b'\x00\x00') is None
    assert discarded == [full]          # dropped at once, not at the end
    msg = assembler.feed(1, 0x02, b'\x00\x00')
    assert msg.data_set is None and msg.data_set_error.errno == 28
    # The next message assembles as usual.
    nxt = assembler.feed(1, 0x03, command_bytes(dimse.CEchoRQMessage()))
    assert isinstance(nxt, dimse.CEchoRQMessage) and nxt.data_set_error is None


def test_sink_that_cannot_open_its_file_delivers_the_error():
    def data_sink(msg):
        raise PermissionError(13, 'Permission denied')

    assembler = reassembly.MessageAssembler(data_sink)
    assert assembler.feed(1, 0x03, command_bytes(store_request(b'\x00\x00'))) is None
    msg = assembler.feed(1, 0x02, b'\x00\x00')
    assert isinstance(msg.data_set_error, PermissionError) and msg.data_set is None
    assert not assembler.in_progress


def test_messages_follow_one_another():
    assembler = reassembly.MessageAssembler(lambda msg: None)
    got = []
    for msg_id in range(1, 4):
        msg = store_request(payload(msg_id * 11 + 1))
        msg.message_id = msg_id
        for context_id, control, fragment, _ in parse_pdus(pdus_of(msg, 1, 32), 32):
            result = assembler.feed(context_id, control, fragment)
            if result is not None:
                got.append(result)
    assert [(m.message_id, m.data_set) for m in got] == \
        [(i, payload(i * 11 + 1)) for i in range(1, 4)]


# -- memory stays bounded -----------------------------------------------------------

def test_sending_and_receiving_a_file_keeps_memory_bounded(tmp_path):
    size = 16 * 1024 * 1024 + 6
    source = tmp_path / 'source.bin'
    with open(source, 'wb') as fp:
        fp.truncate(size)
    target = tmp_path / 'target.bin'
    with open(source, 'rb') as fp, open(target, 'wb') as out:
        msg = store_request(fp)
        assembler = reassembly.MessageAssembler(lambda m: out)
        tracemalloc.start()
        try:
            received = None
            for batch in msg.iter_pdu_batches(1, 16384):
                for context_id, control, fragment in pdvs_in(batch):
                    received = assembler.feed(context_id, control, fragment) or received
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received is not None and received.data_set is out
    assert target.stat().st_size == size
    # The sending thread's two read buffers (1 MiB each, made once and reused by every
    # message it sends) and the PDUs in flight; nothing grows with the data set.
    assert peak < 3 * 1024 * 1024


# -- runs of data fragments (write_data_run) --------------------------------------------

def _store_pdvs(size, msg_id=3, pdu_length=32):
    msg = store_request(payload(size))
    msg.message_id = msg_id
    return [(c, h, f) for c, h, f, _ in parse_pdus(pdus_of(msg, 1, pdu_length), pdu_length)]


class _Sink(io.BytesIO):
    """A sink file that fails as told: OSError (a full disk) or ValueError (closed)
    at its write number ``fail_at``."""

    def __init__(self, fail_at=None, error=None):
        super().__init__()
        self.writes = 0
        self.fail_at, self.error = fail_at, error

    def write(self, data):
        self.writes += 1
        if self.writes == self.fail_at:
            raise self.error
        return super().write(data)


def _queue(pdvs):
    """``next_pdv`` and ``take_run`` over ``pdvs``, as the DUL's ``buffered_pdv`` and
    ``buffered_data_run`` over the PDUs it has received."""
    pending = list(pdvs)

    def next_pdv():
        return pending.pop(0) if pending else None

    def take_run(context_id):
        run = []
        while pending and pending[0][0] == context_id and not pending[0][1] & 0x03:
            run.append(pending.pop(0)[2])
        return run
    return next_pdv, take_run


def _drive(pdvs, use_runs, fail_at=None, error=None, sink_for_all=True):
    """Feed ``pdvs`` as Association.receive does (``feed``, and ``write_data_run`` of the
    runs that continue a streaming data set when ``use_runs``); what came out:
    messages, sink bytes, discards, error."""
    sinks, discarded, got = [], [], []

    def data_sink(msg):
        if not sink_for_all:
            return None
        sinks.append(_Sink(fail_at, error))
        return sinks[-1]

    assembler = reassembly.MessageAssembler(data_sink, discarded.append,
                                            max_memory_data_set=100)
    next_pdv, take_run = _queue(pdvs)
    try:
        pdv = next_pdv()
        while pdv is not None:
            msg = assembler.feed(*pdv)
            if msg is not None:
                data = msg.data_set
                got.append((type(msg).__name__, msg.message_id,
                            data.getvalue() if isinstance(data, io.BytesIO) else data,
                            repr(msg.data_set_error)))
            streaming = assembler.streaming_context
            if use_runs and streaming is not None:   # as Association._feed_run does
                run = take_run(streaming)
                if run:
                    assembler.write_data_run(run)
            pdv = next_pdv()
    except DIMSEProcessingError as exc:
        got.append(('error', str(exc)))
    return got, [s.getvalue() for s in sinks], [s.getvalue() for s in discarded]


def _wrong_context(pdvs):
    c, h, f = pdvs[-3]
    assert not h & 0x01  # a data fragment, within the data set
    return pdvs[:-3] + [(c + 2, h, f)] + pdvs[-2:]


def _command_in_data(pdvs):
    assert not pdvs[-3][1] & 0x01
    return pdvs[:-3] + [(1, 0x01, b'\x00\x00')] + pdvs[-3:]  # not the last


@pytest.mark.parametrize('make, fail_at, error, sink_for_all', [
    (lambda: _store_pdvs(300) + _store_pdvs(77, 4) + _store_pdvs(0, 5), None, None, True),
    (lambda: _store_pdvs(90) + _store_pdvs(30, 4), None, None, False),    # in memory
    (lambda: _store_pdvs(300), None, None, False),                        # over the bound
    (lambda: _wrong_context(_store_pdvs(300)), None, None, True),
    (lambda: _command_in_data(_store_pdvs(300)), None, None, True),
    (lambda: _store_pdvs(300) + _store_pdvs(40, 4), 3, OSError(28, 'No space'), True),
    (lambda: _store_pdvs(300), 1, OSError(28, 'No space'), True),
    (lambda: _store_pdvs(300), 4, ValueError('I/O operation on closed file'), True),
    (lambda: [(c, h | 0xF0, f) for c, h, f in _store_pdvs(300)], None, None, True),
])
def test_runs_of_data_fragments_assemble_as_feed_does(make, fail_at, error, sink_for_all):
    pdvs = make()
    by_runs = _drive(pdvs, True, fail_at, error, sink_for_all)
    one_by_one = _drive(pdvs, False, fail_at, error, sink_for_all)
    assert by_runs == one_by_one
    assert by_runs[0]  # something came out: a message or an error


def test_a_run_stops_where_feed_must_look():
    pdvs = _store_pdvs(300)
    assembler = reassembly.MessageAssembler(lambda msg: io.BytesIO())
    assert assembler.streaming_context is None                # no message yet
    commands = sum(1 for _, control, _ in pdvs if control & 0x01)
    next_pdv, take_run = _queue(pdvs[commands:])
    for pdv in pdvs[:commands]:                         # the command set
        assert assembler.feed(*pdv) is None
    assert assembler.streaming_context == 1
    assembler.write_data_run(take_run(1))
    last = next_pdv()
    assert last == pdvs[-1] and next_pdv() is None      # the last fragment is feed's
    msg = assembler.feed(*last)
    assert msg.data_set.getvalue() == payload(300)
    assert assembler.streaming_context is None          # complete: nothing streams
    # A data set gathered in memory has no sink: it never streams.
    in_memory = reassembly.MessageAssembler(lambda msg: None)
    for pdv in pdvs[:commands]:
        in_memory.feed(*pdv)
    assert in_memory.in_progress and in_memory.streaming_context is None
