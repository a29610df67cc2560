"""User information sub-items: round trips, PS3.7 D.3.3 layouts, errors, masking."""

from __future__ import annotations

import io
import struct

import pytest

from pynetdicom2 import userdataitems as udi
from pynetdicom2.exceptions import PDUProcessingError

VERIFICATION = '1.2.840.10008.1.1'
CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
STORAGE_SERVICE_CLASS = '1.2.840.10008.4.2'

SAMPLES = [
    udi.MaximumLengthSubItem(0),
    udi.MaximumLengthSubItem(16384),
    udi.MaximumLengthSubItem(0xFFFFFFFF),
    udi.ImplementationClassUIDSubItem('1.2.276.0.7230010.3.0.3.6.7'),
    udi.ImplementationClassUIDSubItem('1'),
    udi.ImplementationClassUIDSubItem('1.' * 31 + '12'),  # 64 characters
    udi.AsynchronousOperationsWindowSubItem(0, 0),
    udi.AsynchronousOperationsWindowSubItem(1, 65535),
    udi.ScpScuRoleSelectionSubItem(CT_IMAGE_STORAGE, 0, 1),
    udi.ScpScuRoleSelectionSubItem(VERIFICATION, 1, 1),
    udi.ImplementationVersionNameSubItem('A'),
    udi.ImplementationVersionNameSubItem('OFFIS_DCMTK_367 '),
    udi.SOPClassExtendedNegotiationSubItem(CT_IMAGE_STORAGE, b''),
    udi.SOPClassExtendedNegotiationSubItem(CT_IMAGE_STORAGE, b'\x01\x00\x01\x00\x00\x00'),
    udi.SOPClassCommonExtendedNegotiationSubItem(CT_IMAGE_STORAGE, STORAGE_SERVICE_CLASS),
    udi.SOPClassCommonExtendedNegotiationSubItem(
        CT_IMAGE_STORAGE, STORAGE_SERVICE_CLASS, ('1.2.3', '1.2.840.10008.5.1.4.1.1.2.1')),
    udi.UserIdentityNegotiationSubItem(b'joe', b'', 1, 0),
    udi.UserIdentityNegotiationSubItem(b'joe', b'secret', 2, 1),
    udi.UserIdentityNegotiationSubItem(b'\x60\x82\x01\x00kerberos', b'', 3, 1),
    udi.UserIdentityNegotiationSubItem(b'<saml:Assertion/>', b'', 4, 0),
    udi.UserIdentityNegotiationSubItem(b'eyJhbGciOi.e30.sig', b'', 5, 0),
    udi.UserIdentityNegotiationSubItem(b'', b'', 2, 0),
    udi.UserIdentityNegotiationSubItemAc(b''),
    udi.UserIdentityNegotiationSubItemAc(b'server ticket'),
    udi.GenericUserDataSubItem(0x60, b''),
    udi.GenericUserDataSubItem(0xFF, b'\x00\x01raw'),
]


@pytest.mark.parametrize('item', SAMPLES, ids=repr)
def test_round_trip_through_class_decode(item):
    raw = item.encode()
    stream = io.BytesIO(raw + b'tail')
    decoded = type(item).decode(stream)
    assert decoded.__dict__ == item.__dict__
    assert decoded == item
    assert stream.tell() == len(raw)
    assert item.total_length == len(raw)
    assert item.item_length == struct.unpack_from('>H', raw, 2)[0]  # 0.9.8's name


@pytest.mark.parametrize('item', SAMPLES, ids=repr)
def test_round_trip_through_dispatch(item):
    decoded = udi.decode_user_data_item(io.BytesIO(item.encode()))
    assert type(decoded) is type(item)
    assert decoded.__dict__ == item.__dict__


