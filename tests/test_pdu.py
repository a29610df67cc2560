"""PDUs and items: round trips, PS3.8 9.3 layouts written by hand, and every decode error."""

from __future__ import annotations

import io
import struct

import pytest

from pynetdicom2 import pdu
from pynetdicom2 import userdataitems as udi
from pynetdicom2.exceptions import PDUProcessingError

APP_CONTEXT = '1.2.840.10008.3.1.1.1'
VERIFICATION = '1.2.840.10008.1.1'
IMPLICIT_LE = '1.2.840.10008.1.2'
EXPLICIT_LE = '1.2.840.10008.1.2.1'
CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'


def h(*parts: str | bytes) -> bytes:
    """Bytes from hex text (spaces allowed) and literal byte strings, in order."""
    return b''.join(p if isinstance(p, bytes) else bytes.fromhex(p) for p in parts)


def ae(title: str) -> bytes:
    return title.encode('ascii').ljust(16, b' ')


def verification_rq_items(max_length=16384):
    return [
        pdu.ApplicationContextItem(APP_CONTEXT),
        pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                      [pdu.TransferSyntaxSubItem(IMPLICIT_LE)]),
        pdu.UserInformationItem([udi.MaximumLengthSubItem(max_length)]),
    ]


# PS3.8 9.3.2: a small A-ASSOCIATE-RQ proposing verification with implicit VR LE.
SMALL_RQ = h(
    '01 00 0000009b',                   # type, reserved, length 155
    '0001 0000', ae('ANY-SCP'), ae('ECHOSCU'), '00' * 32,
    '10 00 0015', APP_CONTEXT.encode(),
    '20 00 002e 01 00 00 00',           # presentation context 1, 46 bytes
    '30 00 0011', VERIFICATION.encode(),
    '40 00 0011', IMPLICIT_LE.encode(),
    '50 00 0008', '51 00 0004 00004000',
)

# PS3.8 9.3.3: the answer, context 1 accepted, context 3 rejected (result 3).
SMALL_AC = h(
    '02 00 00000092',
    '0001 0000', ae('ANY-SCP'), ae('ECHOSCU'), '00' * 32,
    '10 00 0015', APP_CONTEXT.encode(),
    '21 00 0019 01 00 00 00', '40 00 0011', IMPLICIT_LE.encode(),
    '21 00 0008 03 00 03 00', '40 00 0000',
    '50 00 0008', '51 00 0004 00008000',
)


def small_ac_pdu():
    return pdu.AAssociateAcPDU('ANY-SCP', 'ECHOSCU', [
        pdu.ApplicationContextItem(APP_CONTEXT),
        pdu.PresentationContextItemAC(1, pdu.ACCEPTANCE, pdu.TransferSyntaxSubItem(IMPLICIT_LE)),
        pdu.PresentationContextItemAC(3, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED, None),
        pdu.UserInformationItem([udi.MaximumLengthSubItem(32768)]),
    ])


def full_rq():
    return pdu.AAssociateRqPDU('STORESCP', 'MY_SCU', [
        pdu.ApplicationContextItem(APP_CONTEXT),
        pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                      [pdu.TransferSyntaxSubItem(IMPLICIT_LE)]),
        pdu.PresentationContextItemRQ(255, pdu.AbstractSyntaxSubItem(CT_IMAGE_STORAGE),
                                      [pdu.TransferSyntaxSubItem(EXPLICIT_LE),
                                       pdu.TransferSyntaxSubItem(IMPLICIT_LE)]),
        pdu.UserInformationItem([
            udi.MaximumLengthSubItem(0),
            udi.ImplementationClassUIDSubItem('1.2.3.4'),
            udi.AsynchronousOperationsWindowSubItem(2, 3),
            udi.ScpScuRoleSelectionSubItem(CT_IMAGE_STORAGE, 1, 1),
            udi.ImplementationVersionNameSubItem('PYNETDICOM2_1'),
            udi.SOPClassExtendedNegotiationSubItem(CT_IMAGE_STORAGE, b'\x01'),
            udi.SOPClassCommonExtendedNegotiationSubItem(CT_IMAGE_STORAGE,
                                                         '1.2.840.10008.4.2', ['1.2']),
            udi.UserIdentityNegotiationSubItem(b'joe', b'secret', 2, 1),
            udi.GenericUserDataSubItem(0x70, b'future'),
        ]),
    ], protocol_version=1)


