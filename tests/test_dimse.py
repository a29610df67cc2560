"""Tests of pynetdicom2.dimse: the message classes, their properties and command sets,
``decode_message``, and ``encode`` (the original API) over the P-DATA path."""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from pynetdicom2 import dimse, dimsecodec, dimsemessages, pdu
from pynetdicom2.exceptions import DIMSEProcessingError
from tests.test_dimsecodec import hand_element, with_group_length
from tests.test_fragmentation import parse_pdus, payload, pdus_of, reassemble, store_request

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


# -- the table and the classes ------------------------------------------------------

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


def test_properties_read_what_the_command_set_dataset_holds_now():
    msg = dimse.decode_message(store_request(b'').encode_command_set())
    ds = msg.command_set
    assert (msg.message_id, msg.move_originator_aet) == (3, None)
    ds.MessageID = 9                                  # changed through the Dataset
    del ds.AffectedSOPInstanceUID
    ds.MoveOriginatorApplicationEntityTitle = 'ELSEWHERE'
    # An element as pydicom reads it from a file: raw until Dataset converts it.
    ds[0x00000120] = RawDataElement(Tag(0x00000120), 'US', 2, b'\x05\x00', 0, True, True)
    assert (msg.message_id, msg.affected_sop_instance_uid) == (9, None)
    assert msg.move_originator_aet == 'ELSEWHERE'
    assert msg.message_id_being_responded_to == 5


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


@pytest.mark.parametrize('raw, words', [
    (with_group_length(hand_element(0x0100, b'\x34\x12')), 'unknown Command Field 0x1234'),
    (with_group_length(hand_element(0x0110, b'\x01\x00')), 'no Command Field'),
    (with_group_length(hand_element(0x0100, b'\x01\x00\x30\x00')), 'unknown Command Field'),
    (b'', 'no Command Field'),
])
def test_decode_message_errors(raw, words):
    with pytest.raises(DIMSEProcessingError, match=words):
        dimse.decode_message(raw)


# -- encode: the original API over the path the association sends by ----------------------

@pytest.mark.parametrize('max_pdu_length', [0, 100, 16384])
@pytest.mark.parametrize('source', ['none', 'bytes', 'file'])
def test_encode_yields_the_p_data_tf_pdus_that_are_sent(max_pdu_length, source):
    data = payload(301)
    msg = store_request({'none': None, 'bytes': data, 'file': io.BytesIO(data)}[source])
    pdus = list(msg.encode(3, max_pdu_length))
    assert all(isinstance(p, pdu.PDataTfPDU) and len(p.data_value_items) == 1 for p in pdus)
    first = pdus[0].data_value_items[0]
    assert first.context_id == 3 and first.data_value[0] & dimse.COMMAND_FRAGMENT
    if source == 'file':
        msg.data_set.seek(0)
    assert [p.encode() for p in pdus] == pdus_of(msg, 3, max_pdu_length)
    received = reassemble(parse_pdus([p.encode() for p in pdus], max_pdu_length))
    assert received.data_set == (None if source == 'none' else data)
