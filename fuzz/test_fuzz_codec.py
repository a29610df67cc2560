"""Fuzz the wire codec: every PDU, item and sub-item decoder, and the P-DATA splitter.

Whatever the bytes, a decoder either returns a value that encodes back to a value
equal to it, or raises ``PDUProcessingError`` with a message; and a length declared
on the wire never becomes an allocation (memory stays near the input size).
"""

from __future__ import annotations

import io

from hypothesis import event, given
from hypothesis import strategies as st

from fuzz.harness import decoded_or_none, peak_memory
from fuzz.strategies import (
    ITEM_DECODERS, budget, corpus_values, encoded, hostile, items, pdata_pdus, pdus)
from pynetdicom2 import pdu
from pynetdicom2.exceptions import PDUProcessingError

PDU_INPUTS = hostile(encoded(pdus()), corpus_values('pdu'))
ITEM_INPUTS = hostile(encoded(items()), corpus_values('item'), max_random=120)
PDATA_BODIES = hostile(encoded(pdata_pdus()).map(lambda raw: raw[6:]),
                       [raw[6:] for raw in corpus_values('pdu') if raw[:1] == b'\x04'])

#: Memory a decoder may use beyond the input's own size.
MEMORY_SLACK = 64 * 1024


def assert_round_trip(value) -> None:
    """A decoded value encodes (or refuses to, with PDUProcessingError) and decodes back."""
    try:
        raw = value.encode()
    except PDUProcessingError:
        event('decoded value does not re-encode')
        return
    again = pdu.decode_pdu(raw) if isinstance(value, pdu.PDU) else type(value).decode(
        io.BytesIO(raw))
    assert again == value


def peak_of(call) -> int:
    """Peak bytes allocated while ``call()`` runs (its PDUProcessingError ignored)."""
    with peak_memory() as peak:
        try:
            call()
        except PDUProcessingError:
            pass
    return peak[0]


@budget(1500)
@given(PDU_INPUTS, st.one_of(st.none(), st.integers(0, 4096)))
def test_decode_pdu(raw, max_length):
    value = decoded_or_none(PDUProcessingError, pdu.decode_pdu, raw, max_length)
    if value is not None:
        assert max_length in (None, 0) or len(raw) - 6 <= max_length
        assert type(value) is pdu.PDU_TYPES[raw[0]]
        assert_round_trip(value)


@budget(800)
@given(PDU_INPUTS)
def test_each_pdu_class_and_the_header_parser(raw):
    for cls in pdu.PDU_TYPES.values():
        value = decoded_or_none(PDUProcessingError, cls.decode, raw)
        assert value is None or type(value) is cls
    header = decoded_or_none(PDUProcessingError, pdu.parse_pdu_header, raw[:6])
    if header is not None:
        assert header[0] in pdu.PDU_TYPES and 0 <= header[1] <= 0xFFFFFFFF


@budget(300)
@given(pdus())
def test_valid_pdus_round_trip_exactly(value):
    raw = value.encode()
    assert pdu.decode_pdu(raw) == value
    assert pdu.parse_pdu_header(raw[:6]) == (value.pdu_type, len(raw) - 6)


@budget(1200)
@given(ITEM_INPUTS)
def test_every_item_and_sub_item_decoder(raw):
    for decoder in ITEM_DECODERS:
        stream = io.BytesIO(raw)
        value = decoded_or_none(PDUProcessingError, decoder, stream)
        if value is not None:
            assert stream.tell() <= len(raw)
            assert_round_trip(value)


@budget(800)
@given(PDATA_BODIES)
def test_iter_pdvs(body):
    pdvs = decoded_or_none(PDUProcessingError, lambda data: list(pdu.iter_pdvs(data)), body)
    if pdvs is not None:
        # Every byte is accounted for: 4 length + 1 context ID + 1 control per PDV.
        assert sum(6 + len(fragment) for _, _, fragment in pdvs) == len(body)
        # The splitter is lenient on context IDs (the association judges them), so
        # rebuild by hand rather than through the strict encoder.
        rebuilt = b''.join((len(frag) + 2).to_bytes(4, 'big') + bytes([ctx, ctrl]) + frag
                           for ctx, ctrl, frag in pdvs)
        assert rebuilt == bytes(body)


@budget(300)
@given(st.one_of(PDU_INPUTS, ITEM_INPUTS))
def test_memory_stays_near_the_input_size(raw):
    bound = len(raw) + MEMORY_SLACK
    assert peak_of(lambda: pdu.decode_pdu(raw)) < bound
    assert peak_of(lambda: list(pdu.iter_pdvs(raw))) < bound
    for decoder in (pdu.UserInformationItem.decode, pdu.PresentationContextItemRQ.decode,
                    pdu.PresentationDataValueItem.decode):
        assert peak_of(lambda: decoder(io.BytesIO(raw))) < bound
