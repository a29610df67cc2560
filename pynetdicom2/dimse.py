"""DIMSE messages (PS3.7 9.3 and 10.3) and how they travel in P-DATA (PS3.8 Annex E).

One class per message over a pydicom command set; a hand-written codec for command sets
(always implicit VR little endian, PS3.7 6.3.1); fragmentation of a message into P-DATA-TF
PDUs for the peer's maximum length, and reassembly of received fragments into messages.
No sockets and no associations here: bytes in, bytes out.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple, Union

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from pynetdicom2 import pdu
from pynetdicom2.exceptions import DIMSEProcessingError

logger = logging.getLogger(__name__)

__all__ = [
    'NO_DATASET', 'DATASET_PRESENT', 'PRIORITY_LOW', 'PRIORITY_MEDIUM', 'PRIORITY_HIGH',
    'COMMAND_FRAGMENT', 'LAST_FRAGMENT', 'P_DATA_TF_PDU_TYPE',
    'MAX_FRAGMENT_LENGTH', 'MAX_COMMAND_SET_LENGTH', 'COMMAND_ELEMENTS',
    'DIMSEMessage', 'DIMSERequestMessage', 'DIMSEResponseMessage',
    'CEchoRQMessage', 'CEchoRSPMessage', 'CStoreRQMessage', 'CStoreRSPMessage',
    'CFindRQMessage', 'CFindRSPMessage', 'CGetRQMessage', 'CGetRSPMessage',
    'CMoveRQMessage', 'CMoveRSPMessage', 'CCancelRQMessage',
    'NEventReportRQMessage', 'NEventReportRSPMessage', 'NGetRQMessage', 'NGetRSPMessage',
    'NSetRQMessage', 'NSetRSPMessage', 'NActionRQMessage', 'NActionRSPMessage',
    'NCreateRQMessage', 'NCreateRSPMessage', 'NDeleteRQMessage', 'NDeleteRSPMessage',
    'MESSAGE_TYPE', 'encode_command_set', 'decode_command_set', 'decode_message',
    'fragment_length', 'MessageAssembler',
]

# Command Data Set Type (0000,0800), PS3.7 E.1: 0101H means "no data set"; any other
# value means one follows. DCMTK and pynetdicom both send 0001H, so do we.
NO_DATASET = 0x0101
DATASET_PRESENT = 0x0001

# Priority (0000,0700), PS3.7 E.1.
PRIORITY_LOW = 0x0002
PRIORITY_MEDIUM = 0x0000
PRIORITY_HIGH = 0x0001

# Message Control Header, PS3.8 E.2: bit 0 command (1) / data (0), bit 1 last fragment.
# Bits 2-7 are sent as 0 and never checked by the receiver.
COMMAND_FRAGMENT = 0x01
LAST_FRAGMENT = 0x02

P_DATA_TF_PDU_TYPE = 0x04

#: Largest fragment we put in one PDV, even when the peer sets no limit (Maximum Length
#: Received 0, PS3.8 D.1) or a huge one: a big data set then streams in 4 MiB pieces.
MAX_FRAGMENT_LENGTH = 4 * 1024 * 1024
# Fragments sent by one scatter/gather call, and the size of a file read.
_SEND_BATCH_BYTES = 1024 * 1024

#: Largest command set the assembler accepts. Real ones are a few hundred bytes; the
#: bound keeps a hostile peer from growing one without end.
MAX_COMMAND_SET_LENGTH = 1024 * 1024

# PDU header (PS3.8 9.3.5: type, reserved, length) and PDV item header (PS3.8 9.3.5.1:
# item length, presentation context ID, message control header).
_PDU_HEADER = struct.Struct('>BxL')
_PDV_HEADER = struct.Struct('>LBB')
_PDU_AND_PDV_HEADER = struct.Struct('>BxLLBB')
_PDV_HEADER_LENGTH = _PDV_HEADER.size  # 4-byte length + context ID + control header

# Command element header in implicit VR little endian (PS3.5 7.1.3): group, element,
# 32-bit value length.
_ELEMENT_HEADER = struct.Struct('<HHL')
_US_ELEMENT = struct.Struct('<HHLH')
_UL_ELEMENT = struct.Struct('<HHLL')

#: Every command element of PS3.7 Annex E (E.1 and the retired ones of E.2), by element
#: number (the group is always 0000): element -> (VR, keyword).
COMMAND_ELEMENTS = {
    0x0000: ('UL', 'CommandGroupLength'),
    0x0001: ('UL', 'CommandLengthToEnd'),
    0x0002: ('UI', 'AffectedSOPClassUID'),
    0x0003: ('UI', 'RequestedSOPClassUID'),
    0x0010: ('SH', 'CommandRecognitionCode'),
    0x0100: ('US', 'CommandField'),
    0x0110: ('US', 'MessageID'),
    0x0120: ('US', 'MessageIDBeingRespondedTo'),
    0x0200: ('AE', 'Initiator'),
    0x0300: ('AE', 'Receiver'),
    0x0400: ('AE', 'FindLocation'),
    0x0600: ('AE', 'MoveDestination'),
    0x0700: ('US', 'Priority'),
    0x0800: ('US', 'CommandDataSetType'),
    0x0850: ('US', 'NumberOfMatches'),
    0x0860: ('US', 'ResponseSequenceNumber'),
    0x0900: ('US', 'Status'),
    0x0901: ('AT', 'OffendingElement'),
    0x0902: ('LO', 'ErrorComment'),
    0x0903: ('US', 'ErrorID'),
    0x1000: ('UI', 'AffectedSOPInstanceUID'),
    0x1001: ('UI', 'RequestedSOPInstanceUID'),
    0x1002: ('US', 'EventTypeID'),
    0x1005: ('AT', 'AttributeIdentifierList'),
    0x1008: ('US', 'ActionTypeID'),
    0x1020: ('US', 'NumberOfRemainingSuboperations'),
    0x1021: ('US', 'NumberOfCompletedSuboperations'),
    0x1022: ('US', 'NumberOfFailedSuboperations'),
    0x1023: ('US', 'NumberOfWarningSuboperations'),
    0x1030: ('AE', 'MoveOriginatorApplicationEntityTitle'),
    0x1031: ('US', 'MoveOriginatorMessageID'),
    0x4000: ('LT', 'DialogReceiver'),
    0x4010: ('LT', 'TerminalType'),
    0x5010: ('SH', 'MessageSetID'),
    0x5020: ('SH', 'EndMessageID'),
    0x5110: ('LT', 'DisplayFormat'),
    0x5120: ('LT', 'PagePositionID'),
    0x5130: ('CS', 'TextFormatID'),
    0x5140: ('CS', 'NormalReverse'),
    0x5150: ('CS', 'AddGrayScale'),
    0x5160: ('CS', 'Borders'),
    0x5170: ('IS', 'Copies'),
    0x5180: ('CS', 'CommandMagnificationType'),
    0x5190: ('CS', 'Erase'),
    0x51A0: ('CS', 'Print'),
    0x51B0: ('US', 'Overlays'),
}

# VRs whose values are text padded with a trailing space (PS3.5 6.2); UI pads with NUL.
_TEXT_VRS = frozenset(('AE', 'SH', 'LO', 'LT', 'CS', 'IS', 'DS', 'ST', 'UT', 'PN', 'DA',
                       'TM', 'DT', 'AS', 'UC', 'UR'))
_RAW_VRS = frozenset(('OB', 'OW', 'UN', 'OD', 'OF', 'OL', 'OV'))

_COMMAND_GROUP_LENGTH = 0x00000000
_COMMAND_FIELD = 0x00000100
_COMMAND_DATA_SET_TYPE = 0x00000800


# -- the command-set codec ---------------------------------------------------------
#
# A command set travels as ``{element number: value}`` (the group is always 0000): the
# codec reads and writes that dict directly, with values of the types pydicom gives
# elements of their VR (int, UID, str, BaseTag, MultiValue, bytes for unknown ones), so
# a pydicom Dataset is built only when someone asks for one.

# VR of each command element, by element number; anything else is kept as raw UN bytes.
_VR_OF = {element: vr for element, (vr, _) in COMMAND_ELEMENTS.items()}
# Element number of each command element, by keyword (for ``command_fields``).
_ELEMENT_OF = {keyword: element for element, (_, keyword) in COMMAND_ELEMENTS.items()}

# Values are trusted as they are: a peer's odd UID must neither warn nor raise
# (pydicom's validation does both, depending on its settings).
_NO_VALIDATION = pydicom_config.IGNORE

_US_VALUE = struct.Struct('<H')
_UL_VALUE = struct.Struct('<L')


def _is_multi(value: Any) -> bool:
    return isinstance(value, (list, tuple, MultiValue))


def _encode_text(value: Any, vr: str, element: int) -> bytes:
    if _is_multi(value):
        # Multiple values are separated by backslash (PS3.5 6.4).
        value = '\\'.join(str(v) for v in value)
    text = str(value)
    try:
        raw = text.encode('ascii')
    except UnicodeEncodeError:
        if vr in ('UI', 'AE'):
            raise DIMSEProcessingError(
                f'command element (0000,{element:04X}) {vr} {text!r} is not ASCII; the '
                f'command set uses the default character repertoire (PS3.7 6.3.1)') from None
        # Human-readable text (Error Comment): keep it, rather than fail the message.
        raw = text.encode('ascii', 'replace')
    if len(raw) % 2:
        # PS3.5 6.2: UI values are padded with NUL, other strings with a space.
        raw += b'\x00' if vr == 'UI' else b' '
    return raw


def _encode_tags(value: Any, element: int) -> bytes:
    tags = _to_tags(value, element)
    values = tags if isinstance(tags, list) else [tags]
    return b''.join(struct.pack('<HH', tag >> 16, tag & 0xFFFF) for tag in values)


def _to_tags(value: Any, element: int) -> Any:
    """One tag, or a list of tags, from ints, ``(group, element)`` pairs or keywords."""
    try:
        if _is_multi(value) and not _is_tag_pair(value):
            return [Tag(item) for item in value]
        return Tag(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DIMSEProcessingError(
            f'command element (0000,{element:04X}) AT: {value!r} is not a tag or a list '
            f'of tags') from exc


def _is_tag_pair(value: Any) -> bool:
    """True for ``(group, element)``, a single tag written as a pair of ints."""
    return (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, BaseTag) for v in value))


def _encode_numbers(value: Any, fmt: str, vr: str, element: int) -> bytes:
    values = list(value) if _is_multi(value) else [value]
    try:
        return struct.pack(f'<{len(values)}{fmt}', *(int(v) for v in values))
    except (struct.error, TypeError, ValueError) as exc:
        raise DIMSEProcessingError(
            f'command element (0000,{element:04X}) {vr}: {value!r} does not fit') from exc


def _encode_value(element: int, vr: str, value: Any) -> bytes:
    if value is None or value == '' or (_is_multi(value) and len(value) == 0):
        return b''
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Raw bytes (an unknown element kept from a decoded command set) go as they are.
        raw = bytes(value)
        return raw + b'\x00' if len(raw) % 2 else raw
    if vr == 'US':
        return _encode_numbers(value, 'H', vr, element)
    if vr == 'UL':
        return _encode_numbers(value, 'L', vr, element)
    if vr == 'AT':
        return _encode_tags(value, element)
    if vr == 'UI' or vr in _TEXT_VRS:
        return _encode_text(value, vr, element)
    raise DIMSEProcessingError(
        f'command element (0000,{element:04X}) has VR {vr} with a {type(value).__name__} '
        f'value; only bytes can be sent for it')


def _encode_elements(elements: Dict[int, Any], vrs: Optional[Dict[int, str]] = None
                     ) -> bytes:
    """Encode ``{element number: value}`` as a command set, in one pass.

    ``vrs`` gives the VR of elements the PS3.7 table does not know (default UN).
    Command Group Length (0000,0000) is computed from what follows.
    """
    parts: List[bytes] = []
    append = parts.append
    for element in sorted(elements):
        if element == 0x0000:
            continue
        value = elements[element]
        vr = _VR_OF.get(element)
        if vr is None:
            vr = vrs.get(element, 'UN') if vrs else 'UN'
        kind = type(value)
        # The common elements take the short path: one struct call, or one encode.
        if vr == 'US' and kind is int and 0 <= value <= 0xFFFF:
            append(_US_ELEMENT.pack(0, element, 2, value))
            continue
        if vr == 'UI' and (kind is UID or kind is str) and value.isascii():
            raw = value.encode('ascii')
            if len(raw) % 2:
                raw += b'\x00'  # PS3.5 6.2: UI values are padded with NUL
        elif value is None:
            continue  # not sent (see ``encode_command_set``)
        else:
            raw = _encode_value(element, vr, value)
        append(_ELEMENT_HEADER.pack(0, element, len(raw)))
        append(raw)
    body = b''.join(parts)
    return _UL_ELEMENT.pack(0, 0, 4, len(body)) + body


def encode_command_set(ds: Dataset) -> bytes:
    """Encode a command set in implicit VR little endian (PS3.7 6.3.1), in one pass.

    Elements go in ascending tag order; Command Group Length (0000,0000) is computed
    from what follows, whatever the data set holds. Only group 0000 is allowed. An
    element whose value is None is not sent: a fresh message holds every field of its
    ``command_fields`` with None until it is set, and an empty command element where
    a peer expects a value, or none at all, is what 0.9.8 itself avoided sending
    (its C-STORE SCU deleted the unset Move Originator fields). An empty string is
    sent as a zero-length element.
    """
    elements: Dict[int, Any] = {}
    vrs: Dict[int, str] = {}
    for elem in ds:
        tag = elem.tag
        if tag >> 16:
            raise DIMSEProcessingError(
                f'{elem.tag} ({elem.keyword or "unknown"}) cannot be in a command set: '
                f'command elements are group 0000 only (PS3.7 6.3.1)')
        element = tag & 0xFFFF
        elements[element] = elem.value
        if element not in _VR_OF:
            vrs[element] = elem.VR
    return _encode_elements(elements, vrs)


def _decode_numbers(value: bytes, fmt: str, size: int, vr: str, element: int,
                    offset: int) -> Any:
    if len(value) % size:
        raise DIMSEProcessingError(
            f'command set: element (0000,{element:04X}) {vr} at offset {offset} has length '
            f'{len(value)}, not a multiple of {size}')
    count = len(value) // size
    if count == 0:
        return None
    numbers = struct.unpack(f'<{count}{fmt}', value)
    return numbers[0] if count == 1 else MultiValue(int, numbers)


def _decode_value(element: int, vr: str, value: bytes, offset: int) -> Any:
    if vr == 'US':
        return _decode_numbers(value, 'H', 2, vr, element, offset)
    if vr == 'UL':
        return _decode_numbers(value, 'L', 4, vr, element, offset)
    if vr == 'AT':
        if len(value) % 4:
            raise DIMSEProcessingError(
                f'command set: element (0000,{element:04X}) AT at offset {offset} has '
                f'length {len(value)}, not a multiple of 4')
        if not value:
            return None
        numbers = struct.unpack(f'<{len(value) // 2}H', value)
        tags = [Tag(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]
        return tags[0] if len(tags) == 1 else MultiValue(Tag, tags)
    if vr in _RAW_VRS:
        return bytes(value)
    text = value.decode('ascii', 'replace')
    if vr == 'UI':
        # DCMTK pads UIDs with NUL; some peers pad with space.
        return UID(text.rstrip('\x00 '), _NO_VALIDATION)
    if vr in ('AE', 'SH', 'LO', 'CS', 'IS', 'DS'):
        # Leading and trailing spaces are not significant here (PS3.5 6.2).
        return text.strip(' \x00')
    return text.rstrip(' \x00')


def _decode_elements(raw: Union[bytes, bytearray, memoryview]) -> Dict[int, Any]:
    """Decode a command set into ``{element number: value}``; see ``decode_command_set``."""
    if type(raw) is not bytes:
        raw = memoryview(raw).cast('B').tobytes()
    total = len(raw)
    elements: Dict[int, Any] = {}
    offset = 0
    while offset < total:
        if total - offset < 8:
            raise DIMSEProcessingError(
                f'command set: {total - offset} byte(s) left at offset {offset}, too few for '
                f'an element header (8 bytes)')
        group, element, length = _ELEMENT_HEADER.unpack_from(raw, offset)
        if group != 0x0000:
            raise DIMSEProcessingError(
                f'command set: element ({group:04X},{element:04X}) at offset {offset} is '
                f'not in group 0000 (PS3.7 6.3.1 allows command elements only)')
        start = offset + 8
        end = start + length
        if end > total:
            raise DIMSEProcessingError(
                f'command set: element (0000,{element:04X}) at offset {offset} declares '
                f'{length} bytes but only {total - start} remain')
        if element in elements:
            raise DIMSEProcessingError(
                f'command set: element (0000,{element:04X}) occurs twice (offset {offset}); '
                f'PS3.7 6.3.1 allows each at most once')
        vr = _VR_OF.get(element, 'UN')
        # The common elements take the short path; values get pydicom's type for their
        # VR without pydicom's conversion (several times slower, and it would warn about
        # a peer's odd values).
        if vr == 'US' and length == 2:
            value = _US_VALUE.unpack_from(raw, start)[0]
        elif vr == 'UL' and length == 4:
            value = _UL_VALUE.unpack_from(raw, start)[0]
        elif vr == 'UI':
            value = UID(raw[start:end].decode('ascii', 'replace').rstrip('\x00 '),
                        _NO_VALIDATION)
        else:
            value = _decode_value(element, vr, raw[start:end], offset)
        elements[element] = value
        offset = end
    return elements


def _dataset_from(elements: Dict[int, Any]) -> Dataset:
    """A pydicom Dataset holding ``{element number: value}`` as group-0000 elements."""
    return Dataset({BaseTag(element): DataElement(element, _VR_OF.get(element, 'UN'), value,
                                                  already_converted=True)
                    for element, value in elements.items()})


def decode_command_set(raw: Union[bytes, bytearray, memoryview]) -> Dataset:
    """Decode an implicit VR little endian command set (PS3.7 6.3.1) into a Dataset.

    Every element length is checked against what remains; an element outside group 0000
    or a repeated tag is an error; an unknown group-0000 element is kept as raw ``UN``
    bytes. Any problem raises ``DIMSEProcessingError`` saying where.
    """
    return _dataset_from(_decode_elements(raw))


def _command_value(element: int, vr: str, value: Any) -> Any:
    """``value`` as a command element holds it: the type pydicom gives its VR."""
    if vr == 'US' or vr == 'UL':
        if type(value) is int:
            return value
        try:
            # Status objects and other int-likes are stored as plain ints.
            if _is_multi(value):
                return MultiValue(int, [int(v) for v in value])
            return int(value)
        except (TypeError, ValueError) as exc:
            raise DIMSEProcessingError(
                f'command element (0000,{element:04X}) {vr} needs an integer, '
                f'got {value!r}') from exc
    if vr == 'UI':
        if type(value) is UID or not isinstance(value, str):
            return value
        return UID(value, _NO_VALIDATION)
    if vr == 'AT':
        tags = _to_tags(value, element)
        return MultiValue(Tag, tags) if isinstance(tags, list) else tags
    if isinstance(value, (list, tuple)):
        return MultiValue(str, value)
    return value


# -- the messages -------------------------------------------------------------------

def _command_property(element: int, doc: str) -> property:
    """A property reading command element (0000,element): None when absent.

    Setting None clears it: it is not sent.
    """
    vr = _VR_OF[element]

    def getter(self: DIMSEMessage) -> Any:
        return self._get_element(element)

    def setter(self: DIMSEMessage, value: Any) -> None:
        self._set_element(element, vr, value)

    return property(getter, setter, doc=doc)


class DIMSEMessage:
    """A DIMSE message: a command set (``command_set``) and an optional data set.

    ``data_set`` is None, bytes, or a binary file positioned at the data set's start
    (a received message whose data set went to a sink file holds that file, positioned
    after its last byte). Every class has every element property (``message_id``,
    ``status``, ...); one the message does not carry reads None, and ``command_fields``
    says which ones the standard gives it. ``context_id`` is the presentation context
    a received message arrived on (set by ``MessageAssembler``).

    The command elements live in a plain ``{element number: value}`` dict, which the
    codec reads and writes directly; ``command_set`` builds a pydicom Dataset from it
    on first use, and from then on that Dataset is the command set: the properties
    read and write it, and changes made to it are sent.

    A message made here (not decoded) shows every name of ``command_fields`` in its
    ``command_set``, None until set (as 0.9.8 does, so
    ``msg.command_set.AffectedSOPInstanceUID`` reads None on a fresh message); an
    element holding None is not sent. A decoded message's ``command_set`` holds what
    the peer sent, and nothing else.
    """

    #: Command Field (0000,0100) of this message, PS3.7 E.1.
    command_field: Optional[int] = None
    #: Keywords of the command elements this message may carry (PS3.7 9.3 and 10.3
    #: tables, and the status-related elements of PS3.7 Annex C for responses).
    command_fields: List[str] = []
    # Element that ``sop_class_uid`` reads: Affected SOP Class UID (0000,0002), except
    # for the N-GET, N-SET, N-ACTION and N-DELETE requests, which name the Requested
    # SOP Class UID (0000,0003) instead (PS3.7 10.3.2, 10.3.3, 10.3.4, 10.3.6).
    _sop_class_element = 0x0002
    #: The ``OSError`` that kept a received data set from being stored (a full disk):
    #: ``data_set`` is then None though a data set was sent. None otherwise.
    data_set_error: Optional[OSError] = None
    _fresh = False

    def __init__(self, command_set: Optional[Dataset] = None) -> None:
        self.context_id: Optional[int] = None
        self._data_set: Any = None
        # Exactly one of the two holds the command set: the dict until ``command_set``
        # is first read, the Dataset after.
        self._elements: Optional[Dict[int, Any]] = None
        self._command_set: Optional[Dataset] = command_set
        # A fresh message's Dataset gets every field of ``command_fields``, once built.
        self._fresh = command_set is None
        if command_set is None:
            self._elements = {_COMMAND_FIELD: self.command_field,
                              _COMMAND_DATA_SET_TYPE: NO_DATASET}

    @classmethod
    def _from_elements(cls, elements: Dict[int, Any]) -> DIMSEMessage:
        """A message over a decoded ``{element number: value}`` dict, taken as it is."""
        msg = cls.__new__(cls)
        msg.context_id = None
        msg._data_set = None
        msg._elements = elements
        msg._command_set = None
        msg._fresh = False
        return msg

    @property
    def command_set(self) -> Dataset:
        """The command set as a pydicom Dataset (group 0000), to read or change.

        Built on first use; from then on it is what the properties read and write and
        what is sent.
        """
        ds = self._command_set
        if ds is None:
            elements = self._elements or {}
            if self._fresh:
                elements = {**{_ELEMENT_OF[name]: None for name in self.command_fields},
                            **elements}
            ds = self._command_set = _dataset_from(elements)
            self._elements = None
        return ds

    @command_set.setter
    def command_set(self, ds: Dataset) -> None:
        self._command_set = ds
        self._elements = None

    def _get_element(self, element: int) -> Any:
        elements = self._elements
        if elements is not None:
            return elements.get(element)
        elem = self._command_set.get(element)
        return None if elem is None else elem.value

    def _set_element(self, element: int, vr: str, value: Any) -> None:
        if value is not None:
            value = _command_value(element, vr, value)
        elements = self._elements
        if elements is not None:
            if value is None:
                elements.pop(element, None)
            else:
                elements[element] = value
            return
        # None stays in the Dataset (the name keeps existing, as in 0.9.8) and is not sent.
        self._command_set.add(DataElement(element, vr, value, already_converted=True))

    # Elements common to many messages (PS3.7 E.1).
    message_id = _command_property(0x0110, 'Message ID (0000,0110).')
    message_id_being_responded_to = _command_property(
        0x0120, 'Message ID Being Responded To (0000,0120).')
    affected_sop_class_uid = _command_property(0x0002, 'Affected SOP Class UID (0000,0002).')
    requested_sop_class_uid = _command_property(0x0003, 'Requested SOP Class UID (0000,0003).')
    status = _command_property(0x0900, 'Status (0000,0900).')
    offending_element = _command_property(0x0901, 'Offending Element (0000,0901), AT.')
    error_comment = _command_property(0x0902, 'Error Comment (0000,0902).')
    error_id = _command_property(0x0903, 'Error ID (0000,0903).')
    priority = _command_property(0x0700, 'Priority (0000,0700): PRIORITY_LOW/MEDIUM/HIGH.')
    affected_sop_instance_uid = _command_property(
        0x1000, 'Affected SOP Instance UID (0000,1000).')
    requested_sop_instance_uid = _command_property(
        0x1001, 'Requested SOP Instance UID (0000,1001).')
    move_destination = _command_property(0x0600, 'Move Destination (0000,0600).')
    move_originator_aet = _command_property(
        0x1030, 'Move Originator Application Entity Title (0000,1030).')
    move_originator_message_id = _command_property(
        0x1031, 'Move Originator Message ID (0000,1031).')
    num_of_remaining_sub_ops = _command_property(
        0x1020, 'Number of Remaining Sub-operations (0000,1020).')
    num_of_completed_sub_ops = _command_property(
        0x1021, 'Number of Completed Sub-operations (0000,1021).')
    num_of_failed_sub_ops = _command_property(
        0x1022, 'Number of Failed Sub-operations (0000,1022).')
    num_of_warning_sub_ops = _command_property(
        0x1023, 'Number of Warning Sub-operations (0000,1023).')
    event_type_id = _command_property(0x1002, 'Event Type ID (0000,1002).')
    action_type_id = _command_property(0x1008, 'Action Type ID (0000,1008).')
    attribute_identifier_list = _command_property(
        0x1005, 'Attribute Identifier List (0000,1005): a tag or a list of tags.')
    command_data_set_type = _command_property(
        0x0800, 'Command Data Set Type (0000,0800): NO_DATASET or another value.')

    @property
    def sop_class_uid(self) -> Any:
        """The SOP class this message is about.

        Affected SOP Class UID (0000,0002), or Requested SOP Class UID (0000,0003) for
        N-GET-RQ, N-SET-RQ, N-ACTION-RQ and N-DELETE-RQ, as the PS3.7 tables say.
        """
        return self._get_element(self._sop_class_element)

    @sop_class_uid.setter
    def sop_class_uid(self, value: Any) -> None:
        self._set_element(self._sop_class_element, 'UI', value)

    @property
    def has_data_set(self) -> bool:
        """True when Command Data Set Type says a data set follows (PS3.7 E.1)."""
        value = self._get_element(_COMMAND_DATA_SET_TYPE)
        return value is not None and value != NO_DATASET

    @property
    def data_set(self) -> Any:
        """The data set: None, bytes, or a binary file positioned at its start."""
        return self._data_set

    @data_set.setter
    def data_set(self, value: Any) -> None:
        # Keep a received non-0101H value as it came; mark ours with 0001H.
        if value is None:
            self._set_element(_COMMAND_DATA_SET_TYPE, 'US', NO_DATASET)
        elif not self.has_data_set:
            self._set_element(_COMMAND_DATA_SET_TYPE, 'US', DATASET_PRESENT)
        self._data_set = value

    def set_length(self) -> int:
        """Compute Command Group Length (0000,0000) and store it; returns the value."""
        return len(self.encode_command_set()) - 12

    def encode_command_set(self) -> bytes:
        """The command set as sent, with its Command Group Length set."""
        elements = self._elements
        if elements is not None:
            raw = _encode_elements(elements)
            elements[_COMMAND_GROUP_LENGTH] = len(raw) - 12
        else:
            raw = encode_command_set(self._command_set)
            self._set_element(_COMMAND_GROUP_LENGTH, 'UL', len(raw) - 12)
        return raw

    # -- sending --------------------------------------------------------------------

    def iter_fragments(self, max_pdu_length: Optional[int]
                       ) -> Iterator[List[Tuple[int, memoryview]]]:
        """Plan the P-DATA-TF PDUs: for each PDU, its list of (control header, fragment).

        ``max_pdu_length`` is the peer's Maximum Length Received (PS3.8 D.1): the limit
        on a P-DATA-TF PDU's variable field; 0 or None means no limit. A file data set
        is read in chunks into two buffers that take turns, so a fragment stays valid
        only until the next PDU is requested.
        """
        return (pdvs for pdvs, _ in self._iter_pdvs(fragment_length(max_pdu_length)))

    def _iter_pdvs(self, size: int) -> Iterator[Tuple[List[Tuple[int, memoryview]], bool]]:
        """Each PDU's PDVs, with True when the read buffers turn before the next one:
        fragments yielded so far are then overwritten once the next PDU is asked for."""
        command = memoryview(self.encode_command_set())
        command_frags = [command[pos:pos + size] for pos in range(0, len(command), size)]
        for frag in command_frags[:-1]:
            yield [(COMMAND_FRAGMENT, frag)], False
        yield [(COMMAND_FRAGMENT | LAST_FRAGMENT, command_frags[-1])], False
        if self._data_set is None:
            return
        # The data set starts in a P-DATA-TF PDU of its own. PS3.8 E.1 would let a small
        # one share the PDU of the command's last fragment, but GDCM-based peers (and
        # what is built on them) then wait for it forever; 0.9.8, DCMTK, pynetdicom and
        # Orthanc never send it that way, and neither do we.
        for chunk, last_chunk in self._iter_data_chunks(size):
            total = len(chunk)
            for pos in range(0, max(total, 1), size):
                end = pos + size
                yield ([(LAST_FRAGMENT if last_chunk and end >= total else 0,
                         chunk[pos:end])],
                       end >= total and not last_chunk)

    def _iter_data_chunks(self, size: int) -> Iterator[Tuple[memoryview, bool]]:
        """The data set as chunks of whole fragments of ``size`` bytes (the last chunk
        may end short), each with True when it is the last one."""
        data = self._data_set
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast('B')
            yield view, True
            return
        if not (hasattr(data, 'readinto') or hasattr(data, 'read')):
            raise DIMSEProcessingError(
                f'data_set must be bytes or a binary file, not {type(data).__name__}; '
                f'encode a Dataset before sending it')
        # Read ahead one chunk to know which is the last (a file's length is not known
        # up front); two buffers take turns so the chunk yielded stays intact.
        chunk_size = size * max(1, _SEND_BATCH_BYTES // size)
        chunk_size = min(chunk_size, _bytes_left(data) or chunk_size)
        buffers = _read_buffers(chunk_size)
        turn = 0
        count = _read_chunk(data, buffers[turn])
        current = buffers[turn][:count]
        while True:
            turn ^= 1
            count = _read_chunk(data, buffers[turn]) if len(current) == chunk_size else 0
            if count == 0:
                yield current, True
                return
            yield current, False
            current = buffers[turn][:count]

    def iter_pdu_buffers(self, pc_id: int, max_pdu_length: Optional[int]
                         ) -> Iterator[List[Any]]:
        """Yield each P-DATA-TF PDU as a list of buffers (headers and fragments) for
        scatter/gather sending: the payload is never copied. A fragment stays valid
        only until the next PDU is requested."""
        for buffers, _ in self._iter_pdu_buffers(pc_id, max_pdu_length):
            yield buffers

    def iter_pdu_batches(self, pc_id: int, max_pdu_length: Optional[int]
                         ) -> Iterator[List[Any]]:
        """As ``iter_pdu_buffers``, but several whole PDUs per list (about 1 MiB of
        fragments): one scatter/gather call sends them all, where one call per 16 KiB
        PDU cost more than the copy. A list stays valid until the next is requested."""
        batch: List[Any] = []
        size = 0
        for buffers, turn in self._iter_pdu_buffers(pc_id, max_pdu_length):
            batch += buffers
            size += len(buffers[-1])
            if turn or size >= _SEND_BATCH_BYTES:
                yield batch
                batch = []
                size = 0
        if batch:
            yield batch

    def _iter_pdu_buffers(self, pc_id: int, max_pdu_length: Optional[int]
                          ) -> Iterator[Tuple[List[Any], bool]]:
        _check_context_id(pc_id)
        # Every PDU we send carries one PDV (see ``_iter_pdvs``): one header struct.
        for ((control, frag),), turn in self._iter_pdvs(fragment_length(max_pdu_length)):
            length = len(frag)
            yield [_PDU_AND_PDV_HEADER.pack(
                P_DATA_TF_PDU_TYPE, length + _PDV_HEADER_LENGTH, length + 2, pc_id,
                control), frag], turn

    def iter_pdu_bytes(self, pc_id: int, max_pdu_length: Optional[int]) -> Iterator[bytes]:
        """Yield complete P-DATA-TF PDUs (PS3.8 9.3.5) as bytes, ready for ``sendall``.

        Each PDU's variable field is at most ``max_pdu_length`` bytes (the peer's
        Maximum Length Received; 0 or None: no limit, fragments of 4 MiB at most).
        Memory stays bounded whatever the data set's size.
        """
        for buffers in self.iter_pdu_buffers(pc_id, max_pdu_length):
            yield b''.join(buffers)

    def encode(self, pc_id: int, max_pdu_length: Optional[int]) -> Iterator[Any]:
        """Yield the message as ``pdu.PDataTfPDU`` objects (the original API).

        The same fragments as ``iter_pdu_bytes``; each ``PresentationDataValueItem``'s
        ``data_value`` starts with the message control header byte.
        """
        _check_context_id(pc_id)
        for pdvs in self.iter_fragments(max_pdu_length):
            yield pdu.PDataTfPDU([
                pdu.PresentationDataValueItem(pc_id, bytes((control,)) + bytes(frag))
                for control, frag in pdvs])

    def __repr__(self) -> str:
        ds = self._command_set
        if ds is None:
            # Shown, not kept: the dict stays the command set.
            ds = _dataset_from(self._elements or {})
        return f'{type(self).__name__}\n{ds}\n'


def _check_context_id(pc_id: Any) -> None:
    if not isinstance(pc_id, int) or not 1 <= pc_id <= 255:
        raise DIMSEProcessingError(
            f'presentation context ID must be 1-255 (PS3.8 9.3.5.1), got {pc_id!r}')


def fragment_length(max_pdu_length: Optional[int]) -> int:
    """Largest fragment to put in one PDV for a peer's Maximum Length Received.

    The PDV item adds 6 bytes (length, context ID, control header) inside the PDU's
    variable field; fragments have an even length (PS3.8 E.1); 0 or None means no
    limit, and we still stop at ``MAX_FRAGMENT_LENGTH``.
    """
    if not max_pdu_length:
        return MAX_FRAGMENT_LENGTH
    size = min(int(max_pdu_length) - _PDV_HEADER_LENGTH, MAX_FRAGMENT_LENGTH) & ~1
    if size < 2:
        raise DIMSEProcessingError(
            f'maximum PDU length {max_pdu_length} leaves no room for a fragment: a PDV '
            f'needs 6 bytes of header and an even fragment of at least 2 bytes')
    return size


_thread_buffers = threading.local()


def _read_buffers(size: int) -> List[memoryview]:
    """Two read buffers of ``size`` bytes, kept per thread and reused by every message
    the thread sends (messages are sent one after the other): allocating and zeroing
    fresh ones per message cost more than the sending itself."""
    pair = getattr(_thread_buffers, 'pair', None)
    if pair is None or len(pair[0]) < size:
        pair = [memoryview(bytearray(size)), memoryview(bytearray(size))]
        _thread_buffers.pair = pair
    return [pair[0][:size], pair[1][:size]]


def _bytes_left(fp: Any) -> Optional[int]:
    """How many bytes a regular file has after its position, or None if unknown."""
    try:
        left = os.fstat(fp.fileno()).st_size - fp.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return left if left > 0 else None


def _read_chunk(fp: Any, buf: memoryview) -> int:
    """Fill ``buf`` from ``fp`` as far as it goes; fewer bytes only at end of file."""
    filled = 0
    want = len(buf)
    readinto = getattr(fp, 'readinto', None)
    try:
        while filled < want:
            if readinto is not None:
                count = readinto(buf[filled:])
            else:
                chunk = fp.read(want - filled)
                if chunk is not None and not isinstance(chunk, (bytes, bytearray)):
                    raise DIMSEProcessingError(
                        f'the data set file gave {type(chunk).__name__}, not bytes: open '
                        f'it in binary mode')
                count = None if chunk is None else len(chunk)
                if count:
                    buf[filled:filled + count] = chunk
            if count is None:
                raise DIMSEProcessingError(
                    'the data set file has no data ready (non-blocking?); a blocking '
                    'binary file is needed')
            if count == 0:
                break
            filled += count
    except OSError as exc:
        raise DIMSEProcessingError(f'reading the data set file failed: {exc}') from exc
    return filled


class DIMSERequestMessage(DIMSEMessage):
    """Base of the request messages (…-RQ)."""


class DIMSEResponseMessage(DIMSEMessage):
    """Base of the response messages (…-RSP)."""


# Status-related elements a response may add, PS3.7 Annex C.
_C_STATUS_FIELDS = ['Status', 'OffendingElement', 'ErrorComment']
_N_STATUS_FIELDS = ['Status', 'OffendingElement', 'ErrorComment', 'ErrorID']
_SUB_OPS = ['NumberOfRemainingSuboperations', 'NumberOfCompletedSuboperations',
            'NumberOfFailedSuboperations', 'NumberOfWarningSuboperations']


class CEchoRQMessage(DIMSERequestMessage):
    """C-ECHO-RQ, PS3.7 9.3.5.1."""
    command_field = 0x0030
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType']


class CEchoRSPMessage(DIMSEResponseMessage):
    """C-ECHO-RSP, PS3.7 9.3.5.2."""
    command_field = 0x8030
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_C_STATUS_FIELDS]


class CStoreRQMessage(DIMSERequestMessage):
    """C-STORE-RQ, PS3.7 9.3.1.1."""
    command_field = 0x0001
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'Priority', 'CommandDataSetType',
                      'AffectedSOPInstanceUID', 'MoveOriginatorApplicationEntityTitle',
                      'MoveOriginatorMessageID']


class CStoreRSPMessage(DIMSEResponseMessage):
    """C-STORE-RSP, PS3.7 9.3.1.2."""
    command_field = 0x8001
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType',
                      *_C_STATUS_FIELDS, 'AffectedSOPInstanceUID']


class CFindRQMessage(DIMSERequestMessage):
    """C-FIND-RQ, PS3.7 9.3.2.1."""
    command_field = 0x0020
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'Priority', 'CommandDataSetType']


class CFindRSPMessage(DIMSEResponseMessage):
    """C-FIND-RSP, PS3.7 9.3.2.2."""
    command_field = 0x8020
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_C_STATUS_FIELDS]


class CGetRQMessage(DIMSERequestMessage):
    """C-GET-RQ, PS3.7 9.3.3.1."""
    command_field = 0x0010
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'Priority', 'CommandDataSetType']


class CGetRSPMessage(DIMSEResponseMessage):
    """C-GET-RSP, PS3.7 9.3.3.2."""
    command_field = 0x8010
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_C_STATUS_FIELDS,
                      *_SUB_OPS]


class CMoveRQMessage(DIMSERequestMessage):
    """C-MOVE-RQ, PS3.7 9.3.4.1."""
    command_field = 0x0021
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'Priority', 'CommandDataSetType', 'MoveDestination']


class CMoveRSPMessage(DIMSEResponseMessage):
    """C-MOVE-RSP, PS3.7 9.3.4.2."""
    command_field = 0x8021
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_C_STATUS_FIELDS,
                      *_SUB_OPS]


class CCancelRQMessage(DIMSERequestMessage):
    """C-CANCEL-RQ, PS3.7 9.3.2.3: names the request it cancels by Message ID Being
    Responded To (0000,0120)."""
    command_field = 0x0FFF
    command_fields = ['CommandGroupLength', 'CommandField', 'MessageIDBeingRespondedTo',
                      'CommandDataSetType']


class NEventReportRQMessage(DIMSERequestMessage):
    """N-EVENT-REPORT-RQ, PS3.7 10.3.1.1."""
    command_field = 0x0100
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType', 'AffectedSOPInstanceUID',
                      'EventTypeID']


class NEventReportRSPMessage(DIMSEResponseMessage):
    """N-EVENT-REPORT-RSP, PS3.7 10.3.1.2."""
    command_field = 0x8100
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_N_STATUS_FIELDS,
                      'AffectedSOPInstanceUID', 'EventTypeID']


class NGetRQMessage(DIMSERequestMessage):
    """N-GET-RQ, PS3.7 10.3.2.1; ``sop_class_uid`` is the Requested SOP Class UID."""
    command_field = 0x0110
    command_fields = ['CommandGroupLength', 'RequestedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType', 'RequestedSOPInstanceUID',
                      'AttributeIdentifierList']
    _sop_class_element = 0x0003


class NGetRSPMessage(DIMSEResponseMessage):
    """N-GET-RSP, PS3.7 10.3.2.2."""
    command_field = 0x8110
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_N_STATUS_FIELDS,
                      'AffectedSOPInstanceUID', 'AttributeIdentifierList']


class NSetRQMessage(DIMSERequestMessage):
    """N-SET-RQ, PS3.7 10.3.3.1; ``sop_class_uid`` is the Requested SOP Class UID."""
    command_field = 0x0120
    command_fields = ['CommandGroupLength', 'RequestedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType', 'RequestedSOPInstanceUID']
    _sop_class_element = 0x0003


class NSetRSPMessage(DIMSEResponseMessage):
    """N-SET-RSP, PS3.7 10.3.3.2."""
    command_field = 0x8120
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_N_STATUS_FIELDS,
                      'AffectedSOPInstanceUID', 'AttributeIdentifierList']


class NActionRQMessage(DIMSERequestMessage):
    """N-ACTION-RQ, PS3.7 10.3.4.1; ``sop_class_uid`` is the Requested SOP Class UID."""
    command_field = 0x0130
    command_fields = ['CommandGroupLength', 'RequestedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType', 'RequestedSOPInstanceUID',
                      'ActionTypeID']
    _sop_class_element = 0x0003


class NActionRSPMessage(DIMSEResponseMessage):
    """N-ACTION-RSP, PS3.7 10.3.4.2."""
    command_field = 0x8130
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_N_STATUS_FIELDS,
                      'AffectedSOPInstanceUID', 'ActionTypeID']


class NCreateRQMessage(DIMSERequestMessage):
    """N-CREATE-RQ, PS3.7 10.3.5.1."""
    command_field = 0x0140
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType', 'AffectedSOPInstanceUID']


class NCreateRSPMessage(DIMSEResponseMessage):
    """N-CREATE-RSP, PS3.7 10.3.5.2."""
    command_field = 0x8140
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_N_STATUS_FIELDS,
                      'AffectedSOPInstanceUID', 'AttributeIdentifierList']


class NDeleteRQMessage(DIMSERequestMessage):
    """N-DELETE-RQ, PS3.7 10.3.6.1; ``sop_class_uid`` is the Requested SOP Class UID."""
    command_field = 0x0150
    command_fields = ['CommandGroupLength', 'RequestedSOPClassUID', 'CommandField',
                      'MessageID', 'CommandDataSetType', 'RequestedSOPInstanceUID']
    _sop_class_element = 0x0003


class NDeleteRSPMessage(DIMSEResponseMessage):
    """N-DELETE-RSP, PS3.7 10.3.6.2."""
    command_field = 0x8150
    command_fields = ['CommandGroupLength', 'AffectedSOPClassUID', 'CommandField',
                      'MessageIDBeingRespondedTo', 'CommandDataSetType', *_N_STATUS_FIELDS,
                      'AffectedSOPInstanceUID']


#: Command Field (0000,0100) -> message class, PS3.7 E.1.
MESSAGE_TYPE = {cls.command_field: cls for cls in (
    CStoreRQMessage, CStoreRSPMessage, CGetRQMessage, CGetRSPMessage,
    CFindRQMessage, CFindRSPMessage, CMoveRQMessage, CMoveRSPMessage,
    CEchoRQMessage, CEchoRSPMessage, CCancelRQMessage,
    NEventReportRQMessage, NEventReportRSPMessage, NGetRQMessage, NGetRSPMessage,
    NSetRQMessage, NSetRSPMessage, NActionRQMessage, NActionRSPMessage,
    NCreateRQMessage, NCreateRSPMessage, NDeleteRQMessage, NDeleteRSPMessage)}


def decode_message(command_bytes: Union[bytes, bytearray, memoryview]) -> DIMSEMessage:
    """Decode a complete command set into the message class its Command Field names."""
    elements = _decode_elements(command_bytes)
    value = elements.get(_COMMAND_FIELD)
    if value is None:
        raise DIMSEProcessingError('command set has no Command Field (0000,0100)')
    cls = MESSAGE_TYPE.get(value) if type(value) is int else None
    if cls is None:
        shown = f'0x{value:04X}' if isinstance(value, int) else repr(value)
        raise DIMSEProcessingError(f'unknown Command Field {shown} (PS3.7 E.1)')
    return cls._from_elements(elements)


# -- receiving ---------------------------------------------------------------------

class MessageAssembler:
    """Reassemble DIMSE messages from P-DATA fragments (PS3.8 Annex E).

    Feed it every ``(context_id, control_header, fragment)`` in arrival order;
    ``feed`` returns the complete message (``data_set`` filled, ``context_id`` set) when
    its last fragment arrives, and None before that.

    ``data_sink(msg)``, if given, is called once per message when its command set is
    complete and a data set follows (``msg.context_id`` is already set). It returns a
    sink, any object with ``write(fragment)`` (a writable binary file, or the owner of
    an incoming data set), and the data fragments are written straight into it as they
    arrive (``msg.data_set`` is then that sink; a file is left after the last byte), or
    None, and the data set is gathered in memory (``msg.data_set`` is bytes), at most
    ``max_memory_data_set`` bytes: past that ``DIMSEProcessingError`` says so (PS3.8
    gives a data set no length; a never-ending one must not take all the memory).

    When the sink fails with ``OSError`` (a full disk), it is handed to
    ``discard_sink`` at once, the rest of the data set is read and dropped, and the
    message is still delivered, with ``data_set`` None and ``data_set_error`` the
    ``OSError``: the service answers "out of resources" and the association lives on.

    After a ``DIMSEProcessingError`` (or when the association ends mid-message) call
    ``abort()``: it forgets the partial message and returns the sink that was being
    written, if any, for the caller to discard. The assembler never closes or
    deletes a sink itself.
    """

    def __init__(self, data_sink: Optional[Callable[[DIMSEMessage], Any]] = None,
                 discard_sink: Optional[Callable[[Any], None]] = None,
                 max_memory_data_set: Optional[int] = None) -> None:
        self.data_sink = data_sink
        self.discard_sink = discard_sink
        self.max_memory_data_set = max_memory_data_set
        self._last_message: Optional[DIMSEMessage] = None
        self._reset()

    def _reset(self) -> None:
        self._context_id: Optional[int] = None
        self._command = bytearray()
        self._msg: Optional[DIMSEMessage] = None
        self._sink: Optional[BinaryIO] = None
        self._chunks: List[bytes] = []
        self._gathered = 0
        self._sink_error: Optional[OSError] = None

    @property
    def in_progress(self) -> bool:
        """True when a message has started but is not complete."""
        return self._context_id is not None

    def feed(self, context_id: int, control_header: int,
             fragment: Union[bytes, bytearray, memoryview]) -> Optional[DIMSEMessage]:
        """Take one PDV's fragment; return the message its last fragment completes."""
        if self._context_id is None:
            self._context_id = context_id
        elif context_id != self._context_id:
            # PS3.8 E.1: every fragment of a message uses one presentation context.
            raise DIMSEProcessingError(
                f'fragment for presentation context {context_id} arrived in the middle '
                f'of a message on context {self._context_id}')
        # Bits 2-7 are reserved: never checked by the receiver (PS3.8 E.2).
        if control_header & COMMAND_FRAGMENT:
            return self._feed_command(context_id, control_header, fragment)
        return self._feed_data(control_header, fragment)

    def _feed_command(self, context_id: int, control_header: int,
                      fragment: Union[bytes, bytearray, memoryview]) -> Optional[DIMSEMessage]:
        if self._msg is not None:
            raise DIMSEProcessingError(
                f'command fragment after the command set of {type(self._msg).__name__} '
                f'was complete; its data set was expected')
        if len(self._command) + len(fragment) > MAX_COMMAND_SET_LENGTH:
            raise DIMSEProcessingError(
                f'command set longer than {MAX_COMMAND_SET_LENGTH} bytes; refusing it')
        # The fragment may point into a receive buffer that is reused: copy it.
        self._command += fragment
        if not control_header & LAST_FRAGMENT:
            return None
        msg = decode_message(bytes(self._command))
        msg.context_id = context_id
        if not msg.has_data_set:
            self._complete(msg)
            return msg
        self._msg = msg
        if self.data_sink is not None:
            try:
                self._sink = self.data_sink(msg)
            except OSError as exc:
                self._sink_failed(msg, exc)
        return None

    def _sink_failed(self, msg: DIMSEMessage, exc: OSError) -> None:
        """The data set cannot be kept: drop its file now, swallow the rest of it."""
        logger.warning('the data set of %s (message ID %s) cannot be kept: %s',
                       type(msg).__name__, msg.message_id, exc)
        sink, self._sink = self._sink, None
        self._sink_error = exc
        if sink is not None and self.discard_sink is not None:
            try:
                self.discard_sink(sink)
            except OSError:
                logger.warning('discarding the partial data set file failed',
                               exc_info=True)

    def _feed_data(self, control_header: int,
                   fragment: Union[bytes, bytearray, memoryview]) -> Optional[DIMSEMessage]:
        msg = self._msg
        if msg is None:
            if self._command:
                problem = 'before its command set was complete'
            elif self._last_message is not None and not self._last_message.has_data_set:
                last = self._last_message
                problem = (f'after {type(last).__name__} (message ID '
                           f'{last.message_id or last.message_id_being_responded_to}), '
                           f'whose Command Data Set Type says no data set follows')
            else:
                problem = 'without a command set before it'
            raise DIMSEProcessingError(f'data fragment arrived {problem} (PS3.8 E.1)')
        if self._sink is not None:
            try:
                self._sink.write(fragment)
            except OSError as exc:
                self._sink_failed(msg, exc)
            except ValueError as exc:
                raise DIMSEProcessingError(
                    f'writing the data set of {type(msg).__name__} to its file failed: '
                    f'{exc}') from exc
        elif self._sink_error is None:
            self._gathered += len(fragment)
            limit = self.max_memory_data_set
            if limit is not None and self._gathered > limit:
                raise DIMSEProcessingError(
                    f'the data set of {type(msg).__name__} (message ID '
                    f'{msg.message_id or msg.message_id_being_responded_to}) is longer '
                    f'than {limit} bytes, the most gathered in memory '
                    f'(max_memory_data_set); refusing it')
            self._chunks.append(bytes(fragment))
        if not control_header & LAST_FRAGMENT:
            return None
        if self._sink_error is not None:
            msg._data_set = None
            msg.data_set_error = self._sink_error
        elif self._sink is not None:
            msg._data_set = self._sink
        else:
            msg._data_set = b''.join(self._chunks)
        self._complete(msg)
        return msg

    def _complete(self, msg: DIMSEMessage) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            data = msg.data_set
            logger.debug('received %s on context %s, message ID %s, data set: %s',
                         type(msg).__name__, msg.context_id,
                         msg.message_id if msg.message_id is not None
                         else msg.message_id_being_responded_to,
                         'none' if data is None else
                         f'{len(data)} bytes' if isinstance(data, bytes) else 'in a file')
        self._last_message = msg
        self._reset()

    def abort(self) -> Optional[BinaryIO]:
        """Forget the partial message; return its open sink file to discard, if any."""
        sink = self._sink
        self._reset()
        return sink

    def reset(self) -> None:
        """Forget any partial message (a sink file is left to ``abort``'s caller)."""
        self._reset()
