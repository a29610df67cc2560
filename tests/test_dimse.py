"""Tests of pynetdicom2.dimse: messages, the command-set codec, fragmentation, reassembly."""

from __future__ import annotations

import io
import struct
import tracemalloc

import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.tag import Tag

from pynetdicom2 import dimse, dimsecodec, dimsemessages, reassembly
from pynetdicom2.exceptions import DIMSEProcessingError

# Command Field values of PS3.7 E.1, written out again so the map is checked against
# the standard, not against itself.
PS37_COMMAND_FIELDS = {
    'CStoreRQMessage': 0x0001, 'CStoreRSPMessage': 0x8001,
    'CGetRQMessage': 0x0010, 'CGetRSPMessage': 0x8010,
    'CFindRQMessage': 0x0020, 'CFindRSPMessage': 0x8020,
    'CMoveRQMessage': 0x0021, 'CMoveRSPMessage': 0x8021,
    'CEchoRQMessage': 0x0030, 'CEchoRSPMessage': 0x8030,
    'NEventReportRQMessage': 0x0100, 'NEventReportRSPMessage': 0x8100,
    'NGetRQMessage': 0x0110, 'NGetRSPMessage': 0x8110,
    'NSetRQMessage': 0x0120, 'NSetRSPMessage': 0x8120,
    'NActionRQMessage': 0x0130, 'NActionRSPMessage': 0x8130,
    'NCreateRQMessage': 0x0140, 'NCreateRSPMessage': 0x8140,
    'NDeleteRQMessage': 0x0150, 'NDeleteRSPMessage': 0x8150,
    'CCancelRQMessage': 0x0FFF,
}
ALL_CLASSES = [getattr(dimse, name) for name in PS37_COMMAND_FIELDS]

# property -> (keyword of its element, a value to set, the value read back)
PROPERTY_VALUES = {
    'message_id': ('MessageID', 7, 7),
    'message_id_being_responded_to': ('MessageIDBeingRespondedTo', 9, 9),
    'priority': ('Priority', dimse.PRIORITY_HIGH, 1),
    'affected_sop_instance_uid': ('AffectedSOPInstanceUID', '1.2.3.4.5', '1.2.3.4.5'),
    'requested_sop_instance_uid': ('RequestedSOPInstanceUID', '1.2.3.4.56', '1.2.3.4.56'),
    'move_originator_aet': ('MoveOriginatorApplicationEntityTitle', 'ORIGIN', 'ORIGIN'),
    'move_originator_message_id': ('MoveOriginatorMessageID', 3, 3),
    'move_destination': ('MoveDestination', 'DEST_AE', 'DEST_AE'),
    'num_of_remaining_sub_ops': ('NumberOfRemainingSuboperations', 10, 10),
    'num_of_completed_sub_ops': ('NumberOfCompletedSuboperations', 11, 11),
    'num_of_failed_sub_ops': ('NumberOfFailedSuboperations', 12, 12),
    'num_of_warning_sub_ops': ('NumberOfWarningSuboperations', 13, 13),
    'event_type_id': ('EventTypeID', 2, 2),
    'action_type_id': ('ActionTypeID', 1, 1),
    'attribute_identifier_list': ('AttributeIdentifierList', [0x00100010, (0x0010, 0x0020)],
                                  [Tag(0x00100010), Tag(0x00100020)]),
    'status': ('Status', 0xC000, 0xC000),
    'error_comment': ('ErrorComment', 'disk full', 'disk full'),
    'error_id': ('ErrorID', 5, 5),
    'offending_element': ('OffendingElement', 0x00100010, Tag(0x00100010)),
}
ALL_PROPERTIES = list(PROPERTY_VALUES) + ['sop_class_uid']
REQUESTED_CLASS_MESSAGES = {'NGetRQMessage', 'NSetRQMessage', 'NActionRQMessage',
                            'NDeleteRQMessage'}


def hand_element(element: int, value: bytes) -> bytes:
    """A command element laid out as PS3.7 6.3.1 says: tag, 4-byte length, value."""
    return struct.pack('<HHL', 0x0000, element, len(value)) + value


def with_group_length(body: bytes) -> bytes:
    return hand_element(0x0000, struct.pack('<L', len(body))) + body


# -- the table and the classes ------------------------------------------------------

