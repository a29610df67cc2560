"""Small data-set helpers: data sets to bytes and back, and a fast path for queries.

``encode``, ``decode`` and ``encode_element`` are 0.9.8's public helpers, kept with
their signatures and behaviour: pydicom's writer and reader for a data set (or one
element) in the transfer syntax given by ``is_implicit_vr`` and ``is_little_endian``,
without preamble or file meta.

C-FIND identifiers and their matches (PS3.4 C.4.1) are a handful of short text
elements, sent by the thousand. Like command sets (``dimse``), they get a fast path
of their own in little-endian transfer syntaxes: ``encode_flat`` writes a data set of
plain elements with ASCII values in one pass, six times faster than pydicom's general
writer. Anything else (a sequence, a non-ASCII value, binary data) returns None and
the caller uses pydicom's writer, which stays the reference. (Reading needs no fast
path: pydicom's reader leaves values raw until they are used.)
"""

from __future__ import annotations

import io
import struct
from typing import List, Optional, Union

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import PersonName

# Text VRs padded with a space to even length, and UI padded with NUL (PS3.5 6.2).
_TEXT_VRS = frozenset(('AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM',
                       'UC', 'UR', 'UT', 'IS', 'DS'))
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
    parts: List[bytes] = []
    append = parts.append
    for tag in sorted(ds.keys(), key=int):  # int keys: compared in C
        elem = ds.get_item(tag)
        if elem.is_raw:
            vr = elem.VR or _dictionary_vr(tag)
            raw = _raw_text_bytes(vr, elem.value)
            if raw is None:
                elem = ds[tag]
                vr = elem.VR
                raw = _value_bytes(vr, elem.value)
        else:
            vr = elem.VR
            raw = _value_bytes(vr, elem.value)
        if raw is None:
            return None
        length = len(raw)
        group, element = tag >> 16, tag & 0xFFFF
        if implicit_vr:
            append(_IMPLICIT_HEADER.pack(group, element, length))
        elif vr in _LONG_VRS:
            append(_EXPLICIT_LONG.pack(group, element, _VR_BYTES[vr], 0, length))
        elif length <= 0xFFFF:
            append(_EXPLICIT_SHORT.pack(group, element, _VR_BYTES[vr], length))
        else:
            return None  # pydicom writes it as UN (PS3.5 6.2.2)
        append(raw)
    return b''.join(parts)


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


__all__ = ['encode', 'decode', 'encode_element', 'encode_flat']
