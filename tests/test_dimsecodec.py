"""Tests of pynetdicom2.dimsecodec: command sets to bytes and back, against the PS3.7
layout, pydicom's own reading and writing, and bytes captured from DCMTK and pynetdicom."""

from __future__ import annotations

import struct

import pytest
from pydicom import config
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from pynetdicom2 import dimse, dimsecodec
from pynetdicom2.exceptions import DIMSEProcessingError
from pynetdicom2.services.common import response_to


def hand_element(element: int, value: bytes) -> bytes:
    """A command element laid out as PS3.7 6.3.1 says: tag, 4-byte length, value."""
    return struct.pack('<HHL', 0x0000, element, len(value)) + value


def with_group_length(body: bytes) -> bytes:
    return hand_element(0x0000, struct.pack('<L', len(body))) + body


def test_command_element_table_matches_pydicom_dictionary():
    group0 = {tag & 0xFFFF: (entry[0], entry[4])
              for tag, entry in DicomDictionary.items() if tag >> 16 == 0}
    assert dimsecodec.COMMAND_ELEMENTS == group0


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


def pending_find_rsp(message_id: int = 5) -> dimse.CFindRSPMessage:
    rsp = dimse.CFindRSPMessage()
    rsp.message_id_being_responded_to = message_id
    rsp.affected_sop_class_uid = '1.2.840.10008.5.1.4.1.2.2.1'
    rsp.status = 0xFF00
    rsp.data_set = b'\x08\x00\x52\x00\x06\x00STUDY '
    return rsp


def test_repeated_pending_responses_decode_to_messages_of_their_own():
    # A C-FIND's pending responses repeat one command set: each decodes to a message
    # whose command set changes without touching the others'.
    raw = pending_find_rsp().encode_command_set()
    decoded = [dimse.decode_message(raw) for _ in range(3)]
    for changed in decoded:
        changed.status = 0x0000
        changed.error_comment = 'changed'
        for msg in (dimse.decode_message(raw), dimse.decode_message(bytearray(raw))):
            assert (msg.status, msg.error_comment, msg.message_id_being_responded_to) \
                == (0xFF00, None, 5)
            assert type(msg.affected_sop_class_uid) is UID
    assert [msg.status for msg in decoded] == [0x0000] * 3


def test_repeated_pending_responses_encode_what_they_hold():
    for message_id, status in ((5, 0xFF00), (5, 0xFF00), (6, 0xFF01), (5, 0xFF00),
                               (6, 0xFF01), (6, 0xFF00)):
        rsp = pending_find_rsp(message_id)
        rsp.status = status
        # Laid out by hand (PS3.7 9.3.2.2), ascending tags, the UID padded with NUL.
        assert rsp.encode_command_set() == with_group_length(
            hand_element(0x0002, b'1.2.840.10008.5.1.4.1.2.2.1\x00')
            + hand_element(0x0100, struct.pack('<H', 0x8020))
            + hand_element(0x0120, struct.pack('<H', message_id))
            + hand_element(0x0800, struct.pack('<H', 0x0001))
            + hand_element(0x0900, struct.pack('<H', status)))


def test_many_different_uids_each_decode_to_their_own_value():
    # Decoded UIDs are kept by their bytes, within a bound a peer's made-up UIDs pass.
    for n in range(1000):
        msg = dimse.CStoreRQMessage()
        msg.message_id = 1
        msg.affected_sop_class_uid = '1.2.840.10008.5.1.4.1.1.7'
        msg.affected_sop_instance_uid = f'1.2.3.{n}' + ('\x00' if n % 2 else ' ')
        decoded = dimse.decode_message(msg.encode_command_set())
        assert decoded.affected_sop_instance_uid == f'1.2.3.{n}'
        assert type(decoded.affected_sop_instance_uid) is UID


def _constructed(elements):
    """The Dataset pydicom's own constructors make of ``{element number: value}``."""
    return Dataset({Tag(0x0000, element): DataElement(
        element, dimsecodec.COMMAND_ELEMENTS.get(element, ('UN',))[0], value,
        already_converted=True) for element, value in elements.items()})


@pytest.mark.parametrize('mode, future', [(None, None), (0, None), (1, None), (2, None),
                                          (None, True), (None, False)])
def test_dataset_from_makes_what_pydicoms_constructors_make(mode, future):
    elements = {element: ('1.2.3' if vr == 'UI' else 7 if vr in ('US', 'UL') else 'X')
                for element, (vr, _) in dimsecodec.COMMAND_ELEMENTS.items()}
    elements[0x2222] = b'\x01\x02'  # not a command element
    saved = config.settings.reading_validation_mode, config._use_future
    try:
        if mode is not None:
            config.settings.reading_validation_mode = mode
        if future is not None:  # pydicom's switch to its next major version's ways
            config._use_future = future
        for _ in range(2):  # the first call and the ones after it
            ours, theirs = dimsecodec.dataset_from(elements), _constructed(elements)
            assert type(ours) is Dataset and vars(ours) == vars(theirs)
            for tag in theirs.keys():
                assert type(ours[tag]) is DataElement
                assert vars(ours[tag]) == vars(theirs[tag])
    finally:
        config.settings.reading_validation_mode, config._use_future = saved


