"""Small data-set helpers: data sets to bytes and back, and a fast path for queries.

``encode``, ``decode`` and ``encode_element`` are 0.9.8's public helpers, kept with
their signatures and behaviour: pydicom's writer and reader for a data set (or one
element) in the transfer syntax given by ``is_implicit_vr`` and ``is_little_endian``,
without preamble or file meta.

C-FIND identifiers and their matches (PS3.4 C.4.1) are a handful of short text
elements, sent by the thousand. Like command sets (``dimse``), they get a fast path
of their own in little-endian transfer syntaxes, both ways. ``encode_flat`` writes a
data set of plain elements with ASCII values in one pass, several times faster than
pydicom's general writer; anything else (a sequence, a non-ASCII value, binary data)
returns None and the caller uses pydicom's writer, which stays the reference.
``decode_flat`` reads a data set whose elements all have a defined length into the
Dataset of raw elements pydicom's ``read_dataset`` gives for the same bytes (values
convert when first used, as always), three times faster; anything else (undefined
lengths, a VR encoding other than the one announced, bytes that end early) returns
None, for pydicom's reader.
"""

from __future__ import annotations

import functools
import io
import struct
from typing import Dict, List, Optional, Tuple, Union

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import PersonName

# Text VRs padded with a space to even length, and UI padded with NUL (PS3.5 6.2).
_TEXT_VRS = frozenset(('AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM',
                       'UC', 'UR', 'UT', 'IS', 'DS'))
# The padding of each VR written as text (PS3.5 6.2), and the types of one text value.
_PADDING = {**{vr: b' ' for vr in _TEXT_VRS}, 'UI': b'\x00'}
_SINGLE_TEXTS = frozenset((str, UID, PersonName))
_NUMBER_FORMATS = {'US': 'H', 'SS': 'h', 'UL': 'L', 'SL': 'l', 'FL': 'f', 'FD': 'd'}
# VRs with a 4-byte length (and 2 reserved bytes) in explicit VR (PS3.5 7.1.2).
_LONG_VRS = frozenset(('OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR',
                       'UT', 'UV'))
_SHORT_VRS = frozenset(('AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO',
                        'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US'))
_VR_BYTES = {vr: vr.encode('ascii') for vr in _LONG_VRS | _SHORT_VRS}

_IMPLICIT_HEADER = struct.Struct('<HHL')
_EXPLICIT_SHORT = struct.Struct('<HH2sH')
_EXPLICIT_LONG = struct.Struct('<HH2sHL')


def _text(vr: str, value) -> Optional[str]:
    """A text element's value as written, or None when the fast path cannot write it."""
    kind = type(value)
    if kind is str or kind is PersonName:
        return str(value)
    original = getattr(value, 'original_string', None)  # IS and DS keep what was read
    if original is not None:
        return original
    if isinstance(value, str):  # UID and other str subclasses
        return str(value)
    if vr in ('IS', 'DS') and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # as pydicom writes numbers it did not read
    return None


def _dictionary_vr(tag: int) -> Optional[str]:
    """The VR the data dictionary gives ``tag`` (an element read in implicit VR)."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def _raw_text_bytes(vr: Optional[str], value) -> Optional[bytes]:
    """The value bytes of a raw (never converted) text element, as they were read.

    A peer's IS "1e999999" or DA "2020-13-45" is sent on verbatim, as DCMTK does,
    instead of failing in pydicom's conversion. None when the element is not plain
    ASCII text of a known text VR.
    """
    if vr not in _TEXT_VRS or value is None:
        return None
    raw = bytes(value)
    if not raw.isascii():
        return None
    return raw + b' ' if len(raw) % 2 else raw


def _value_bytes(vr: str, value) -> Optional[bytes]:
    """An element's value bytes, padded to even length; None to leave it to pydicom."""
    if value is None:
        return b''
    kind = type(value)
    multi = kind is MultiValue or kind is list or kind is tuple
    if vr in _TEXT_VRS or vr == 'UI':
        if kind is str or kind is UID or kind is PersonName:
            text = str(value)
        else:
            parts = [_text(vr, v) for v in value] if multi else [_text(vr, value)]
            if None in parts:
                return None
            text = '\\'.join(parts)
        if not text.isascii():
            return None  # a character set's encoding is pydicom's business
        raw = text.encode('ascii')
        if len(raw) % 2:
            raw += b'\x00' if vr == 'UI' else b' '
        return raw
    fmt = _NUMBER_FORMATS.get(vr)
    if fmt is not None:
        numbers = list(value) if multi else [value]
        try:
            return struct.pack(f'<{len(numbers)}{fmt}', *numbers)
        except (struct.error, TypeError):
            return None
    return None


