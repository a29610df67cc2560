"""Fuzz the DIMSE codec: command sets, messages, and reassembly from P-DATA fragments.

Whatever arrives, ``decode_command_set`` / ``decode_message`` and
``MessageAssembler.feed`` either give a message or raise ``DIMSEProcessingError``;
after an error ``abort()`` leaves the assembler ready for the next message; a stream
of valid fragments gives back exactly the messages that were sent.
"""

from __future__ import annotations

import io
import warnings

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from fuzz.harness import decoded_or_none, peak_memory
from fuzz.strategies import budget, command_sets, corpus_values, dimse_messages, hostile
from pydicom import config as pydicom_config
from pynetdicom2 import dimse, dimsecodec, reassembly
from pynetdicom2.exceptions import DIMSEProcessingError

# pydicom's UI validation warns about a hostile UID;
# test_a_hostile_uid_neither_warns_nor_escapes_as_value_error pins that down.
pytestmark = pytest.mark.filterwarnings('ignore:.*for VR UI:UserWarning')

COMMAND_INPUTS = hostile(command_sets(), corpus_values('command'), max_random=200)
MEMORY_SLACK = 64 * 1024


def same_elements(one, other) -> bool:
    """The same elements as sent: a fresh message names every field of its
    ``command_fields`` with None until set, and None is not sent (API.md 7)."""
    def sent(ds):
        return {elem.tag: elem.value for elem in ds if elem.value is not None}
    return sent(one) == sent(other)


@budget(1500)
@given(COMMAND_INPUTS)
def test_decode_command_set_and_message(raw):
    ds = decoded_or_none(DIMSEProcessingError, dimsecodec.decode_command_set, raw)
    msg = decoded_or_none(DIMSEProcessingError, dimse.decode_message, raw)
    if msg is None:
        return
    assert ds is not None
    assert type(msg) is dimse.MESSAGE_TYPE[msg.command_set.CommandField]
    # A message we could read, we can also send (or refuse with the same error class).
    # Text that is not ASCII reads as U+FFFD and is sent as '?': after that one
    # normalisation, encoding and decoding change nothing.
    try:
        once = dimse.decode_message(msg.encode_command_set())
    except DIMSEProcessingError:
        event('decoded message does not re-encode')
        return
    twice = dimse.decode_message(once.encode_command_set())
    assert type(twice) is type(msg)
    assert same_elements(twice.command_set, once.command_set)


BAD_UID_ECHO = bytes.fromhex(
    '00000000 04000000 38000000 00000200 12000000') + b'1.2\x01840.10008.1.1\x00' + bytes.fromhex(
    '00000001 02000000 3000 00001001 02000000 0100 00000008 02000000 0101')


def test_a_hostile_uid_neither_warns_nor_escapes_as_value_error(monkeypatch):
    monkeypatch.setattr(pydicom_config.settings, 'reading_validation_mode', pydicom_config.RAISE)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        try:
            msg = dimse.decode_message(BAD_UID_ECHO)
        except DIMSEProcessingError:
            return
    assert isinstance(msg, dimse.CEchoRQMessage)


@budget(300)
@given(dimse_messages(with_data=False))
def test_valid_messages_round_trip(msg):
    back = dimse.decode_message(msg.encode_command_set())
    assert type(back) is type(msg)
    assert same_elements(back.command_set, msg.command_set)
    assert back.message_id == msg.message_id
    assert back.sop_class_uid == msg.sop_class_uid


# -- reassembly -----------------------------------------------------------------------------

def fragments_of(msg, pc_id: int, max_pdu_length: int) -> list:
    """The (context ID, control header, fragment) triples the peer would send: each
    PDU of ``iter_pdu_batches`` is a 12-byte header ending in the control header,
    then the fragment (copied before the next batch reuses the buffers)."""
    return [(pc_id, header[-1], bytes(fragment))
            for batch in msg.iter_pdu_batches(pc_id, max_pdu_length)
            for header, fragment in zip(batch[::2], batch[1::2])]