PDUS = [
    pdu.AAssociateRqPDU('A', 'B', []),
    pdu.AAssociateRqPDU('ANY-SCP', 'ECHOSCU', verification_rq_items()),
    full_rq(),
    pdu.AAssociateRqPDU('SIXTEEN_CHARS_AE', 'X', verification_rq_items(), protocol_version=7),
    pdu.AAssociateAcPDU('A', 'B', []),
    small_ac_pdu(),
    pdu.AAssociateAcPDU('SCP', 'SCU', [
        pdu.ApplicationContextItem(APP_CONTEXT),
        pdu.PresentationContextItemAC(5, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED,
                                      pdu.TransferSyntaxSubItem(IMPLICIT_LE)),
        pdu.UserInformationItem([udi.UserIdentityNegotiationSubItemAc(b'ticket')])]),
    pdu.AAssociateRjPDU(1, 1, 3),
    pdu.AAssociateRjPDU(2, 3, 2),
    pdu.PDataTfPDU([]),
    pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03')]),
    pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03' + bytes(range(256))),
                    pdu.PresentationDataValueItem(255, b'\x02data')]),
    pdu.AReleaseRqPDU(),
    pdu.AReleaseRpPDU(),
    pdu.AAbortPDU(0, 0),
    pdu.AAbortPDU(2, 6),
]


@pytest.mark.parametrize('value', PDUS, ids=lambda p: type(p).__name__)
def test_pdu_round_trip(value):
    raw = value.encode()
    for decoded in (type(value).decode(raw), pdu.decode_pdu(raw),
                    type(value).decode(bytearray(raw)), pdu.decode_pdu(memoryview(raw))):
        assert type(decoded) is type(value)
        assert decoded.__dict__ == value.__dict__
        assert decoded == value
        assert decoded.encode() == raw


ITEMS = [
    pdu.ApplicationContextItem(APP_CONTEXT),
    pdu.AbstractSyntaxSubItem(CT_IMAGE_STORAGE),
    pdu.TransferSyntaxSubItem('1.2.840.10008.1.2.4.50'),
    pdu.TransferSyntaxSubItem('1'),
    pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                  [pdu.TransferSyntaxSubItem(IMPLICIT_LE)]),
    pdu.PresentationContextItemRQ(
        129, pdu.AbstractSyntaxSubItem(CT_IMAGE_STORAGE),
        [pdu.TransferSyntaxSubItem(uid)
         for uid in (EXPLICIT_LE, IMPLICIT_LE, '1.2.840.10008.1.2.2')]),
    pdu.PresentationContextItemAC(1, 0, pdu.TransferSyntaxSubItem(EXPLICIT_LE)),
    pdu.PresentationContextItemAC(3, 1, None),
    pdu.PresentationContextItemAC(7, 4, None),
    pdu.UserInformationItem([]),
    pdu.UserInformationItem([udi.MaximumLengthSubItem(65536),
                             udi.ImplementationClassUIDSubItem('1.2.3'),
                             udi.GenericUserDataSubItem(0x99, b'x')]),
    pdu.PresentationDataValueItem(1, b'\x00'),
    pdu.PresentationDataValueItem(253, b'\x03' + b'\xff' * 1000),
]


@pytest.mark.parametrize('item', ITEMS, ids=lambda i: type(i).__name__)
def test_item_round_trip_from_stream(item):
    raw = item.encode()
    stream = io.BytesIO(b'\xAA' * 3 + raw + b'more')
    stream.seek(3)
    decoded = type(item).decode(stream)
    assert decoded.__dict__ == item.__dict__
    assert decoded == item
    assert stream.tell() == 3 + len(raw)
    assert item.total_length() == len(raw)
    # 0.9.8's item_length: the length field, read back from the bytes.
    length_field = struct.unpack_from('>L' if item.item_type is None else '>H', raw,
                                      0 if item.item_type is None else 2)[0]
    assert item.item_length == length_field


@pytest.mark.parametrize('value', PDUS, ids=lambda p: type(p).__name__)
def test_pdu_length_and_total_length_as_0_9_8(value):
    raw = value.encode()
    assert value.pdu_length == struct.unpack_from('>L', raw, 2)[0] == len(raw) - 6
    assert value.total_length() == len(raw)


# --- byte-exact layouts (PS3.8 9.3) -----------------------------------------------------------

def test_a_associate_rq_layout():
    value = pdu.AAssociateRqPDU('ANY-SCP', 'ECHOSCU', verification_rq_items())
    assert value.encode() == SMALL_RQ
    assert pdu.decode_pdu(SMALL_RQ) == value


def test_a_associate_ac_layout():
    assert small_ac_pdu().encode() == SMALL_AC
    assert pdu.decode_pdu(SMALL_AC) == small_ac_pdu()


def test_a_associate_rj_layout():
    raw = h('03 00 00000004 00 01 01 03')
    assert pdu.AAssociateRjPDU(1, 1, 3).encode() == raw
    decoded = pdu.decode_pdu(raw)
    assert (decoded.result, decoded.source, decoded.reason_diag) == (1, 1, 3)


