"""The command-set codec of DIMSE (PS3.7 6.3.1): a command set to bytes and back.

Command sets are always implicit VR little endian and hold group 0000 only; this module
encodes and decodes them in one pass over ``{element number: value}``, without a
general pydicom data-set round trip (DESIGN.md, "Performance design"). Bytes in, values
out: no messages, no sockets. ``pynetdicom2.dimse`` builds the messages on it.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Union

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from pynetdicom2.exceptions import DIMSEProcessingError

__all__ = [
    'COMMAND_ELEMENTS', 'encode_command_set', 'decode_command_set', 'encode_elements',
    'decode_elements', 'dataset_from', 'command_value',
]

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

# A command set travels as ``{element number: value}`` (the group is always 0000): the
# codec reads and writes that dict directly, with values of the types pydicom gives
# elements of their VR (int, UID, str, BaseTag, MultiValue, bytes for unknown ones), so
# a pydicom Dataset is built only when someone asks for one.

# VR of each command element, by element number; anything else is kept as raw UN bytes.
_VR_OF = {element: vr for element, (vr, _) in COMMAND_ELEMENTS.items()}

#: The tag of each command element, one object each (a command set Dataset is indexed
#: with these: a dict finds its own key by identity, without BaseTag.__eq__).
TAG_OF = {element: BaseTag(element) for element in COMMAND_ELEMENTS}

# The VRs the decoder reads on its short path, by element number (a number is quicker
# to test than a VR's name).
_US, _UI, _UL = 1, 2, 3
_KIND_OF = {element: {'US': _US, 'UI': _UI, 'UL': _UL}.get(vr, 0)
            for element, vr in _VR_OF.items()}

# Values are trusted as they are: a peer's odd UID must neither warn nor raise
# (pydicom's validation does both, depending on its settings).
_NO_VALIDATION = pydicom_config.IGNORE

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


# The command set of most responses (C-STORE-RSP, N-*-RSP without a comment): Affected
# SOP Class UID, Command Field, Message ID Being Responded To, Command Data Set Type,
# Status, Affected SOP Instance UID. The four US elements lie together in tag order.
_RESPONSE_SHAPE = frozenset((0x0002, 0x0100, 0x0120, 0x0800, 0x0900, 0x1000))
_FOUR_US = struct.Struct('<' + 'HHLH' * 4)


def _encode_response(elements: Dict[int, Any]) -> Optional[bytes]:
    """``encode_elements`` of a response-shaped command set in one piece (3.9 -> 2 us
    a C-STORE-RSP), or None when a value is not of the common types (an int in range,
    an ASCII UID or str): the general way then encodes it, or says what is wrong."""
    sop_class, instance = elements[0x0002], elements[0x1000]
    field, message_id = elements[0x0100], elements[0x0120]
    data_set_type, status = elements[0x0800], elements[0x0900]
    if not (type(field) is int and type(message_id) is int and type(data_set_type) is int
            and type(status) is int and (type(sop_class) is UID or type(sop_class) is str)
            and (type(instance) is UID or type(instance) is str)
            and sop_class.isascii() and instance.isascii()):
        return None
    try:
        numbers = _FOUR_US.pack(0, 0x0100, 2, field, 0, 0x0120, 2, message_id,
                                0, 0x0800, 2, data_set_type, 0, 0x0900, 2, status)
    except struct.error:  # out of the US range
        return None
    sop_class = sop_class.encode('ascii')
    if len(sop_class) % 2:
        sop_class += b'\x00'  # PS3.5 6.2: UI values are padded with NUL
    instance = instance.encode('ascii')
    if len(instance) % 2:
        instance += b'\x00'
    return b''.join((
        _UL_ELEMENT.pack(0, 0, 4, 56 + len(sop_class) + len(instance)),
        _ELEMENT_HEADER.pack(0, 0x0002, len(sop_class)), sop_class, numbers,
        _ELEMENT_HEADER.pack(0, 0x1000, len(instance)), instance))


def encode_elements(elements: Dict[int, Any], vrs: Optional[Dict[int, str]] = None
                     ) -> bytes:
    """Encode ``{element number: value}`` as a command set, in one pass.

    ``vrs`` gives the VR of elements the PS3.7 table does not know (default UN).
    Command Group Length (0000,0000) is computed from what follows.
    """
    if not vrs and elements.keys() == _RESPONSE_SHAPE:
        raw = _encode_response(elements)
        if raw is not None:
            return raw
    key = None
    if (elements.get(0x0900) in _PENDING and not vrs
            and _KEYABLE.issuperset(map(type, elements.values()))):
        # Of these types, equal values are the same bytes (a UID and its str alike).
        key = tuple(elements.items())
        known = _encoded.get(key)
        if known is not None:
            return known
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
    raw = _UL_ELEMENT.pack(0, 0, 4, len(body)) + body
    if key is not None and len(raw) <= _CACHED_LENGTH:
        if len(_encoded) >= _CACHE_SIZE:
            _encoded.clear()
        _encoded[key] = raw
    return raw


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
    return encode_elements(elements, vrs)


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
        return _uid(text.rstrip('\x00 '))
    if vr in ('AE', 'SH', 'LO', 'CS', 'IS', 'DS'):
        # Leading and trailing spaces are not significant here (PS3.5 6.2).
        return text.strip(' \x00')
    return text.rstrip(' \x00')


_new_str = str.__new__


def _uid(text: str) -> UID:
    """``UID(text)`` without validation, as pydicom makes it (2.x and 3.x alike: the
    stripped text as a ``UID``), skipping the call layers that cost a microsecond."""
    return _new_str(UID, text.strip())


# Pending responses (Status FF00H/FF01H, PS3.7 C.4) of one operation repeat the same
# command set thousands of times (a C-FIND's matches): those command sets are kept,
# both ways, bounded, and emptied when full (message IDs make every other one unique).
# Only small ones: a peer's 1 MiB command sets would take the memory.
_PENDING = (0xFF00, 0xFF01)
_CACHE_SIZE = 64
_CACHED_LENGTH = 1024
_decoded: Dict[bytes, Dict[int, Any]] = {}
_encoded: Dict[tuple, bytes] = {}
# Values shared between messages taken from ``_decoded`` must not be mutable.
_SHAREABLE = (int, UID, str)
# UI values read, by their bytes (a peer's made-up UIDs empty it when full).
_UID_CACHE_SIZE = 256
_uids: Dict[bytes, UID] = {}
# Command sets encoded are kept only when every value is of these types.
_KEYABLE = frozenset((int, UID, str, type(None)))


def decode_elements(raw: Union[bytes, bytearray, memoryview]) -> Dict[int, Any]:
    """Decode a command set into ``{element number: value}``; see ``decode_command_set``."""
    if type(raw) is not bytes:
        raw = bytes(raw) if type(raw) is bytearray else memoryview(raw).cast('B').tobytes()
    known = _decoded.get(raw)
    if known is not None:
        return known.copy()
    total = len(raw)
    elements: Dict[int, Any] = {}
    offset = 0
    unpack_header = _ELEMENT_HEADER.unpack_from
    kind_of = _KIND_OF.get
    while offset < total:
        try:
            group, element, length = unpack_header(raw, offset)
        except struct.error:
            raise DIMSEProcessingError(
                f'command set: {total - offset} byte(s) left at offset {offset}, too few for '
                f'an element header (8 bytes)') from None
        start = offset + 8
        end = start + length
        if group or end > total or element in elements:
            _element_error(raw, offset, group, element, length, total)
        kind = kind_of(element)
        # The common elements take the short path; values get pydicom's type for their
        # VR without pydicom's conversion (several times slower, and it would warn about
        # a peer's odd values).
        if kind == _US and length == 2:
            value = raw[start] | raw[start + 1] << 8
        elif kind == _UI:
            # The SOP class UIDs come again and again: each is read once (bounded).
            chunk = raw[start:end]
            value = _uids.get(chunk)
            if value is None:
                # DCMTK pads UIDs with NUL; some peers pad with space.
                value = _uid(chunk.decode('ascii', 'replace').rstrip('\x00 '))
                if len(_uids) >= _UID_CACHE_SIZE:
                    _uids.clear()
                _uids[chunk] = value
        elif kind == _UL and length == 4:
            value = _UL_VALUE.unpack_from(raw, start)[0]
        else:
            value = _decode_value(element, _VR_OF.get(element, 'UN'), raw[start:end], offset)
        elements[element] = value
        offset = end
    if elements.get(0x0900) in _PENDING and total <= _CACHED_LENGTH and all(
            type(value) in _SHAREABLE for value in elements.values()):
        if len(_decoded) >= _CACHE_SIZE:
            _decoded.clear()
        _decoded[raw] = elements.copy()
    return elements


def _element_error(raw: bytes, offset: int, group: int, element: int, length: int,
                   total: int) -> None:
    """Raise the ``DIMSEProcessingError`` that says what is wrong with the element at
    ``offset`` (outside group 0000, longer than what remains, or repeated)."""
    if group != 0x0000:
        raise DIMSEProcessingError(
            f'command set: element ({group:04X},{element:04X}) at offset {offset} is '
            f'not in group 0000 (PS3.7 6.3.1 allows command elements only)')
    start = offset + 8
    if start + length > total:
        raise DIMSEProcessingError(
            f'command set: element (0000,{element:04X}) at offset {offset} declares '
            f'{length} bytes but only {total - start} remain')
    raise DIMSEProcessingError(
        f'command set: element (0000,{element:04X}) occurs twice (offset {offset}); '
        f'PS3.7 6.3.1 allows each at most once')


# ``dataset_from`` makes each DataElement and the Dataset from the attributes pydicom's
# constructors gave a first one (a 0.9.x ``get_file`` hook reads ``command_set`` once per
# C-STORE: 27 -> 10 us for DCMTK's C-STORE-RQ). Those depend on the element, pydicom's
# reading validation mode and (for the Dataset) its config of the moment, so the kept
# ones are keyed by these; everything else an element holds is its value.
_new_object = object.__new__
_element_states: Dict[tuple, Dict[str, Any]] = {}
_dataset_states: Dict[tuple, Dict[str, Any]] = {}
_FRESH_PER_INSTANCE = (dict, list, set)


def _element_state(element: int, mode: Any) -> Dict[str, Any]:
    state = _element_states.get((element, mode))
    if state is None:
        state = vars(DataElement(element, _VR_OF[element], None, already_converted=True,
                                 validation_mode=mode)).copy()
        _element_states[element, mode] = state
    return state


def _dataset_state() -> tuple:
    """The attributes of a fresh Dataset, and the names of those each needs its own of."""
    key = pydicom_config._use_future
    kept = _dataset_states.get(key)
    if kept is None:
        state = vars(Dataset()).copy()
        kept = _dataset_states[key] = (state, tuple(
            name for name, value in state.items() if type(value) in _FRESH_PER_INSTANCE))
    return kept


# Whether pydicom's objects keep their attributes in a __dict__ to copy, the Dataset's
# elements in its ``_dict`` (every pydicom from 2.4 to 3.0 does); if a later one does
# not, its constructors are used.
_COPYABLE = (all(not hasattr(cls, '__slots__') for cls in (DataElement, Dataset))
             and '_dict' in vars(Dataset()))


def dataset_from(elements: Dict[int, Any]) -> Dataset:
    """A pydicom Dataset holding ``{element number: value}`` as group-0000 elements."""
    if not _COPYABLE:
        return Dataset({BaseTag(element): DataElement(
            element, _VR_OF.get(element, 'UN'), value, already_converted=True)
            for element, value in elements.items()})
    mode = pydicom_config.settings.reading_validation_mode
    state_of = _element_states.get
    items = {}
    for element, value in elements.items():
        state = state_of((element, mode))
        if state is None and element in _VR_OF:
            state = _element_state(element, mode)
        if state is not None:
            elem = _new_object(DataElement)
            attributes = elem.__dict__
            attributes.update(state)
            attributes['_value'] = value
            # The table's tag object: a look-up with it is found by identity.
            items[TAG_OF[element]] = elem
        else:  # unknown: pydicom may give a UN element a VR of its dictionary's
            items[BaseTag(element)] = DataElement(element, 'UN', value, already_converted=True)
    ds = _new_object(Dataset)
    attributes = ds.__dict__
    state, fresh = _dataset_states.get(pydicom_config._use_future) or _dataset_state()
    attributes.update(state)
    for name in fresh:
        attributes[name] = state[name].copy()
    attributes['_dict'] = items
    return ds


def decode_command_set(raw: Union[bytes, bytearray, memoryview]) -> Dataset:
    """Decode an implicit VR little endian command set (PS3.7 6.3.1) into a Dataset.

    Every element length is checked against what remains; an element outside group 0000
    or a repeated tag is an error; an unknown group-0000 element is kept as raw ``UN``
    bytes. Any problem raises ``DIMSEProcessingError`` saying where.
    """
    return dataset_from(decode_elements(raw))


def command_value(element: int, vr: str, value: Any) -> Any:
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
        kind = type(value)
        if kind is str:
            return _uid(value)
        if kind is UID or not isinstance(value, str):
            return value
        return UID(value, _NO_VALIDATION)
    if vr == 'AT':
        tags = _to_tags(value, element)
        return MultiValue(Tag, tags) if isinstance(tags, list) else tags
    if isinstance(value, (list, tuple)):
        return MultiValue(str, value)
    return value