def encode_flat(ds: Dataset, implicit_vr: bool) -> Optional[bytes]:
    """``ds`` in implicit or explicit VR little endian, or None when it is not flat.

    Flat: every element has a text, UI or binary-number VR, and text values are ASCII
    (then every DICOM character set writes the same bytes). The output is what
    ``pydicom.filewriter.write_dataset`` writes for the same data set.
    """
    elements = _elements_of(ds)
    parts: List[bytes] = []
    append = parts.append
    for tag in sorted(elements, key=int):  # int keys: compared in C
        elem = elements[tag]
        vr = elem.VR
        value = elem.value
        if elem.is_raw:
            if vr is None:  # read in implicit VR
                vr = _dictionary_vr(tag)
            raw = _raw_text_bytes(vr, value)
            if raw is None:
                # Converted as get_item and pydicom's writer would (a deferred value
                # is read): the Dataset keeps the converted element.
                elem = ds[tag]
                vr = elem.VR
                raw = _value_bytes(vr, elem.value)
        elif type(value) in _SINGLE_TEXTS and vr in _PADDING:
            # The common case of a match built by a handler, without a call.
            text = str(value)
            if not text.isascii():
                return None
            raw = text.encode('ascii')
            if len(raw) & 1:
                raw += _PADDING[vr]
        else:
            raw = _value_bytes(vr, value)
        if raw is None:
            return None
        length = len(raw)
        if implicit_vr:
            append(_IMPLICIT_HEADER.pack(tag >> 16, tag & 0xFFFF, length))
        elif vr in _LONG_VRS:
            append(_EXPLICIT_LONG.pack(tag >> 16, tag & 0xFFFF, _VR_BYTES[vr], 0, length))
        elif length <= 0xFFFF:
            append(_EXPLICIT_SHORT.pack(tag >> 16, tag & 0xFFFF, _VR_BYTES[vr], length))
        else:
            return None  # pydicom writes it as UN (PS3.5 6.2.2)
        append(raw)
    return b''.join(parts)


# -- reading flat data sets ------------------------------------------------------------

_VR_NAMES = {vr.encode('ascii'): vr for vr in _LONG_VRS | _SHORT_VRS}
_LENGTH = struct.Struct('<L')
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SPECIFIC_CHARACTER_SET = 0x00080005


def _dataset_blueprint(implicit_vr: bool):
    """What a new Dataset read in implicit or explicit VR little endian holds, for
    ``_new_dataset`` to make one from; None when pydicom's Dataset is not made the way
    this expects (then ``Dataset()`` is called).

    ``Dataset()`` and ``set_original_encoding`` cost more than reading a whole
    identifier: they set a dozen attributes through ``Dataset.__setattr__``. A copy
    of such a Dataset's attributes, with fresh containers and the caller's elements,
    is the same object. Returns ``(attributes, names of the containers to copy, name
    of the elements)``.
    """
    elements: dict = {}
    template = Dataset(elements)
    template.set_original_encoding(implicit_vr, True, default_encoding)
    attributes = dict(vars(template))
    holder = [name for name, value in attributes.items() if value is elements]
    containers = tuple(name for name, value in attributes.items()
                       if type(value) in (dict, list, set) and value is not elements)
    others_plain = all(value is None or type(value) in (bool, int, float, str, tuple)
                       for name, value in attributes.items()
                       if name not in containers and value is not elements)
    if len(holder) != 1 or not others_plain:
        return None
    return attributes, containers, holder[0]