def test_a_abort_layout():
    raw = h('07 00 00000004 00 00 02 06')
    assert pdu.AAbortPDU(2, 6).encode() == raw
    decoded = pdu.decode_pdu(raw)
    assert (type(decoded), decoded.source, decoded.reason_diag) == (pdu.AAbortPDU, 2, 6)


def test_a_release_layouts():
    assert pdu.AReleaseRqPDU().encode() == h('05 00 00000004 00000000')
    assert pdu.AReleaseRpPDU().encode() == h('06 00 00000004 00000000')
    assert type(pdu.decode_pdu(h('05 00 00000004 00000000'))) is pdu.AReleaseRqPDU
    assert type(pdu.decode_pdu(h('06 00 00000004 00000000'))) is pdu.AReleaseRpPDU


def test_p_data_tf_layout():
    raw = h('04 00 00000015', '00000008 01 03', b'abcdef', '00000005 03 02', b'xyz')
    value = pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03abcdef'),
                            pdu.PresentationDataValueItem(3, b'\x02xyz')])
    assert value.encode() == raw
    assert pdu.decode_pdu(raw) == value


def test_reserved_fields_are_sent_as_zero_and_ignored_on_receipt():
    raw = bytearray(SMALL_RQ)
    raw[1] = 0xFF                       # PDU header reserved byte
    raw[8:10] = b'\xff\xff'             # reserved after protocol version
    raw[42:74] = b'\xee' * 32           # 32 reserved bytes
    raw[75] = 0x01                      # application context item reserved byte
    raw[100] = 0x01                     # presentation context item reserved byte
    raw[104:107] = b'\x01\xff\x07'      # its three reserved fields (DCMTK sends 0xFF)
    decoded = pdu.decode_pdu(bytes(raw))
    assert decoded == pdu.decode_pdu(SMALL_RQ)
    assert decoded.encode() == SMALL_RQ
    assert pdu.decode_pdu(h('07 ff 00000004 aa bb 00 00')) == pdu.AAbortPDU(0, 0)
    assert pdu.decode_pdu(h('05 00 00000004 01020304')) == pdu.AReleaseRqPDU()


def test_protocol_version_is_decoded_as_sent():
    raw = bytearray(SMALL_RQ)
    raw[6:8] = b'\x00\x02'
    assert pdu.decode_pdu(bytes(raw)).protocol_version == 2


# --- A-ASSOCIATE fields and properties ------------------------------------------------------

def test_convenience_properties():
    rq = full_rq()
    assert rq.application_context_name == APP_CONTEXT
    assert [item.context_id for item in rq.presentation_context_items] == [1, 255]
    assert rq.user_information is rq.variable_items[-1]
    ac = small_ac_pdu()
    assert [(i.context_id, i.result_reason) for i in ac.presentation_context_items] == \
        [(1, 0), (3, 3)]
    empty = pdu.AAssociateRqPDU('A', 'B', [])
    assert (empty.application_context_name, empty.presentation_context_items,
            empty.user_information) == (None, [], None)


def test_ae_titles_are_space_padded_and_stripped():
    raw = pdu.AAssociateRqPDU('AE', 'SIXTEEN_CHARS_AE', []).encode()
    assert raw[10:26] == b'AE' + b' ' * 14
    assert raw[26:42] == b'SIXTEEN_CHARS_AE'
    decoded = pdu.decode_pdu(raw)
    assert (decoded.called_ae_title, decoded.calling_ae_title) == ('AE', 'SIXTEEN_CHARS_AE')


def test_ae_title_nul_padding_from_broken_peers_is_tolerated():
    raw = bytearray(pdu.AAssociateRqPDU('AE', 'CALLER', []).encode())
    raw[10:26] = b'AE'.ljust(16, b'\x00')
    raw[26:42] = b'\x00CALLER\x00'.ljust(16, b' ')
    decoded = pdu.decode_pdu(bytes(raw))
    assert (decoded.called_ae_title, decoded.calling_ae_title) == ('AE', 'CALLER')


@pytest.mark.parametrize('field, offset', [(b'AE\x01', 10), ('AÉ'.encode('latin-1'), 26),
                                           (b'A\x00E', 10)])
def test_rq_ae_title_with_unprintable_bytes_fails(field, offset):
    raw = bytearray(pdu.AAssociateRqPDU('AE', 'CALLER', []).encode())
    raw[offset:offset + 16] = field.ljust(16, b' ')
    with pytest.raises(PDUProcessingError, match=f'AE title.*offset {offset} of the '
                                                 f'A-ASSOCIATE-RQ PDU'):
        pdu.decode_pdu(bytes(raw))