# Layouts written by hand from PS3.8 D.1 and PS3.7 D.3.3 (all big endian).
EXACT = [
    (udi.MaximumLengthSubItem(16384), '51 00 0004 00004000'),
    (udi.ImplementationClassUIDSubItem('1.2.3'), '52 00 0005' + b'1.2.3'.hex()),
    (udi.AsynchronousOperationsWindowSubItem(1, 2), '53 00 0004 0001 0002'),
    (udi.ScpScuRoleSelectionSubItem('1.2', 1, 0), '54 00 0007 0003' + b'1.2'.hex() + '01 00'),
    (udi.ImplementationVersionNameSubItem('ABC'), '55 00 0003' + b'ABC'.hex()),
    (udi.SOPClassExtendedNegotiationSubItem('1.2', b'\x01\x02'),
     '56 00 0007 0003' + b'1.2'.hex() + '01 02'),
    (udi.SOPClassCommonExtendedNegotiationSubItem('1.2', '1.3', ['1.2.4']),
     '57 00 0013 0003' + b'1.2'.hex() + '0003' + b'1.3'.hex() + '0007 0005'
     + b'1.2.4'.hex()),
    (udi.UserIdentityNegotiationSubItem('joe', 'secret', 2, 1),
     '58 00 000f 02 01 0003' + b'joe'.hex() + '0006' + b'secret'.hex()),
    (udi.UserIdentityNegotiationSubItemAc(b'ok'), '59 00 0004 0002' + b'ok'.hex()),
    (udi.GenericUserDataSubItem(0x7A, b'\xAB'), '7A 00 0001 AB'),
]


@pytest.mark.parametrize('item, hex_text', EXACT, ids=lambda v: type(v).__name__)
def test_encode_matches_standard_layout(item, hex_text):
    expected = bytes.fromhex(hex_text)
    assert item.encode() == expected
    assert udi.decode_user_data_item(io.BytesIO(expected)) == item


def test_dispatch_unknown_type_keeps_raw_bytes():
    decoded = udi.decode_user_data_item(io.BytesIO(bytes.fromhex('6E 00 0003 010203')))
    assert type(decoded) is udi.GenericUserDataSubItem
    assert (decoded.item_type, decoded.user_data) == (0x6E, b'\x01\x02\x03')
    assert decoded.encode() == bytes.fromhex('6E 00 0003 010203')


def test_sub_item_version_and_reserved_byte_ignored_on_decode():
    raw = bytes.fromhex('51 7F 0004 00001000')
    assert udi.MaximumLengthSubItem.decode(io.BytesIO(raw)).maximum_length_received == 4096
    assert udi.MaximumLengthSubItem(4096).encode()[1] == 0


def test_uid_trailing_nul_pad_is_stripped():
    raw = bytes.fromhex('52 00 0006') + b'1.2.3\x00'
    assert udi.decode_user_data_item(io.BytesIO(raw)).implementation_class_uid == '1.2.3'


def test_total_length_is_a_property():
    item = udi.AsynchronousOperationsWindowSubItem(1, 1)
    assert item.total_length == 8
    assert not callable(item.total_length)


def test_common_extended_negotiation_keeps_related_uids_as_tuple():
    item = udi.SOPClassCommonExtendedNegotiationSubItem('1.2', '1.3', ['1.4', '1.5'])
    assert item.related_general_sop_class_uids == ('1.4', '1.5')
    assert udi.decode_user_data_item(io.BytesIO(item.encode())) == item


# --- user identity ----------------------------------------------------------------------------

def test_user_identity_str_fields_round_trip_attribute_for_attribute():
    item = udi.UserIdentityNegotiationSubItem('jöe', 'pässword')
    raw = item.encode()
    assert raw == (bytes.fromhex('58 00 0013 02 00 0004') + 'jöe'.encode('utf-8')
                   + bytes.fromhex('0009') + 'pässword'.encode('utf-8'))
    decoded = udi.decode_user_data_item(io.BytesIO(raw))
    # As 0.9.8: text reads as str, given as str or as bytes, sent or decoded.
    assert (decoded.primary_field, decoded.secondary_field) == ('jöe', 'pässword')
    assert (item.primary_field, item.secondary_field) == ('jöe', 'pässword')
    assert decoded.__dict__ == item.__dict__
    assert decoded == item
    assert decoded != udi.UserIdentityNegotiationSubItem('jöe', 'other')
    from_bytes = udi.UserIdentityNegotiationSubItem(b'j\xc3\xb6e', b'p\xc3\xa4ssword')
    assert from_bytes.__dict__ == item.__dict__ and from_bytes.encode() == raw


def test_user_identity_opaque_credentials_read_as_bytes():
    ticket = bytes(range(256))[128:160]  # not UTF-8
    item = udi.UserIdentityNegotiationSubItem(ticket, user_identity_type=3)
    decoded = udi.UserIdentityNegotiationSubItem.decode(io.BytesIO(item.encode()))
    assert decoded.primary_field == ticket and decoded.secondary_field == ''
    assert decoded.__dict__ == item.__dict__
    jwt = udi.UserIdentityNegotiationSubItem(b'eyJhbGciOi.e30.sig', user_identity_type=5)
    assert udi.UserIdentityNegotiationSubItem.decode(
        io.BytesIO(jwt.encode())).primary_field == 'eyJhbGciOi.e30.sig'