def test_dataset_from_uses_the_constructors_when_pydicom_objects_cannot_be_copied(
        monkeypatch):
    # A pydicom whose DataElement or Dataset had __slots__ (no __dict__ to copy).
    monkeypatch.setattr(dimsecodec, '_COPYABLE', False)
    elements = {0x0002: '1.2.3', 0x0100: 1, 0x0110: 5, 0x2222: b'\x01\x02'}
    ours, theirs = dimsecodec.dataset_from(elements), _constructed(elements)
    assert vars(ours) == vars(theirs)
    assert [vars(element) for element in ours] == [vars(element) for element in theirs]


def test_datasets_from_dataset_from_share_nothing_changeable():
    first = dimsecodec.dataset_from({0x0100: 1, 0x0110: 5})
    second = dimsecodec.dataset_from({0x0100: 1, 0x0110: 6})
    first.MessageID = 9
    first.ErrorComment = 'only here'
    first.private_block(0x0009, 'CREATOR', create=True)
    assert second.MessageID == 6 and 'ErrorComment' not in second
    for name, value in vars(second).items():
        if isinstance(value, (dict, list, set)):
            assert value is not vars(first)[name], name
    assert second.private_block(0x0009, 'CREATOR', create=True).block_start == 0x1000


def _general_way(elements):
    """What encode_elements makes of ``elements`` the element-by-element way (a Command
    Group Length among them takes it off the one-piece response path; it is recomputed)."""
    try:
        return dimsecodec.encode_elements({**elements, 0x0000: 0})
    except DIMSEProcessingError as exc:
        return str(exc)


@pytest.mark.parametrize('sop_class, instance, numbers', [
    ('1.2.840.10008.5.1.4.1.1.2', '1.2.3.4', (0x8001, 7, 0x0101, 0x0000)),
    (UID('1.2.840.10008.5.1.4.1.1.7'), UID('1.2.3.45'), (0x8001, 0xFFFF, 0x0101, 0xA700)),
    ('1.2.3', '', (0x8120, 0, 0x0001, 0xFF00)),
    ('1.2', '1.2.3', (0x8001, 0x10000, 0x0101, 0)),          # Message ID out of range
    ('1.2', '1.2.3', (0x8001, -1, 0x0101, 0)),
    ('1.2.é', '1.2.3', (0x8001, 1, 0x0101, 0)),              # not ASCII
    ('1.2', '1.2.3', (0x8001, 1, 0x0101, 0xC000)),
    (None, '1.2.3', (0x8001, 1, 0x0101, 0)),
    ('1.2', '1.2.3', (0x8001, 1, 0x0101, [0, 1])),
    ('1.2', '1.2.3', (0x8001, True, 0x0101, 0)),
])
def test_response_shaped_command_sets_are_the_bytes_of_the_general_way(sop_class, instance,
                                                                        numbers):
    field, message_id, data_set_type, status = numbers
    elements = {0x0002: sop_class, 0x0100: field, 0x0120: message_id,
                0x0800: data_set_type, 0x0900: status, 0x1000: instance}
    expected = _general_way(elements)
    try:
        got = dimsecodec.encode_elements(elements)
    except DIMSEProcessingError as exc:
        got = str(exc)
    assert got == expected
    if isinstance(expected, bytes):  # and pydicom reads back what was given
        ours = dimsecodec.decode_command_set(got)
        assert ours.CommandGroupLength == len(got) - 12
        assert ours.MessageIDBeingRespondedTo == message_id
        assert ours.AffectedSOPInstanceUID == instance


def test_a_c_store_response_reads_back_as_sent():
    request = dimse.decode_message(dimsecodec.encode_elements({
        0x0002: '1.2.840.10008.5.1.4.1.1.2', 0x0100: 0x0001, 0x0110: 12, 0x0700: 0,
        0x0800: 0x0001, 0x1000: '1.2.826.0.1.3680043.8.498.1'}))
    raw = response_to(request, dimse.CStoreRSPMessage, 0xB000).encode_command_set()
    theirs = read_dataset(DicomBytesIO(raw), is_implicit_VR=True, is_little_endian=True)
    assert [(e.tag, e.value) for e in theirs] == [
        (0x00000000, len(raw) - 12), (0x00000002, '1.2.840.10008.5.1.4.1.1.2'),
        (0x00000100, 0x8001), (0x00000120, 12), (0x00000800, 0x0101), (0x00000900, 0xB000),
        (0x00001000, '1.2.826.0.1.3680043.8.498.1')]