def test_ac_ae_titles_are_not_tested():
    raw = bytearray(pdu.AAssociateAcPDU('AE', 'CALLER', []).encode())
    raw[10:26] = b'\x01AE\xff'.ljust(16, b'\x00')
    raw[26:42] = b' ' * 16
    decoded = pdu.decode_pdu(bytes(raw))
    assert (decoded.called_ae_title, decoded.calling_ae_title) == ('?AE?', '')


def test_all_space_rq_ae_title_decodes_empty_for_the_association_layer():
    raw = bytearray(pdu.AAssociateRqPDU('AE', 'CALLER', []).encode())
    raw[10:26] = b' ' * 16
    assert pdu.decode_pdu(bytes(raw)).called_ae_title == ''


@pytest.mark.parametrize('title', ['', ' ' * 16, 'SEVENTEEN_CHARS_X', 'A\\B', 'TAB\tAE',
                                   'ÄE', None, 42])
@pytest.mark.parametrize('cls', [pdu.AAssociateRqPDU, pdu.AAssociateAcPDU])
def test_encode_rejects_bad_ae_titles(cls, title):
    with pytest.raises(PDUProcessingError, match='AE title'):
        cls(title, 'OK', []).encode()
    with pytest.raises(PDUProcessingError, match='calling AE title'):
        cls('OK', title, []).encode()


def test_encode_accepts_ascii_bytes_ae_title():
    assert pdu.AAssociateRqPDU(b'BYTES', 'OK', []).encode()[10:26] == ae('BYTES')


# --- presentation contexts ---------------------------------------------------------------

@pytest.mark.parametrize('context_id', [0, 2, 254, 256, -1, '1', None])
def test_encode_rejects_bad_context_ids(context_id):
    abstract = pdu.AbstractSyntaxSubItem(VERIFICATION)
    ts = [pdu.TransferSyntaxSubItem(IMPLICIT_LE)]
    for item in (pdu.PresentationContextItemRQ(context_id, abstract, ts),
                 pdu.PresentationContextItemAC(context_id, 0, ts[0]),
                 pdu.PresentationDataValueItem(context_id, b'\x03')):
        with pytest.raises(PDUProcessingError, match='presentation context ID'):
            item.encode()


def test_encode_rejects_incomplete_rq_context():
    abstract = pdu.AbstractSyntaxSubItem(VERIFICATION)
    with pytest.raises(PDUProcessingError, match='TransferSyntaxSubItem'):
        pdu.PresentationContextItemRQ(1, abstract, []).encode()
    with pytest.raises(PDUProcessingError, match='AbstractSyntaxSubItem'):
        pdu.PresentationContextItemRQ(1, None, [pdu.TransferSyntaxSubItem(IMPLICIT_LE)]).encode()
    with pytest.raises(PDUProcessingError, match='result/reason'):
        pdu.PresentationContextItemAC(1, 5, None).encode()


def test_rejected_context_without_transfer_syntax():
    item = pdu.PresentationContextItemAC(3, pdu.USER_REJECTION, None)
    assert item.encode() == h('21 00 0008 03 00 01 00 40 00 0000')
    absent = h('21 00 0004 03 00 01 00')
    assert pdu.PresentationContextItemAC.decode(io.BytesIO(absent)) == item


def test_rejected_context_with_invalid_transfer_syntax_is_not_tested():
    raw = h('21 00 000b 03 00 04 00 40 00 0003', b'x.y')
    assert pdu.PresentationContextItemAC.decode(io.BytesIO(raw)).ts_sub_item is None
    accepted = h('21 00 000b 03 00 00 00 40 00 0003', b'x.y')
    with pytest.raises(PDUProcessingError, match='Transfer Syntax Sub-Item: invalid UID'):
        pdu.PresentationContextItemAC.decode(io.BytesIO(accepted))


@pytest.mark.parametrize('raw, message', [
    (h('20 00 0019 01 00 00 00', '40 00 0011', IMPLICIT_LE.encode()), 'needs one Abstract'),
    (h('20 00 0019 01 00 00 00', '30 00 0011', VERIFICATION.encode()), 'needs one Abstract'),
    (h('20 00 002e 01 00 00 00', '30 00 0011', VERIFICATION.encode(), '30 00 0011',
       VERIFICATION.encode()), 'more than one Abstract'),
    (h('20 00 0008 01 00 00 00', '50 00 0000'), 'sub-item type 0x50 is not allowed'),
    (h('20 00 0003 01 00 00'), 'reserved fields: 3 bytes needed, only 2 left'),
    (h('20 00 0009 01 00 00 00', '30 00 0011 31'), 'declares 17 bytes, only 1 left'),
], ids=['no abstract', 'no transfer syntax', 'two abstract', 'foreign sub-item',
        'short fixed fields', 'sub-item overruns'])
def test_rq_context_decode_errors(raw, message):
    with pytest.raises(PDUProcessingError, match=message):
        pdu.PresentationContextItemRQ.decode(io.BytesIO(raw))