@pytest.mark.parametrize('response', ['test_key', b'test_key', b'\xff\xfe', ''])
def test_user_identity_response_round_trip_attribute_for_attribute(response):
    item = udi.UserIdentityNegotiationSubItemAc(response)
    raw = item.encode()
    wire = response.encode() if isinstance(response, str) else response
    assert raw == bytes((0x59, 0)) + struct.pack('>HH', len(wire) + 2, len(wire)) + wire
    decoded = udi.UserIdentityNegotiationSubItemAc.decode(io.BytesIO(raw))
    assert decoded.__dict__ == item.__dict__
    assert decoded.server_response == (wire if wire == b'\xff\xfe' else wire.decode())


def test_user_identity_fields_that_cannot_be_sent_fail_at_encode():
    item = udi.UserIdentityNegotiationSubItem('bad \udc80')
    with pytest.raises(PDUProcessingError, match='UTF-8'):
        item.encode()
    with pytest.raises(PDUProcessingError, match='str or bytes'):
        udi.UserIdentityNegotiationSubItem(None).encode()


def test_user_identity_defaults():
    item = udi.UserIdentityNegotiationSubItem('joe')
    assert (item.secondary_field, item.user_identity_type, item.positive_response_req) == \
        ('', 2, 0)


@pytest.mark.parametrize('identity_type', [3, 4, 5])
def test_user_identity_repr_masks_tokens(identity_type):
    item = udi.UserIdentityNegotiationSubItem(b'TOKEN-VALUE', b'', identity_type, 1)
    text = repr(item)
    assert 'TOKEN-VALUE' not in text
    assert '***' in text
    assert f'user_identity_type={identity_type}' in text


def test_user_identity_repr_masks_password_not_username():
    text = repr(udi.UserIdentityNegotiationSubItem('joe', 'hunter2'))
    assert 'hunter2' not in text
    assert "'joe'" in text
    assert '***' in text


def test_user_identity_response_repr_hides_content():
    text = repr(udi.UserIdentityNegotiationSubItemAc(b'kerberos-server-ticket'))
    assert 'kerberos' not in text
    assert '22 bytes' in text


def test_user_identity_secondary_field_only_for_type_2():
    with pytest.raises(PDUProcessingError, match='secondary field'):
        udi.UserIdentityNegotiationSubItem('joe', 'pw', 1).encode()


# --- encode validation --------------------------------------------------------------------

@pytest.mark.parametrize('item, message', [
    (udi.MaximumLengthSubItem(-1), 'maximum length'),
    (udi.MaximumLengthSubItem(2 ** 32), 'maximum length'),
    (udi.MaximumLengthSubItem('16384'), 'maximum length'),
    (udi.ImplementationClassUIDSubItem('1.2.a'), 'invalid UID'),
    (udi.ImplementationClassUIDSubItem(''), 'invalid UID'),
    (udi.ImplementationClassUIDSubItem('1' * 65), 'invalid UID'),
    (udi.ImplementationClassUIDSubItem(b'1.2'), 'invalid UID'),
    (udi.AsynchronousOperationsWindowSubItem(65536, 0), 'invoked'),
    (udi.AsynchronousOperationsWindowSubItem(0, -1), 'performed'),
    (udi.ScpScuRoleSelectionSubItem(VERIFICATION, 2, 0), 'SCU role'),
    (udi.ScpScuRoleSelectionSubItem(VERIFICATION, 0, 2), 'SCP role'),
    (udi.ScpScuRoleSelectionSubItem('x', 0, 0), 'invalid UID'),
    (udi.ImplementationVersionNameSubItem(''), '1 to 16'),
    (udi.ImplementationVersionNameSubItem('A' * 17), '1 to 16'),
    (udi.ImplementationVersionNameSubItem('NAMÉ'), '1 to 16'),
    (udi.SOPClassExtendedNegotiationSubItem(VERIFICATION, 'text'), 'bytes'),
    (udi.SOPClassCommonExtendedNegotiationSubItem(VERIFICATION, '1.2', ['bad']), 'related'),
    (udi.UserIdentityNegotiationSubItem('joe', '', 2, 2), 'positive response'),
    (udi.UserIdentityNegotiationSubItem(123), 'primary field'),
    (udi.UserIdentityNegotiationSubItem('x' * 65536, '', 1), 'primary field'),
    (udi.UserIdentityNegotiationSubItemAc(None), 'server response'),
    (udi.GenericUserDataSubItem(256, b''), 'item type'),
    (udi.GenericUserDataSubItem(0x60, 'text'), 'bytes'),
    (udi.SOPClassExtendedNegotiationSubItem(VERIFICATION, b'x' * 65536), 'at most 65535'),
], ids=repr)
def test_encode_rejects_invalid_values(item, message):
    with pytest.raises(PDUProcessingError, match=message):
        item.encode()