_BLUEPRINTS = {implicit_vr: _dataset_blueprint(implicit_vr) for implicit_vr in (True, False)}


def _elements_of(ds: Dataset) -> dict:
    """``ds``'s own ``{tag: element}`` dict, elements as they are (raw or not): the
    attribute a Dataset keeps the dict given to ``Dataset()`` in (``_dataset_blueprint``
    found which), else one made through ``get_item``."""
    blueprint = _BLUEPRINTS[True]
    elements = getattr(ds, blueprint[2], None) if blueprint is not None else None
    if type(elements) is not dict:
        elements = {tag: ds.get_item(tag) for tag in ds.keys()}
    return elements


def _new_dataset(elements: dict, implicit_vr: bool) -> Dataset:
    """``Dataset(elements)`` read in implicit or explicit VR little endian with the
    default character set, made without running Dataset's own code (see above)."""
    blueprint = _BLUEPRINTS[implicit_vr]
    if blueprint is None:
        ds = Dataset(elements)
        ds.set_original_encoding(implicit_vr, True, default_encoding)
        return ds
    attributes, containers, holder = blueprint
    ds = Dataset.__new__(Dataset)
    state = attributes.copy()
    for name in containers:
        state[name] = state[name].copy()
    state[holder] = elements
    vars(ds).update(state)
    return ds


@functools.lru_cache(maxsize=32)
def _character_sets(vr: Optional[str], value: Optional[bytes]) -> Tuple[str, ...]:
    """The Python encodings a raw (0008,0005) names, as pydicom's reader works them out
    (kept: the conversion costs more than reading the identifier)."""
    try:
        from pydicom.dataelem import convert_raw_data_element as to_element
    except ImportError:  # pydicom 2
        from pydicom.dataelem import DataElement_from_raw as to_element
    elem = RawDataElement(BaseTag(_SPECIFIC_CHARACTER_SET), vr, len(value or b''), value,
                          0, vr is None, True)
    return tuple(convert_encodings(to_element(elem).value))


# Empty values as pydicom's reader makes them (they depend on its configuration).
_EMPTY_VALUES: Dict[Tuple[Optional[str], bool], Optional[bytes]] = {}


def _empty_value(vr: Optional[str]) -> Optional[bytes]:
    key = (vr, config.use_none_as_empty_text_VR_value)
    value = _EMPTY_VALUES.get(key, _EMPTY_VALUES)
    if value is _EMPTY_VALUES:
        value = _EMPTY_VALUES[key] = empty_value_for_VR(vr, raw=True)
    return value


# The fields of a RawDataElement after the seven read here (is_raw, ...), at their
# defaults: the tuple is made without its generated __new__, which costs as much as
# the rest of reading the element.
_RAW_DEFAULTS = RawDataElement(BaseTag(0), None, 0, None, 0, True, True)[7:]

# The tags read so far as pydicom's keys (BaseTag), made once: identifiers repeat a
# few dozen tags thousands of times. Bounded: a peer may send any tags.
_BASE_TAGS: Dict[int, BaseTag] = {}
_MAX_BASE_TAGS = 4096


def _base_tag(tag: int) -> BaseTag:
    made = BaseTag(tag)
    if len(_BASE_TAGS) < _MAX_BASE_TAGS:
        _BASE_TAGS[tag] = made
    return made