@pytest.mark.parametrize('raw', [
    h('21 00 000c 01 00 00 00', '40 00 0000', '40 00 0000'),
    h('21 00 0008 01 00 00 00', '30 00 0000'),
])
def test_ac_context_allows_one_transfer_syntax_only(raw):
    with pytest.raises(PDUProcessingError, match='only one Transfer Syntax'):
        pdu.PresentationContextItemAC.decode(io.BytesIO(raw))


# --- UIDs --------------------------------------------------------------------------------

@pytest.mark.parametrize('uid', ['', '1.2.a', '1' * 65, ' 1.2', '1.2\x00', '١.٢', None])
def test_encode_rejects_bad_uids(uid):
    for item in (pdu.ApplicationContextItem(uid), pdu.AbstractSyntaxSubItem(uid),
                 pdu.TransferSyntaxSubItem(uid)):
        with pytest.raises(PDUProcessingError, match='invalid UID'):
            item.encode()


def test_decode_strips_one_trailing_nul_pad():
    raw = h('40 00 0012', IMPLICIT_LE.encode() + b'\x00')
    assert pdu.TransferSyntaxSubItem.decode(io.BytesIO(raw)).name == IMPLICIT_LE
    with pytest.raises(PDUProcessingError, match='invalid UID'):
        pdu.TransferSyntaxSubItem.decode(io.BytesIO(h('40 00 0013', IMPLICIT_LE.encode()
                                                      + b'\x00\x00')))


def test_decode_rejects_65_character_uid():
    with pytest.raises(PDUProcessingError, match='invalid UID'):
        pdu.AbstractSyntaxSubItem.decode(io.BytesIO(h('30 00 0041', b'1' * 65)))


def test_bad_uid_error_names_item_and_offset_in_pdu():
    raw = bytearray(SMALL_RQ)
    ts_offset = SMALL_RQ.index(IMPLICIT_LE.encode())
    raw[ts_offset + 1] = ord('x')
    with pytest.raises(PDUProcessingError) as info:
        pdu.decode_pdu(bytes(raw))
    text = str(info.value)
    assert 'Transfer Syntax Sub-Item' in text
    assert f'offset {ts_offset} of the A-ASSOCIATE-RQ PDU' in text


# --- placement of variable items ---------------------------------------------------------

def rq_with(*items: bytes) -> bytes:
    body = h('0001 0000', ae('SCP'), ae('SCU'), '00' * 32, *items)
    return h('01 00') + len(body).to_bytes(4, 'big') + body


APP_ITEM = h('10 00 0015', APP_CONTEXT.encode())
USER_ITEM = h('50 00 0008 51 00 0004 00004000')
AC_CONTEXT = h('21 00 0019 01 00 00 00 40 00 0011', IMPLICIT_LE.encode())
RQ_CONTEXT = SMALL_RQ[99:149]


def test_rq_pieces_are_what_the_tests_think():
    assert pdu.decode_pdu(rq_with(APP_ITEM, RQ_CONTEXT, USER_ITEM)) == \
        pdu.AAssociateRqPDU('SCP', 'SCU', verification_rq_items())


@pytest.mark.parametrize('items, message, offset', [
    ((APP_ITEM, AC_CONTEXT, USER_ITEM), 'item type 0x21 is not allowed', 99),
    ((APP_ITEM, APP_ITEM, RQ_CONTEXT), 'more than one Application Context', 99),
    ((APP_ITEM, USER_ITEM, RQ_CONTEXT), 'User Information Item must be the last', 111),
    ((APP_ITEM, USER_ITEM, USER_ITEM), 'User Information Item must be the last', 111),
    ((APP_ITEM, h('60 00 0000')), 'item type 0x60 is not allowed', 99),
    ((APP_ITEM, h('52 00 0000')), 'item type 0x52 is not allowed', 99),
])
def test_rq_item_placement_errors(items, message, offset):
    with pytest.raises(PDUProcessingError, match=f'{message}.*offset {offset} of the '
                                                 'A-ASSOCIATE-RQ PDU'):
        pdu.decode_pdu(rq_with(*items))


# The names and offsets these errors gave before the codec was made faster (issue 18:
# names now built only for an error, items read in their parent's reader).
_BAD_TS_HEADER = bytearray(RQ_CONTEXT)
_BAD_TS_HEADER[29:33] = h('40 00 0012')     # declares 18 bytes, 17 are left


