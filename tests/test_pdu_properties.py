"""Property tests: no input makes a decoder raise anything but PDUProcessingError.

Random bytes and mutated valid PDUs (flipped, inserted, deleted bytes, rewritten length
fields) go to every decoder; memory use stays near the input size whatever lengths
the bytes declare.
"""

from __future__ import annotations

import io
import tracemalloc

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pynetdicom2 import pdu
from pynetdicom2 import userdataitems as udi
from pynetdicom2.exceptions import PDUProcessingError

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

IMPLICIT_LE = '1.2.840.10008.1.2'


def sample_pdus() -> list[pdu.PDU]:
    user_info = pdu.UserInformationItem([
        udi.MaximumLengthSubItem(16384),
        udi.ImplementationClassUIDSubItem('1.2.276.0.7230010.3.0.3.6.7'),
        udi.AsynchronousOperationsWindowSubItem(1, 1),
        udi.ScpScuRoleSelectionSubItem('1.2.840.10008.5.1.4.1.1.2', 1, 0),
        udi.ImplementationVersionNameSubItem('OFFIS_DCMTK_367'),
        udi.SOPClassExtendedNegotiationSubItem('1.2.840.10008.5.1.4.1.2.2.2', b'\x01\x01'),
        udi.SOPClassCommonExtendedNegotiationSubItem('1.2.3', '1.2.4', ['1.2.5', '1.2.6']),
        udi.UserIdentityNegotiationSubItem('joe', 'secret', 2, 1),
        udi.UserIdentityNegotiationSubItemAc(b'ok'),
        udi.GenericUserDataSubItem(0x77, b'unknown'),
    ])
    return [
        pdu.AAssociateRqPDU('CALLED', 'CALLING', [
            pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
            pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem('1.2.840.10008.1.1'),
                                          [pdu.TransferSyntaxSubItem(IMPLICIT_LE),
                                           pdu.TransferSyntaxSubItem('1.2.840.10008.1.2.1')]),
            user_info]),
        pdu.AAssociateAcPDU('CALLED', 'CALLING', [
            pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
            pdu.PresentationContextItemAC(1, 0, pdu.TransferSyntaxSubItem(IMPLICIT_LE)),
            pdu.PresentationContextItemAC(3, 3, None),
            user_info]),
        pdu.AAssociateRjPDU(1, 1, 7),
        pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03' + bytes(range(40))),
                        pdu.PresentationDataValueItem(3, b'\x02tail')]),
        pdu.AReleaseRqPDU(),
        pdu.AReleaseRpPDU(),
        pdu.AAbortPDU(2, 6),
    ]


VALID_PDUS = [value.encode() for value in sample_pdus()]
VALID_ITEMS = [item.encode() for value in sample_pdus()[:2] for item in value.variable_items]
VALID_ITEMS += [sub.encode() for sub in sample_pdus()[0].user_information.user_data]
VALID_ITEMS += [item.encode() for item in sample_pdus()[3].data_value_items]
VALID_ITEMS += [pdu.AbstractSyntaxSubItem('1.2.840.10008.1.1').encode(),
                pdu.TransferSyntaxSubItem(IMPLICIT_LE).encode()]

ITEM_DECODERS = [
    pdu.ApplicationContextItem.decode, pdu.PresentationContextItemRQ.decode,
    pdu.PresentationContextItemAC.decode, pdu.AbstractSyntaxSubItem.decode,
    pdu.TransferSyntaxSubItem.decode, pdu.UserInformationItem.decode,
    pdu.PresentationDataValueItem.decode, udi.decode_user_data_item,
    *(cls.decode for cls in udi.SUB_ITEM_TYPES.values()), udi.GenericUserDataSubItem.decode,
]

LENGTHS = st.one_of(st.integers(0, 16), st.sampled_from([0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]),
                    st.integers(0, 0xFFFFFFFF))


@st.composite
def mutated(draw, sources):
    """A valid encoding with one to four random edits."""
    data = bytearray(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(['flip', 'insert', 'delete', 'length', 'truncate']))
        index = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == 'flip' and data:
            data[index] ^= draw(st.integers(1, 255))
        elif action == 'insert':
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif action == 'delete':
            del data[index:index + draw(st.integers(1, 8))]
        elif action == 'length':
            size = draw(st.sampled_from([2, 4]))
            value = draw(LENGTHS) & (0xFFFF if size == 2 else 0xFFFFFFFF)
            data[index:index + size] = value.to_bytes(size, 'big')
        else:
            del data[index:]
    return bytes(data)