def test_command_element_table_matches_pydicom_dictionary():
    group0 = {tag & 0xFFFF: (entry[0], entry[4])
              for tag, entry in DicomDictionary.items() if tag >> 16 == 0}
    assert dimsecodec.COMMAND_ELEMENTS == group0


def test_message_type_maps_every_command_field_of_ps37():
    assert len(dimse.MESSAGE_TYPE) == 23
    for name, field in PS37_COMMAND_FIELDS.items():
        cls = getattr(dimse, name)
        assert cls.command_field == field
        assert dimse.MESSAGE_TYPE[field] is cls


def test_constants():
    assert (dimse.NO_DATASET, dimse.PRIORITY_LOW, dimse.PRIORITY_MEDIUM,
            dimse.PRIORITY_HIGH) == (0x0101, 2, 0, 1)


@pytest.mark.parametrize('cls', ALL_CLASSES, ids=lambda c: c.__name__)
def test_request_and_response_bases(cls):
    if cls.__name__.endswith('RSPMessage'):
        assert issubclass(cls, dimse.DIMSEResponseMessage)
    else:
        assert issubclass(cls, dimse.DIMSERequestMessage)
    assert set(cls.command_fields) <= {kw for _, kw in dimsecodec.COMMAND_ELEMENTS.values()}


def test_alias_module_reexports_the_same_objects():
    for name in dimse.__all__:
        assert getattr(dimsemessages, name) is getattr(dimse, name)


@pytest.mark.parametrize('cls', ALL_CLASSES, ids=lambda c: c.__name__)
def test_new_message_has_command_field_and_no_data_set(cls):
    msg = cls()
    assert msg.command_set.CommandField == cls.command_field
    assert msg.command_set.CommandDataSetType == dimse.NO_DATASET
    assert msg.data_set is None and msg.context_id is None and not msg.has_data_set
    for name in ALL_PROPERTIES:
        assert getattr(msg, name) is None, name


@pytest.mark.parametrize('cls', ALL_CLASSES, ids=lambda c: c.__name__)
def test_fresh_command_set_names_every_field_and_sends_only_those_set(cls):
    # As in 0.9.8: msg.command_set.<keyword> reads None on a fresh message.
    msg = cls()
    for keyword in cls.command_fields:
        expected = {'CommandField': cls.command_field,
                    'CommandDataSetType': dimse.NO_DATASET}.get(keyword)
        assert getattr(msg.command_set, keyword) == expected, keyword
    # Fields left None are not sent, not even as empty elements.
    raw = msg.encode_command_set()
    assert raw == with_group_length(hand_element(0x0100, struct.pack('<H', cls.command_field))
                                    + hand_element(0x0800, struct.pack('<H', 0x0101)))
    assert dimsecodec.encode_command_set(msg.command_set) == raw
    # A decoded message holds what was sent, and nothing more.
    decoded = dimse.decode_message(raw)
    assert [e.keyword for e in decoded.command_set] == [
        'CommandGroupLength', 'CommandField', 'CommandDataSetType']


def test_fresh_command_set_fields_set_through_the_dataset_are_sent():
    msg = dimse.CStoreRQMessage()
    msg.command_set.AffectedSOPInstanceUID = '1.2.3.4'
    msg.command_set.MessageID = 7
    decoded = dimse.decode_message(msg.encode_command_set())
    assert (decoded.affected_sop_instance_uid, decoded.message_id) == ('1.2.3.4', 7)
    assert decoded.move_originator_aet is None
    assert 0x00001030 not in decoded.command_set