@pytest.mark.parametrize('items, message', [
    ((APP_ITEM, bytes(_BAD_TS_HEADER)),
     'Presentation Context Item (RQ) sub-item of type 0x40 declares 18 bytes, only 17 '
     'left in its parent (at byte offset 128 of the A-ASSOCIATE-RQ PDU)'),
    ((APP_ITEM, RQ_CONTEXT, h('50 00 0006 51 00 0004 0000')),
     'user information sub-item of type 0x51 declares 4 bytes, only 2 left in its '
     'parent (at byte offset 153 of the A-ASSOCIATE-RQ PDU)'),
    ((APP_ITEM, RQ_CONTEXT, h('50 00 0007 53 00 0003 0001 00')),
     'Asynchronous Operations Window Sub-Item maximum-number-operations-performed: 2 '
     'bytes needed, only 1 left (at byte offset 159 of the A-ASSOCIATE-RQ PDU)'),
    ((APP_ITEM, RQ_CONTEXT, h('50 00 0009 51 00 0005 00004000 00')),
     'Maximum Length Sub-Item: 1 bytes left over after its fields (item length disagrees '
     'with its content) (at byte offset 161 of the A-ASSOCIATE-RQ PDU)'),
])
def test_truncated_and_overlong_items_name_the_item_and_offset(items, message):
    with pytest.raises(PDUProcessingError) as info:
        pdu.decode_pdu(rq_with(*items))
    assert str(info.value) == message


def test_ac_rejects_rq_context_item():
    raw = bytearray(rq_with(APP_ITEM, RQ_CONTEXT))
    raw[0] = pdu.A_ASSOCIATE_AC
    with pytest.raises(PDUProcessingError, match='A-ASSOCIATE-AC: item type 0x20'):
        pdu.decode_pdu(bytes(raw))


def test_encode_enforces_the_same_placement_rules():
    app = pdu.ApplicationContextItem(APP_CONTEXT)
    user = pdu.UserInformationItem([])
    with pytest.raises(PDUProcessingError, match='more than one Application Context'):
        pdu.AAssociateRqPDU('A', 'B', [app, app]).encode()
    with pytest.raises(PDUProcessingError, match='must be the last'):
        pdu.AAssociateRqPDU('A', 'B', [user, app]).encode()
    with pytest.raises(PDUProcessingError, match='not allowed'):
        pdu.AAssociateRqPDU('A', 'B', [pdu.PresentationContextItemAC(1, 0, None)]).encode()
    with pytest.raises(PDUProcessingError, match='not allowed'):
        pdu.AAssociateAcPDU('A', 'B', [udi.MaximumLengthSubItem(1)]).encode()
    with pytest.raises(PDUProcessingError, match='sub-item is needed'):
        pdu.UserInformationItem([pdu.ApplicationContextItem(APP_CONTEXT)]).encode()


# --- PDU framing --------------------------------------------------------------------------

def test_parse_pdu_header():
    assert pdu.parse_pdu_header(h('04 00 00010000')) == (pdu.P_DATA_TF, 65536)
    assert pdu.parse_pdu_header(bytearray(h('01 00 000000cd ffff'))) == (1, 0xCD)
    with pytest.raises(PDUProcessingError, match='unknown PDU type 0x08'):
        pdu.parse_pdu_header(h('08 00 00000004'))
    with pytest.raises(PDUProcessingError, match='unknown PDU type 0x00'):
        pdu.parse_pdu_header(h('00 00 00000004'))
    with pytest.raises(PDUProcessingError, match='6 bytes needed'):
        pdu.parse_pdu_header(h('01 00 0000'))


def test_pdu_types_mapping():
    assert pdu.PDU_TYPES == {1: pdu.AAssociateRqPDU, 2: pdu.AAssociateAcPDU,
                             3: pdu.AAssociateRjPDU, 4: pdu.PDataTfPDU,
                             5: pdu.AReleaseRqPDU, 6: pdu.AReleaseRpPDU, 7: pdu.AAbortPDU}
    assert all(cls.pdu_type == t for t, cls in pdu.PDU_TYPES.items())
    assert pdu.PDU_HEADER_LENGTH == 6


@pytest.mark.parametrize('raw, message', [
    (b'', '6 bytes needed'),
    (h('07 00 0000'), '6 bytes needed'),
    (h('09 00 00000004 00000000'), 'unknown PDU type 0x09'),
    (h('07 00 00000004 000002'), 'declares 4 bytes, 3 follow'),
    (h('07 00 00000004 0000020600'), 'declares 4 bytes, 5 follow'),
    (h('07 00 00000003 000002'), 'reason/diag.: 1 bytes needed, only 0 left'),
    (h('07 00 00000005 0000020600'), '1 bytes left over after the A-ABORT'),
    (h('03 00 00000002 0001'), 'A-ASSOCIATE-RJ'),
    (h('05 00 00000000'), 'A-RELEASE-RQ'),
    (h('06 00 00000008 0000000000000000'), 'left over'),
    (h('04 00 ffffffff 00'), 'declares 4294967295 bytes, 1 follow'),
    (SMALL_RQ[:80], 'declares 155 bytes, 74 follow'),
    (h('01 00 00000010', '00' * 16), 'called AE title: 16 bytes needed'),
])
def test_decode_pdu_errors(raw, message):
    with pytest.raises(PDUProcessingError, match=message):
        pdu.decode_pdu(raw)