PDU_INPUTS = st.one_of(st.binary(max_size=300), mutated(VALID_PDUS))
ITEM_INPUTS = st.one_of(st.binary(max_size=200), mutated(VALID_ITEMS))


def decode_or_reject(decoder, *args):
    """The decoder's result, or None when it raised PDUProcessingError (anything else fails)."""
    try:
        value = decoder(*args)
    except PDUProcessingError as exc:
        assert str(exc)
        event('rejected')
        return None
    event('decoded')
    return value


def check_re_encode(value):
    """A decoded value encodes (or refuses with PDUProcessingError) and decodes back."""
    try:
        raw = value.encode()
    except PDUProcessingError:
        return
    if isinstance(value, pdu.PDU):
        assert pdu.decode_pdu(raw) == value
    else:
        assert type(value).decode(io.BytesIO(raw)) == value


@SETTINGS
@given(PDU_INPUTS, st.one_of(st.none(), st.integers(0, 400)))
def test_decode_pdu_raises_only_pdu_processing_error(raw, max_length):
    value = decode_or_reject(pdu.decode_pdu, raw, max_length)
    if value is not None:
        assert isinstance(value, pdu.PDU)
        assert max_length in (None, 0) or len(raw) - 6 <= max_length
        check_re_encode(value)


@SETTINGS
@given(PDU_INPUTS)
def test_every_pdu_class_and_the_header_parser(raw):
    for cls in pdu.PDU_TYPES.values():
        value = decode_or_reject(cls.decode, raw)
        if value is not None:
            assert type(value) is cls
    decode_or_reject(pdu.parse_pdu_header, raw[:6])
    pdvs = decode_or_reject(lambda body: list(pdu.iter_pdvs(body)), memoryview(raw)[6:])
    if pdvs is not None:
        assert sum(6 + len(fragment) for _, _, fragment in pdvs) == len(raw[6:])


@SETTINGS
@given(ITEM_INPUTS)
def test_every_item_decoder_raises_only_pdu_processing_error(raw):
    for decoder in ITEM_DECODERS:
        stream = io.BytesIO(raw)
        value = decode_or_reject(decoder, stream)
        if value is not None:
            assert stream.tell() <= len(raw)
            check_re_encode(value)


# --- memory: a declared length never becomes an allocation ---------------------------------

def peak_while(decoder, arg) -> tuple[int, bool]:
    """Peak traced memory while ``decoder(arg)`` runs, and whether it was rejected."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            decoder(arg)
            rejected = False
        except PDUProcessingError:
            rejected = True
        return tracemalloc.get_traced_memory()[1], rejected
    finally:
        tracemalloc.stop()


LIMIT = 64 * 1024

HUGE_DECLARED = [
    ('P-DATA-TF length', pdu.decode_pdu, bytes.fromhex('04 00 fffffff0 00000005 01 03 00')),
    ('PDV length', pdu.decode_pdu, bytes.fromhex('04 00 00000007 fffffff0 01 03 00')),
    ('PDV length, class decode', pdu.PDataTfPDU.decode,
     bytes.fromhex('04 00 00000007 fffffff0 01 03 00')),
    ('A-ASSOCIATE-RQ item length', pdu.decode_pdu,
     VALID_PDUS[0][:2] + (68 + 8).to_bytes(4, 'big') + VALID_PDUS[0][6:74]
     + bytes.fromhex('20 00 ffff 01 00 00 00')),
    ('user information sub-item', pdu.UserInformationItem.decode,
     bytes.fromhex('50 00 0008 51 00 ffff 00000000')),
    ('PDV item from a stream', pdu.PresentationDataValueItem.decode,
     bytes.fromhex('ffffffff 01 03 00')),
    ('sub-item from a stream', udi.decode_user_data_item, bytes.fromhex('60 00 ffff 00')),
    ('iter_pdvs', lambda raw: list(pdu.iter_pdvs(raw)), bytes.fromhex('fffffff0 01 03')),
]


@pytest.mark.parametrize('decoder, raw', [case[1:] for case in HUGE_DECLARED],
                         ids=[case[0] for case in HUGE_DECLARED])
def test_huge_declared_lengths_do_not_allocate(decoder, raw):
    peak, rejected = peak_while(decoder, io.BytesIO(raw) if decoder in ITEM_DECODERS else raw)
    assert rejected
    assert peak < len(raw) + LIMIT


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID_PDUS))
def test_decoding_mutated_pdus_stays_within_input_size(raw):
    assert peak_while(pdu.decode_pdu, raw)[0] < len(raw) + LIMIT