def decode_flat(raw: Union[bytes, bytearray, memoryview], implicit_vr: bool
                ) -> Optional[Dataset]:
    """The data set ``raw`` encodes in implicit or explicit VR little endian, or None.

    The Dataset is the one pydicom's ``read_dataset`` returns for ``raw``: the same raw
    elements (tag, VR, length, value, offset of the value), in the same order, the same
    original encoding and character set. None, for pydicom's reader to take, when an
    element has an undefined length (PS3.5 7.5: a sequence or an encapsulated value),
    is an item delimiter, has a VR unknown to PS3.5 6.2, or runs past the end of
    ``raw``; when bytes smaller than an element header are left over; and when the
    first element is written in the other VR encoding (pydicom then warns and reads
    the data set in that one). A sequence of defined length stays raw, as pydicom
    leaves it, and is read when first used.
    """
    raw = bytes(raw)
    end = len(raw)
    if end >= 6:
        # PS3.5 7.1.2: an explicit VR is two upper-case letters where implicit VR has
        # the low bytes of a 32-bit length; pydicom looks at the first element alone.
        looks_explicit = 0x40 < raw[4] < 0x5B and 0x40 < raw[5] < 0x5B
        if looks_explicit == implicit_vr:
            return None
    elements = {}
    offset = 0
    implicit_header = _IMPLICIT_HEADER.unpack_from
    explicit_header = _EXPLICIT_SHORT.unpack_from
    tags = _BASE_TAGS
    new_raw, tail = tuple.__new__, _RAW_DEFAULTS
    while offset < end:
        if end - offset < 8:
            return None
        if implicit_vr:
            group, element, length = implicit_header(raw, offset)
            vr = None
            offset += 8
        else:
            group, element, vr_bytes, length = explicit_header(raw, offset)
            vr = _VR_NAMES.get(vr_bytes)
            if vr is None:
                return None
            offset += 8
            if vr in _LONG_VRS:
                # PS3.5 7.1.2: two reserved bytes, then a 32-bit length.
                if end - offset < 4:
                    return None
                length = _LENGTH.unpack_from(raw, offset)[0]
                offset += 4
        if length == _UNDEFINED_LENGTH or group == 0xFFFE or offset + length > end:
            return None
        tag = group << 16 | element
        tag = tags.get(tag) or _base_tag(tag)
        value = raw[offset:offset + length] if length else _empty_value(vr)
        elements[tag] = new_raw(RawDataElement,
                                (tag, vr, length, value, offset, implicit_vr, True) + tail)
        offset += length
    ds = _new_dataset(elements, implicit_vr)
    charset = elements.get(_SPECIFIC_CHARACTER_SET)
    if charset is not None:
        ds.set_original_encoding(implicit_vr, True,
                                 list(_character_sets(charset.VR, charset.value)))
    return ds


def _writer(is_implicit_vr: bool, is_little_endian: bool) -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_implicit_VR = bool(is_implicit_vr)
    fp.is_little_endian = bool(is_little_endian)
    return fp


def encode(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool) -> bytes:
    """``ds`` as the bytes of a data set in the given transfer syntax (PS3.5 7).

    Written by pydicom's ``write_dataset``: elements in tag order, sequences and
    character sets as pydicom handles them, ambiguous VRs resolved when the data set
    was read in implicit VR. No preamble, no file meta group.
    """
    fp = _writer(is_implicit_vr, is_little_endian)
    write_dataset(fp, ds)
    return fp.getvalue()


def decode(rawstr: Union[bytes, bytearray, memoryview], is_implicit_vr: bool,
           is_little_endian: bool) -> Dataset:
    """The data set encoded in ``rawstr`` (no preamble, no file meta group).

    Read by pydicom's ``read_dataset`` to the end of ``rawstr`` (the parameter keeps
    0.9.8's name, for callers that pass it by keyword). Nothing is deferred: the
    returned Dataset holds every value and keeps no reference to a stream; each
    element stays raw until it is first used, as pydicom leaves it.
    """
    return read_dataset(io.BytesIO(bytes(rawstr)), bool(is_implicit_vr),
                        bool(is_little_endian))


def encode_element(elem: Union[DataElement, RawDataElement], is_implicit_vr: bool,
                   is_little_endian: bool) -> bytes:
    """One data element (tag, VR in explicit VR, length, value) as pydicom writes it."""
    fp = _writer(is_implicit_vr, is_little_endian)
    write_data_element(fp, elem)
    return fp.getvalue()


__all__ = ['encode', 'decode', 'encode_element', 'encode_flat', 'decode_flat']