def test_decode_pdu_max_length():
    raw = pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03' + b'x' * 94)]).encode()
    assert len(raw) == 6 + 100
    assert pdu.decode_pdu(raw, max_length=100).data_value_items[0].data_value[1:] == b'x' * 94
    assert pdu.decode_pdu(raw, max_length=0)     # 0 means unlimited (PS3.8 D.1)
    with pytest.raises(PDUProcessingError, match='P-DATA-TF PDU declares 100 bytes, above '
                                                 'the maximum of 99'):
        pdu.decode_pdu(raw, max_length=99)
    with pytest.raises(PDUProcessingError, match='above the maximum'):
        pdu.decode_pdu(h('04 00 7fffffff'), max_length=65536)


def test_class_decode_checks_its_own_type():
    with pytest.raises(PDUProcessingError, match=r'0x07 \(A-ABORT\) expected, got 0x03'):
        pdu.AAbortPDU.decode(pdu.AAssociateRjPDU(1, 1, 1).encode())


def test_decode_rejects_non_bytes():
    with pytest.raises(PDUProcessingError, match='bytes-like'):
        pdu.decode_pdu('01 00')


def test_decode_of_a_slice_of_a_larger_buffer():
    buffer = bytearray(b'junk' + SMALL_RQ + b'junk')
    view = memoryview(buffer)[4:4 + len(SMALL_RQ)]
    assert pdu.decode_pdu(view) == pdu.decode_pdu(SMALL_RQ)


# --- P-DATA --------------------------------------------------------------------------------

def test_iter_pdvs_yields_zero_copy_fragments():
    raw = pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03command'),
                          pdu.PresentationDataValueItem(5, b'\x00data'),
                          pdu.PresentationDataValueItem(5, b'\x02')]).encode()
    buffer = bytearray(raw)
    body = memoryview(buffer)[pdu.PDU_HEADER_LENGTH:]
    pdvs = list(pdu.iter_pdvs(body))
    assert [(c, m, bytes(f)) for c, m, f in pdvs] == \
        [(1, 3, b'command'), (5, 0, b'data'), (5, 2, b'')]
    buffer[pdu.PDU_HEADER_LENGTH + 6] = ord('C')     # the fragment shares the buffer
    assert bytes(pdvs[0][2]) == b'Command'


def test_iter_pdvs_accepts_bytes():
    assert [(c, m, bytes(f)) for c, m, f in pdu.iter_pdvs(h('00000003 01 02 ff'))] == \
        [(1, 2, b'\xff')]
    assert list(pdu.iter_pdvs(b'')) == []


@pytest.mark.parametrize('body, message', [
    (h('000000'), 'truncated item length .3 bytes left. .at byte offset 6 '),
    (h('00000001 01'), 'item length 1 is below 2 .at byte offset 6 '),
    (h('00000000'), 'item length 0 is below 2'),
    (h('00000004 01 02 ff'), 'declares 4 bytes, only 3 left .at byte offset 6 '),
    (h('00000003 01 02 ff', 'ffffffff 01 02'), 'declares 4294967295 bytes, only 2 left '
                                               '.at byte offset 13 '),
])
def test_iter_pdvs_errors(body, message):
    with pytest.raises(PDUProcessingError, match=message):
        list(pdu.iter_pdvs(memoryview(body)))


def test_p_data_tf_decode_checks_pdv_lengths():
    with pytest.raises(PDUProcessingError, match='P-DATA-TF PDU'):
        pdu.decode_pdu(h('04 00 00000006 00000005 01 03'))


def test_pdv_item_needs_a_message_control_header():
    with pytest.raises(PDUProcessingError, match='message control header'):
        pdu.PresentationDataValueItem(1, b'').encode()
    with pytest.raises(PDUProcessingError, match='below 2'):
        pdu.PresentationDataValueItem.decode(io.BytesIO(h('00000001 01')))


def test_pdv_item_from_stream_with_huge_declared_length():
    with pytest.raises(PDUProcessingError, match='4294967295 bytes needed, only 3 available'):
        pdu.PresentationDataValueItem.decode(io.BytesIO(h('ffffffff 01 03 00')))


# --- values -------------------------------------------------------------------------------