@pytest.mark.parametrize('cls', ALL_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_field_by_field(cls):
    msg = cls()
    for name, (keyword, value, _) in PROPERTY_VALUES.items():
        if keyword in cls.command_fields:
            setattr(msg, name, value)
    msg.sop_class_uid = '1.2.840.10008.5.1.4.1.1.2'
    raw = dimsecodec.encode_command_set(msg.command_set)

    (length,) = struct.unpack_from('<L', raw, 8)
    assert raw[:8] == b'\x00\x00\x00\x00\x04\x00\x00\x00'
    assert length == len(raw) - 12

    decoded = dimse.decode_message(raw)
    assert type(decoded) is cls
    assert decoded.command_set.CommandGroupLength == length
    for name, (keyword, _, expected) in PROPERTY_VALUES.items():
        if keyword in cls.command_fields:
            assert getattr(decoded, name) == expected, name
        else:
            assert getattr(decoded, name) is None, name
    assert decoded.sop_class_uid == '1.2.840.10008.5.1.4.1.1.2'
    assert decoded.command_set.CommandDataSetType == dimse.NO_DATASET
    # The whole command set survives: same keywords, same values.
    msg.set_length()
    assert [(e.tag, e.value) for e in decoded.command_set] == \
        [(e.tag, e.value) for e in msg.command_set]
    assert dimsecodec.encode_command_set(decoded.command_set) == raw


@pytest.mark.parametrize('cls', ALL_CLASSES, ids=lambda c: c.__name__)
def test_sop_class_uid_names_the_element_of_the_ps37_table(cls):
    msg = cls()
    msg.sop_class_uid = '1.2.3'
    if cls.__name__ in REQUESTED_CLASS_MESSAGES:
        assert msg.command_set.RequestedSOPClassUID == '1.2.3'
        assert 'AffectedSOPClassUID' not in msg.command_set
        assert msg.requested_sop_class_uid == '1.2.3'
        assert 'RequestedSOPClassUID' in cls.command_fields
    else:
        assert msg.command_set.AffectedSOPClassUID == '1.2.3'
        assert 'RequestedSOPClassUID' not in msg.command_set
        assert msg.affected_sop_class_uid == '1.2.3'


def test_setting_none_clears_the_element_and_it_is_not_sent():
    msg = dimse.CStoreRQMessage()
    msg.move_originator_aet = 'ORIGIN'
    msg.move_originator_aet = None
    assert msg.move_originator_aet is None
    # The name stays, None, as in 0.9.8; nothing of it goes on the wire.
    assert msg.command_set.MoveOriginatorApplicationEntityTitle is None
    raw = dimsecodec.encode_command_set(msg.command_set)
    assert b'ORIGIN' not in raw
    assert 0x00001030 not in dimsecodec.decode_command_set(raw)


def test_int_like_status_is_stored_as_int():
    class FakeStatus:
        def __int__(self):
            return 0xB000

    msg = dimse.CMoveRSPMessage()
    msg.status = FakeStatus()
    assert msg.status == 0xB000 and type(msg.status) is int


def test_bad_property_values_raise_dimse_error():
    msg = dimse.CFindRSPMessage()
    with pytest.raises(DIMSEProcessingError, match='integer'):
        msg.status = 'pending'
    with pytest.raises(DIMSEProcessingError, match='not a tag'):
        msg.offending_element = 'NotAKeyword'


def test_data_set_sets_command_data_set_type():
    msg = dimse.CStoreRQMessage()
    msg.data_set = b'\x08\x00'
    assert msg.command_set.CommandDataSetType == dimse.DATASET_PRESENT != dimse.NO_DATASET
    assert msg.has_data_set
    msg.data_set = None
    assert msg.command_set.CommandDataSetType == dimse.NO_DATASET
    assert not msg.has_data_set


def test_data_set_keeps_a_received_present_value():
    body = (hand_element(0x0100, struct.pack('<H', 0x0001))
            + hand_element(0x0800, struct.pack('<H', 0x0000)))
    msg = dimse.decode_message(with_group_length(body))
    assert msg.has_data_set
    msg.data_set = b'\x00\x00'
    assert msg.command_set.CommandDataSetType == 0x0000


def test_set_length_computes_command_group_length():
    msg = dimse.CEchoRQMessage()
    msg.message_id = 1
    msg.sop_class_uid = '1.2.840.10008.1.1'
    assert msg.set_length() == 56
    assert msg.command_set.CommandGroupLength == 56


# -- the codec against bytes from elsewhere -----------------------------------------

def test_c_echo_rq_bytes_laid_out_by_hand_from_ps37():
    msg = dimse.CEchoRQMessage()
    msg.message_id = 1
    msg.sop_class_uid = '1.2.840.10008.1.1'  # 17 characters: padded with one NUL
    body = (hand_element(0x0002, b'1.2.840.10008.1.1\x00')
            + hand_element(0x0100, b'\x30\x00')
            + hand_element(0x0110, b'\x01\x00')
            + hand_element(0x0800, b'\x01\x01'))
    expected = hand_element(0x0000, struct.pack('<L', len(body))) + body
    assert dimsecodec.encode_command_set(msg.command_set) == expected
    assert len(body) == 56


def test_padding_of_odd_values():
    msg = dimse.CMoveRQMessage()
    msg.move_destination = 'ABC'
    msg.sop_class_uid = '1.2.3'
    raw = dimsecodec.encode_command_set(msg.command_set)
    assert hand_element(0x0600, b'ABC ') in raw
    assert hand_element(0x0002, b'1.2.3\x00') in raw
    decoded = dimse.decode_message(raw)
    assert decoded.move_destination == 'ABC'
    assert decoded.sop_class_uid == '1.2.3'


def test_command_set_written_by_pydicom_decodes_identically():
    msg = dimse.CStoreRQMessage()
    msg.message_id = 12
    msg.priority = dimse.PRIORITY_LOW
    msg.sop_class_uid = '1.2.840.10008.5.1.4.1.1.7'
    msg.affected_sop_instance_uid = '1.2.826.0.1.3680043.8.498.1'
    msg.move_originator_aet = 'MOVER'
    msg.move_originator_message_id = 4
    msg.data_set = b''
    msg.set_length()

    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = True
    write_dataset(fp, msg.command_set)
    written = fp.getvalue()

    decoded = dimsecodec.decode_command_set(written)
    assert [(e.tag, e.VR, e.value) for e in decoded] == \
        [(e.tag, e.VR, e.value) for e in msg.command_set]
    assert dimsecodec.encode_command_set(msg.command_set) == written


# Command sets captured on 127.0.0.1 from DCMTK 3.6.7 (echoscu, storescu, findscu,
# storescp) and from a pynetdicom 3.0.4 SCP, each one complete command set.
CAPTURED = {
    'dcmtk-echoscu-c-echo-rq': (
        '0000000004000000380000000000020012000000312e322e3834302e31303030382e312e3100'
        '000000010200000030000000100102000000010000000008020000000101',
        dimse.CEchoRQMessage,
        {'message_id': 1, 'sop_class_uid': '1.2.840.10008.1.1'}, False),
    'dcmtk-storescp-c-echo-rsp': (
        '0000000004000000420000000000020012000000312e322e3834302e31303030382e312e3100'
        '000000010200000030800000200102000000010000000008020000000101000000090200000000'
        '00',
        dimse.CEchoRSPMessage,
        {'message_id_being_responded_to': 1, 'status': 0}, False),
    'dcmtk-storescu-c-store-rq': (
        '000000000400000092000000000002001a000000312e322e3834302e31303030382e352e312e34'
        '2e312e312e3700000000010200000001000000100102000000010000000007020000000000000000'
        '080200000001000000001040000000312e322e3832362e302e312e333638303034332e382e3439'
        '382e3838383836363830393537333732343630313837393038313639323732363932323939393430',
        dimse.CStoreRQMessage,
        {'message_id': 1, 'priority': 0, 'sop_class_uid': '1.2.840.10008.5.1.4.1.1.7',
         'affected_sop_instance_uid':
             '1.2.826.0.1.3680043.8.498.88886680957372460187908169272692299940'}, True),
    'dcmtk-storescp-c-store-rsp': (
        '000000000400000092000000000002001a000000312e322e3834302e31303030382e352e312e34'
        '2e312e312e3700000000010200000001800000200102000000010000000008020000000101000000'
        '090200000000000000001040000000312e322e3832362e302e312e333638303034332e382e3439'
        '382e3838383836363830393537333732343630313837393038313639323732363932323939393430',
        dimse.CStoreRSPMessage,
        {'message_id_being_responded_to': 1, 'status': 0}, False),
    'dcmtk-findscu-c-find-rq': (
        '00000000040000004c000000000002001c000000312e322e3834302e31303030382e352e312e34'
        '2e312e322e312e310000000001020000002000000010010200000001000000000702000000000000'
        '000008020000000100',
        dimse.CFindRQMessage,
        {'message_id': 1, 'priority': 0,
         'sop_class_uid': '1.2.840.10008.5.1.4.1.2.1.1'}, True),
    'pynetdicom-c-find-rsp-pending': (
        '00000000040000004c000000000002001c000000312e322e3834302e31303030382e352e312e34'
        '2e312e322e312e310000000001020000002080000020010200000001000000000802000000010000'
        '0000090200000000ff',
        dimse.CFindRSPMessage,
        {'message_id_being_responded_to': 1, 'status': 0xFF00}, True),
    'pynetdicom-c-find-rsp-final': (
        '00000000040000004c000000000002001c000000312e322e3834302e31303030382e352e312e34'
        '2e312e322e312e310000000001020000002080000020010200000001000000000802000000010100'
        '0000090200000000' '00',
        dimse.CFindRSPMessage,
        {'message_id_being_responded_to': 1, 'status': 0}, False),
}


@pytest.mark.parametrize('name', list(CAPTURED))
def test_command_sets_from_dcmtk_and_pynetdicom(name):
    hexed, cls, fields, has_data = CAPTURED[name]
    raw = bytes.fromhex(hexed)
    msg = dimse.decode_message(raw)
    assert type(msg) is cls
    for prop, value in fields.items():
        assert getattr(msg, prop) == value, prop
    assert msg.has_data_set is has_data
    assert msg.command_set.CommandGroupLength == len(raw) - 12
    # Our encoder writes what the peers wrote, byte for byte.
    assert dimsecodec.encode_command_set(msg.command_set) == raw


def test_retired_and_unknown_group_0000_elements_are_tolerated():
    body = (hand_element(0x0001, struct.pack('<L', 99))           # Command Length to End
            + hand_element(0x0100, struct.pack('<H', 0x0030))
            + hand_element(0x0110, struct.pack('<H', 5))
            + hand_element(0x0800, struct.pack('<H', 0x0101))
            + hand_element(0x2222, b'\x01\x02\x03\x04')            # unknown: kept raw
            + hand_element(0x4000, b'DIALOG1 '))                   # Dialog Receiver, LT
    raw = with_group_length(body)
    msg = dimse.decode_message(raw)
    assert type(msg) is dimse.CEchoRQMessage and msg.message_id == 5
    assert msg.command_set[0x00000001].value == 99
    unknown = msg.command_set[0x00002222]
    assert (unknown.VR, unknown.value) == ('UN', b'\x01\x02\x03\x04')
    assert msg.command_set[0x00004000].value == 'DIALOG1'
    assert dimsecodec.encode_command_set(msg.command_set) == raw


@pytest.mark.parametrize('as_dataset', [False, True])
def test_multi_valued_and_empty_elements_round_trip(as_dataset):
    kept = (hand_element(0x0100, struct.pack('<H', 0x8120))
            + hand_element(0x0800, struct.pack('<H', 0x0101)))
    rest = (hand_element(0x0902, b'')
            + hand_element(0x1005, struct.pack('<4H', 0x0010, 0x0010, 0x0008, 0x0018)))
    raw = with_group_length(kept + hand_element(0x0900, b'') + rest)
    msg = dimse.decode_message(raw)
    assert msg.status is None
    assert msg.error_comment == ''
    assert list(msg.attribute_identifier_list) == [Tag(0x00100010), Tag(0x00080018)]
    # An empty number decodes to None, and None is never sent; empty text is.
    sent = (dimsecodec.encode_command_set(msg.command_set) if as_dataset
            else msg.encode_command_set())
    assert sent == with_group_length(kept + rest)


@pytest.mark.parametrize('name', list(CAPTURED) + ['multi'])
def test_decoded_values_have_the_types_pydicom_gives_them(name):
    if name == 'multi':
        msg = dimse.NGetRQMessage()
        msg.attribute_identifier_list = [0x00100010, 0x00100020]
        msg.sop_class_uid = '1.2.840.10008.5.1.1.1'
        raw = dimsecodec.encode_command_set(msg.command_set)
    else:
        raw = bytes.fromhex(CAPTURED[name][0])
    ours = dimsecodec.decode_command_set(raw)
    theirs = read_dataset(DicomBytesIO(raw), is_implicit_VR=True, is_little_endian=True)
    assert [(e.tag, e.VR, e.value, type(e.value)) for e in ours] == \
        [(e.tag, e.VR, e.value, type(e.value)) for e in theirs]


@pytest.mark.parametrize('raw, words', [
    (b'\x00\x00\x00\x00\x04', 'too few for an element header'),
    (hand_element(0x0100, b'\x30\x00')[:-1], 'declares 2 bytes but only 1 remain'),
    (struct.pack('<HHL', 0, 0x0100, 0xFFFFFFFF), 'declares 4294967295 bytes'),
    (struct.pack('<HHL', 0x0008, 0x0016, 2) + b'12', 'not in group 0000'),
    (hand_element(0x0100, b'\x30\x00') * 2, 'occurs twice'),
    (hand_element(0x0100, b'\x30'), 'not a multiple of 2'),
    (hand_element(0x0000, b'\x00\x00'), 'not a multiple of 4'),
    (hand_element(0x0901, b'\x10\x00'), 'not a multiple of 4'),
])
def test_decode_command_set_errors(raw, words):
    with pytest.raises(DIMSEProcessingError, match=words):
        dimsecodec.decode_command_set(raw)


@pytest.mark.parametrize('raw, words', [
    (with_group_length(hand_element(0x0100, b'\x34\x12')), 'unknown Command Field 0x1234'),
    (with_group_length(hand_element(0x0110, b'\x01\x00')), 'no Command Field'),
    (with_group_length(hand_element(0x0100, b'\x01\x00\x30\x00')), 'unknown Command Field'),
    (b'', 'no Command Field'),
])
def test_decode_message_errors(raw, words):
    with pytest.raises(DIMSEProcessingError, match=words):
        dimse.decode_message(raw)


@pytest.mark.filterwarnings('ignore:Invalid value')
def test_encode_command_set_errors():
    ds = Dataset()
    ds.CommandField = 0x0030
    ds.PatientName = 'DOE^JOHN'
    with pytest.raises(DIMSEProcessingError, match='group 0000 only'):
        dimsecodec.encode_command_set(ds)

    msg = dimse.CEchoRQMessage()
    msg.sop_class_uid = '1.2.\u00e9'
    with pytest.raises(DIMSEProcessingError, match='not ASCII'):
        dimsecodec.encode_command_set(msg.command_set)

    msg = dimse.CEchoRSPMessage()
    msg.command_set.add(DataElement(0x00000900, 'US', 70000))
    with pytest.raises(DIMSEProcessingError, match='does not fit'):
        dimsecodec.encode_command_set(msg.command_set)


# -- fragmentation and reassembly ---------------------------------------------------

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


def sizes_for(max_pdu_length):
    frag = dimse.fragment_length(max_pdu_length)
    big = 2 * frag + 2 if max_pdu_length == 0 else max(50_000, 40 * frag) + 6
    return [0, 1, 33, frag, 3 * frag, 3 * frag + 2, big]


CASES = [(m, s) for m in (0, 16, 100, 16384) for s in sizes_for(m)]


@pytest.mark.parametrize('max_pdu_length, size', CASES)
def test_fragmentation_and_reassembly_of_bytes(max_pdu_length, size):
    data = payload(size)
    msg = store_request(data)
    pdus = list(msg.iter_pdu_bytes(5, max_pdu_length))
    limit = max_pdu_length or dimse.MAX_FRAGMENT_LENGTH + 6
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
        pdus = list(msg.iter_pdu_bytes(7, max_pdu_length))
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
    pdvs = parse_pdus(store_request(Trickle(data)).iter_pdu_bytes(1, 100), 100)
    check_pdvs(pdvs, len(data))
    assert all(len(f) == 94 for _, c, f, _ in pdvs if c == 0x00)
    assert reassemble(pdvs).data_set == data


def split_pdus(stream):
    """Cut a byte stream of PDUs at their headers (PS3.8 9.3.1: type, reserved, length)."""
    pdus, offset = [], 0
    while offset < len(stream):
        length = struct.unpack_from('>L', stream, offset + 2)[0]
        pdus.append(stream[offset:offset + 6 + length])
        offset += 6 + length
    assert offset == len(stream)
    return pdus


@pytest.mark.parametrize('max_pdu_length', [0, 100, 16384])
@pytest.mark.parametrize('source', ['bytes', 'file'])
@pytest.mark.parametrize('size', [2, 4, 200])
@pytest.mark.parametrize('way', ['bytes', 'batches', 'encode'])
def test_data_set_starts_in_a_new_pdu(max_pdu_length, source, size, way):
    # GDCM-based peers hang when the command's last fragment and the data set share a
    # P-DATA-TF PDU; 0.9.8, DCMTK, pynetdicom and Orthanc never send that (API.md 7).
    data = payload(size)
    msg = store_request(io.BytesIO(data) if source == 'file' else data)
    if way == 'bytes':
        stream = b''.join(msg.iter_pdu_bytes(1, max_pdu_length))
    elif way == 'batches':
        stream = b''.join(bytes(b) for batch in msg.iter_pdu_batches(1, max_pdu_length)
                          for b in batch)
    else:
        stream = b''.join(p.encode() for p in msg.encode(1, max_pdu_length))
    pdus = split_pdus(stream)
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
    pdus = list(msg.iter_pdu_bytes(1, 0))
    raw = dimsecodec.encode_command_set(msg.command_set)
    assert pdus == [struct.pack('>BxLLBB', 4, len(raw) + 6, len(raw) + 2, 1, 3) + raw]
    assert reassemble(parse_pdus(pdus, 0)).data_set is None


def test_fragment_length():
    assert dimse.fragment_length(16384) == 16378
    assert dimse.fragment_length(17) == 10  # even, PS3.8 E.1
    assert dimse.fragment_length(8) == 2
    assert dimse.fragment_length(0) == dimse.fragment_length(None) == 4 * 1024 * 1024
    assert dimse.fragment_length(0xFFFFFFFF) == 4 * 1024 * 1024
    with pytest.raises(DIMSEProcessingError, match='no room for a fragment'):
        dimse.fragment_length(7)


def test_sending_errors():
    with pytest.raises(DIMSEProcessingError, match='presentation context ID'):
        list(store_request(b'').iter_pdu_bytes(0, 100))
    with pytest.raises(DIMSEProcessingError, match='bytes or a binary file'):
        list(store_request(Dataset()).iter_pdu_bytes(1, 100))

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buf):
            raise OSError('device gone')

    with pytest.raises(DIMSEProcessingError, match='device gone'):
        list(store_request(Broken()).iter_pdu_bytes(1, 100))
    with pytest.raises(DIMSEProcessingError, match='binary mode'):
        list(store_request(io.StringIO('text')).iter_pdu_bytes(1, 100))