@st.composite
def message_streams(draw):
    """One to three messages as fragments, then maybe edited the way a bad peer would."""
    msgs = draw(st.lists(dimse_messages(), min_size=1, max_size=3))
    max_pdu = draw(st.sampled_from([0, 14, 64, 200, 16384]))
    pc_id = draw(st.sampled_from([1, 3, 255]))
    feeds = [f for msg in msgs for f in fragments_of(msg, pc_id, max_pdu)]
    edits = draw(st.integers(0, 3))
    for _ in range(edits):
        at = draw(st.integers(0, len(feeds)))
        action = draw(st.sampled_from(['drop', 'insert', 'control', 'context', 'swap',
                                       'corrupt']))
        if action == 'drop' and at < len(feeds):
            del feeds[at]
        elif action == 'insert':
            feeds.insert(at, (draw(st.integers(0, 255)), draw(st.integers(0, 255)),
                              draw(st.binary(max_size=64))))
        elif action == 'control' and at < len(feeds):
            ctx, _, frag = feeds[at]
            feeds[at] = (ctx, draw(st.integers(0, 255)), frag)
        elif action == 'context' and at < len(feeds):
            _, control, frag = feeds[at]
            feeds[at] = (draw(st.integers(0, 255)), control, frag)
        elif action == 'swap' and at + 1 < len(feeds):
            feeds[at], feeds[at + 1] = feeds[at + 1], feeds[at]
        elif action == 'corrupt' and at < len(feeds) and feeds[at][2]:
            ctx, control, frag = feeds[at]
            cut = draw(st.integers(0, len(frag)))
            feeds[at] = (ctx, control, frag[:cut] + draw(st.binary(max_size=8)))
    return msgs, feeds, edits


class FileSink:
    """A data sink that hands out an in-memory file per message, and remembers them."""

    def __init__(self):
        self.files = []

    def __call__(self, msg):
        fp = io.BytesIO()
        self.files.append(fp)
        return fp


@budget(1000)
@given(message_streams(), st.booleans())
def test_message_assembler_feed_sequences(stream, to_files):
    msgs, feeds, edits = stream
    sink = FileSink() if to_files else None
    assembler = reassembly.MessageAssembler(sink)
    received, errors = [], 0
    for context_id, control, fragment in feeds:
        try:
            msg = assembler.feed(context_id, control, memoryview(fragment))
        except DIMSEProcessingError as exc:
            assert str(exc)
            errors += 1
            partial = assembler.abort()
            assert partial is None or partial in sink.files
            assert not assembler.in_progress
            continue
        if msg is not None:
            assert msg.context_id == context_id
            received.append(msg)
    event(f'{errors and "some" or "no"} errors')
    if edits == 0:
        # Nothing was tampered with: exactly the messages sent come out, in order.
        assert errors == 0 and not assembler.in_progress
        assert [type(m) for m in received] == [type(m) for m in msgs]
        for got, sent in zip(received, msgs):
            assert same_elements(got.command_set, sent.command_set)
            data = got.data_set
            if isinstance(data, io.BytesIO):
                data = data.getvalue()
            assert data == sent.data_set
    # Whatever happened before, a reset assembler reads the next message correctly.
    assembler.abort()
    echo = dimse.CEchoRQMessage()
    echo.message_id = 77
    echo.sop_class_uid = '1.2.840.10008.1.1'
    out = [assembler.feed(*f) for f in fragments_of(echo, 5, 16384)]
    assert out[-1] is not None and out[-1].message_id == 77


@budget(250)
@given(message_streams())
def test_message_assembler_memory_stays_near_the_input_size(stream):
    _, feeds, _ = stream
    total = sum(len(f[2]) for f in feeds)
    assembler = reassembly.MessageAssembler()
    with peak_memory() as peak:
        for feed in feeds:
            try:
                assembler.feed(*feed)
            except DIMSEProcessingError:
                assembler.abort()
    # The data set is gathered once and joined once: at most twice the input.
    assert peak[0] < 2 * total + MEMORY_SLACK