@pytest.mark.parametrize('value', [
    pdu.AAssociateRjPDU(256, 1, 1), pdu.AAssociateRjPDU(1, -1, 1), pdu.AAssociateRjPDU(1, 1, None),
    pdu.AAbortPDU(0, 300), pdu.AAssociateRqPDU('A', 'B', [], protocol_version=65536),
    pdu.PDataTfPDU([b'\x03raw']),
])
def test_encode_rejects_out_of_range_values(value):
    with pytest.raises(PDUProcessingError):
        value.encode()


def test_item_class_decode_rejects_other_item_type():
    raw = pdu.AbstractSyntaxSubItem(VERIFICATION).encode()
    with pytest.raises(PDUProcessingError, match='0x40 expected, got 0x30'):
        pdu.TransferSyntaxSubItem.decode(io.BytesIO(raw))


def test_item_decode_from_short_stream():
    with pytest.raises(PDUProcessingError, match='only 2 available'):
        pdu.ApplicationContextItem.decode(io.BytesIO(h('10 00')))
    with pytest.raises(PDUProcessingError, match='21 bytes needed, only 3 available'):
        pdu.ApplicationContextItem.decode(io.BytesIO(h('10 00 0015 312e32')))


def test_user_information_item_rejects_sub_item_overrun():
    raw = h('50 00 0008 51 00 0005 00004000')
    with pytest.raises(PDUProcessingError, match='declares 5 bytes, only 4 left'):
        pdu.UserInformationItem.decode(io.BytesIO(raw))


def test_equality_and_repr():
    assert pdu.AReleaseRqPDU() == pdu.AReleaseRqPDU()
    assert pdu.AReleaseRqPDU() != pdu.AReleaseRpPDU()
    assert pdu.AAbortPDU(0, 0) != pdu.AAbortPDU(2, 0)
    assert pdu.AAssociateRjPDU(1, 1, 3) != (1, 1, 3)
    assert repr(pdu.AAbortPDU(2, 6)) == 'AAbortPDU(source=2, reason_diag=6)'
    assert repr(pdu.AReleaseRqPDU()) == 'AReleaseRqPDU()'
    text = repr(pdu.PresentationDataValueItem(1, b'\x00' + b'x' * 5000))
    assert '5001 bytes' in text and len(text) < 200


# -- decode_associate: the same A-ASSOCIATE bytes again are copied, not decoded ---------

def _every_object(value, seen=None):
    """Every list and wire object inside a decoded PDU (itself included)."""
    seen = [] if seen is None else seen
    if isinstance(value, list):
        seen.append(value)
        for item in value:
            _every_object(item, seen)
    elif hasattr(value, '__dict__'):
        seen.append(value)
        for item in vars(value).values():
            _every_object(item, seen)
    return seen


@pytest.mark.parametrize('raw', [SMALL_RQ, SMALL_AC, full_rq().encode(),
                                 small_ac_pdu().encode()],
                         ids=['small-rq', 'small-ac', 'full-rq', 'ac'])
def test_decode_associate_gives_what_decode_pdu_gives_in_objects_of_its_own(raw):
    first = pdu.decode_associate(raw)
    second = pdu.decode_associate(bytearray(raw))
    third = pdu.decode_associate(memoryview(raw))
    assert first == second == third == pdu.decode_pdu(raw)
    assert third.encode() == pdu.decode_pdu(raw).encode()
    assert repr(third) == repr(pdu.decode_pdu(raw))     # fields in their order too
    # No list or object is shared: changing one decode changes no other.
    ids = [set(map(id, _every_object(p))) for p in (first, second, third)]
    assert not ids[0] & ids[1] and not ids[1] & ids[2] and not ids[0] & ids[2]
    first.variable_items.clear()
    first.called_ae_title = 'CHANGED'
    second.variable_items[-1].user_data.append(udi.MaximumLengthSubItem(1))
    assert pdu.decode_associate(raw) == pdu.decode_pdu(raw)


def test_decode_associate_of_other_or_bad_bytes_is_decode_pdus():
    release = pdu.AReleaseRqPDU().encode()
    assert pdu.decode_associate(release) == pdu.decode_pdu(release)
    cut = SMALL_RQ[:-3]
    for _ in range(2):
        with pytest.raises(PDUProcessingError) as raised:
            pdu.decode_associate(cut)
        with pytest.raises(PDUProcessingError) as expected:
            pdu.decode_pdu(cut)
        assert str(raised.value) == str(expected.value)
    big = pdu.AAssociateRqPDU('ANY-SCP', 'ECHOSCU', [
        pdu.ApplicationContextItem(APP_CONTEXT)] + [
        pdu.PresentationContextItemRQ(2 * i + 1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                      [pdu.TransferSyntaxSubItem(IMPLICIT_LE)] * 40)
        for i in range(12)]).encode()
    assert len(big) > 8192
    assert pdu.decode_associate(big) == pdu.decode_associate(big) == pdu.decode_pdu(big)