def test_encode_yields_p_data_tf_pdus():
    pdu = pytest.importorskip('pynetdicom2.pdu')
    msg = store_request(payload(301))
    pdus = list(msg.encode(3, 100))
    assert all(isinstance(p, pdu.PDataTfPDU) for p in pdus)
    assert [p.encode() for p in pdus] == list(msg.iter_pdu_bytes(3, 100))
    first = pdus[0].data_value_items[0]
    assert first.context_id == 3 and first.data_value[0] == 0x01


# -- reassembly errors --------------------------------------------------------------

def command_bytes(msg):
    return dimsecodec.encode_command_set(msg.command_set)


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
        for context_id, control, fragment, _ in parse_pdus(msg.iter_pdu_bytes(1, 32), 32):
            result = assembler.feed(context_id, control, fragment)
            if result is not None:
                got.append(result)
    assert [(m.message_id, m.data_set) for m in got] == \
        [(i, payload(i * 11 + 1)) for i in range(1, 4)]


# -- memory stays bounded -----------------------------------------------------------

def test_sending_64_mib_of_bytes_keeps_memory_bounded():
    data = bytes(64 * 1024 * 1024)
    msg = store_request(data)
    tracemalloc.start()
    try:
        total = sum(len(p) for p in msg.iter_pdu_bytes(1, 16384))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > len(data)
    assert peak < 1024 * 1024


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
            for pdu_bytes in msg.iter_pdu_bytes(1, 16384):
                for context_id, control, fragment, _ in parse_pdus([pdu_bytes], 16384):
                    received = assembler.feed(context_id, control, fragment) or received
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received is not None and received.data_set is out
    assert target.stat().st_size == size
    assert peak < 1024 * 1024


# -- sending in batches ------------------------------------------------------------------

@pytest.mark.parametrize('max_pdu', [64, 4096, 16384, 0])
@pytest.mark.parametrize('source', ['bytes', 'file'])
def test_batches_carry_the_same_pdus_as_one_at_a_time(max_pdu, source, tmp_path):
    data = payload(3 * 1024 * 1024 + 7)
    path = tmp_path / 'data'
    path.write_bytes(data)

    def message():
        msg = store_request(data)
        if source == 'file':
            msg.data_set = open(path, 'rb')
        return msg

    one_by_one = b''.join(message().iter_pdu_bytes(1, max_pdu))
    msg = message()
    batches = [b''.join(bytes(b) for b in batch) for batch in msg.iter_pdu_batches(1, max_pdu)]
    assert b''.join(batches) == one_by_one
    # Every batch is whole P-DATA-TF PDUs, about a MiB of them.
    for batch in batches:
        offset = 0
        while offset < len(batch):
            pdu_type, length = struct.unpack_from('>BxL', batch, offset)
            assert pdu_type == 0x04
            offset += 6 + length
        assert offset == len(batch)
    if max_pdu == 16384:
        assert 3 <= len(batches) <= 6