# --- decode errors ------------------------------------------------------------------------

@pytest.mark.parametrize('hex_text, message', [
    ('51 00 0003 000040', 'needed'),                 # shorter than its fixed field
    ('51 00 0005 0000400000', 'left over'),          # longer than its fixed field
    ('51 00 0004 0000', 'only 2 available'),         # stream ends inside the value
    ('51', 'only 1 available'),                      # stream ends inside the header
    ('52 00 0005 312e322e61', 'invalid UID'),        # '1.2.a'
    ('52 00 0000', 'invalid UID'),                   # empty UID
    ('54 00 0007 0009 312e32 0100', 'needed'),       # UID length beyond the item
    ('55 00 0000', ''),                              # version name: lenient, decodes
    ('57 00 000c 0003 312e32 0003 312e33 0005', 'needed'),  # related length beyond item
    ('58 00 0006 02 00 0005 6a6f', 'needed'),        # primary field beyond the item
    ('59 00 0002 0001', 'needed'),                   # server response beyond the item
], ids=lambda v: v if isinstance(v, str) else None)
def test_decode_rejects_malformed_bytes(hex_text, message):
    stream = io.BytesIO(bytes.fromhex(hex_text))
    if not message:
        assert udi.decode_user_data_item(stream).implementation_version_name == ''
        return
    with pytest.raises(PDUProcessingError, match=message):
        udi.decode_user_data_item(stream)


def test_class_decode_rejects_other_item_type():
    raw = udi.MaximumLengthSubItem(1).encode()
    with pytest.raises(PDUProcessingError, match='0x52 expected, got 0x51'):
        udi.ImplementationClassUIDSubItem.decode(io.BytesIO(raw))


def test_decode_error_names_offset_in_stream():
    stream = io.BytesIO(b'\x00' * 10 + bytes.fromhex('52 00 0003 312e61'))
    stream.seek(10)
    with pytest.raises(PDUProcessingError) as info:
        udi.decode_user_data_item(stream)
    assert 'Implementation Class UID' in str(info.value)
    assert 'offset 14' in str(info.value)


def test_version_name_decodes_unprintable_bytes_as_question_marks():
    raw = bytes.fromhex('55 00 0004') + b'AB\x01\xff'
    assert udi.decode_user_data_item(io.BytesIO(raw)).implementation_version_name == 'AB??'


def test_role_values_are_kept_as_received():
    raw = bytes.fromhex('54 00 0007 0003') + b'1.2' + b'\x02\x00'
    assert udi.decode_user_data_item(io.BytesIO(raw)).scu_role == 2


def test_huge_declared_length_on_short_stream():
    with pytest.raises(PDUProcessingError, match='65535 bytes needed'):
        udi.GenericUserDataSubItem.decode(io.BytesIO(bytes.fromhex('60 00 ffff 00')))


def test_equality_needs_same_type_and_values():
    assert udi.MaximumLengthSubItem(1) == udi.MaximumLengthSubItem(1)
    assert udi.MaximumLengthSubItem(1) != udi.MaximumLengthSubItem(2)
    assert udi.GenericUserDataSubItem(0x51, b'\x00\x00\x00\x01') != udi.MaximumLengthSubItem(1)
    assert udi.MaximumLengthSubItem(1) != 1


def test_repr_is_readable():
    assert repr(udi.ScpScuRoleSelectionSubItem('1.2', 1, 0)) == \
        "ScpScuRoleSelectionSubItem(sop_class_uid='1.2', scu_role=1, scp_role=0)"
