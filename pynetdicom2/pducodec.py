"""The bytes under every PDU, item and sub-item of the upper layer (PS3.8 9.3, Annex D).

A bounded reader whose errors name the byte offset, the type/reserved/length item
header, exact reads from a stream, the encoders' range and UID checks, and the value
object base with equality and repr. ``pdu``, ``pduitems`` and ``userdataitems`` build on
it. Every A-ASSOCIATE PDU of every association goes through here, so the names in
messages are built only when an error is raised.
"""

from __future__ import annotations

import re
import struct
from typing import Any, BinaryIO, ClassVar, Iterable, Optional

from pynetdicom2.exceptions import PDUProcessingError

__all__ = [
    'ITEM_HEADER', 'field_name', 'printable_ascii', 'as_byte_view', 'ByteReader',
    'read_item_length', 'read_item_header', 'stream_offset', 'read_exact',
    'read_stream_item', 'check_int', 'encode_uid', 'too_long', 'pack_length', 'short_repr',
    'WireObject', 'decode_item', 'decode_value', 'TypedItem',
]

# Every item and sub-item of the A-ASSOCIATE PDUs starts with type, reserved, length (PS3.8 9.3.2).
ITEM_HEADER = struct.Struct('>BBH')
_U16 = struct.Struct('>H')
_U32 = struct.Struct('>I')

# Streams are read in chunks of this size, so a huge declared length never allocates
# more than what the stream really holds plus one chunk.
_READ_CHUNK = 64 * 1024

# PS3.5 9.1: a UID is 1..64 characters, digits and '.' only. Received, it may carry the
# one NUL that pads an odd length (some peers send it inside items): the group is the UID.
_UID_STR = re.compile(r'[0-9.]{1,64}')
_UID_BYTES = re.compile(rb'([0-9.]{1,64})\x00?')

# The UIDs of an association are few (syntaxes, SOP classes, implementation UIDs) and
# the same on every association: each is checked once, then looked up, both ways.
# Bounded, so that UIDs made up without end cannot grow them without end.
_ENCODED_UIDS: dict[str, bytes] = {}
_DECODED_UIDS: dict[bytes, str] = {}
_KNOWN_UIDS_MAX = 1024


def field_name(what: str, item: str = '') -> str:
    """The name a message gives a field: ``what``, after its ``item``'s label if any.

    Decoders and encoders pass the two apart, so the name is only built for an error.
    """
    return f'{item} {what}' if item else what


# Lenient text fields: each byte outside printable ASCII reads as '?'.
_PRINTABLE_OR_QUESTION_MARK = bytes(b if 0x20 <= b < 0x7F else 0x3F for b in range(256))


def printable_ascii(raw: bytes) -> str:
    """``raw`` as text, each byte outside printable ASCII read as '?' (lenient fields)."""
    return raw.translate(_PRINTABLE_OR_QUESTION_MARK).decode('ascii')


def as_byte_view(data: Any) -> memoryview:
    """``data`` (bytes, bytearray, memoryview) as a flat memoryview of unsigned bytes."""
    try:
        view = memoryview(data)
    except TypeError as exc:
        raise PDUProcessingError(
            f'cannot decode {type(data).__name__}: a bytes-like object is needed') from exc
    if view.format != 'B' or view.ndim != 1:
        try:
            view = view.cast('B')
        except TypeError:  # not C-contiguous
            view = memoryview(view.tobytes())
    return view


class ByteReader:
    """A bounded cursor over a memoryview; every read is checked against what is left.

    ``base`` is added to positions in error messages, so offsets name the byte in the
    PDU (or stream) being decoded; ``context`` says which one. Each read names its
    field by ``what`` and, optionally, the ``item`` it belongs to (see ``field_name``).
    """

    __slots__ = ('view', 'pos', 'end', 'base', 'context')

    def __init__(self, view: memoryview, pos: int = 0, end: Optional[int] = None,
                 base: int = 0, context: str = 'buffer') -> None:
        self.view = view
        self.pos = pos
        self.end = len(view) if end is None else end
        self.base = base
        self.context = context

    @property
    def remaining(self) -> int:
        """Bytes left before this reader's end."""
        return self.end - self.pos

    @property
    def offset(self) -> int:
        """Current position as an offset for messages."""
        return self.base + self.pos

    def error(self, message: str, at: Optional[int] = None) -> PDUProcessingError:
        """A PDUProcessingError naming ``message`` and the byte offset (to raise)."""
        offset = self.offset if at is None else at
        return PDUProcessingError(f'{message} (at byte offset {offset} of the {self.context})')

    def _short(self, n: int, what: str, item: str) -> PDUProcessingError:
        return self.error(f'{field_name(what, item)}: {n} bytes needed, only '
                          f'{self.end - self.pos} left')

    def need(self, n: int, what: str, item: str = '') -> None:
        """Raise unless ``n`` bytes are left."""
        if n > self.end - self.pos:
            raise self._short(n, what, item)

    # The reads below test the bound themselves: they run for every field of every PDU.
    def u8(self, what: str, item: str = '') -> int:
        pos = self.pos
        if pos >= self.end:
            raise self._short(1, what, item)
        self.pos = pos + 1
        return self.view[pos]

    def u16(self, what: str, item: str = '') -> int:
        pos = self.pos
        if pos + 2 > self.end:
            raise self._short(2, what, item)
        self.pos = pos + 2
        return _U16.unpack_from(self.view, pos)[0]

    def u32(self, what: str, item: str = '') -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise self._short(4, what, item)
        self.pos = pos + 4
        return _U32.unpack_from(self.view, pos)[0]

    def take(self, n: int, what: str, item: str = '') -> memoryview:
        """The next ``n`` bytes as a zero-copy slice."""
        pos = self.pos
        if n > self.end - pos:
            raise self._short(n, what, item)
        self.pos = pos + n
        return self.view[pos:pos + n]

    def skip(self, n: int, what: str, item: str = '') -> None:
        if n > self.end - self.pos:
            raise self._short(n, what, item)
        self.pos += n

    def sub(self, n: int, what: str, item: str = '') -> ByteReader:
        """A reader over the next ``n`` bytes only; this reader moves past them."""
        pos = self.pos
        if n > self.end - pos:
            raise self._short(n, what, item)
        self.pos = pos + n
        return ByteReader(self.view, pos, pos + n, self.base, self.context)

    def uid(self, n: int, what: str, item: str = '') -> str:
        """The next ``n`` bytes as a UID (PS3.5 9.1), validated (once per UID met)."""
        pos = self.pos
        if n > self.end - pos:
            raise self._short(n, what, item)
        self.pos = pos + n
        raw = self.view[pos:pos + n].tobytes()
        uid = _DECODED_UIDS.get(raw)
        if uid is not None:
            return uid
        match = _UID_BYTES.fullmatch(raw)
        if match is None:
            if raw.endswith(b'\x00'):
                raw = raw[:-1]
            raise self.error(f'{field_name(what, item)}: invalid UID {raw[:80]!r} (1 to 64 '
                             f'digits and dots expected)', self.base + pos)
        uid = match[1].decode('ascii')
        if len(_DECODED_UIDS) < _KNOWN_UIDS_MAX:
            _DECODED_UIDS[raw] = uid
        return uid


def read_item_length(reader: ByteReader, what: str, item: str = '') -> tuple[int, int]:
    """Read a 4-byte item header; return the item type and its value's length.

    The length is checked against what is left, and the reader is left at the value.
    ``what`` (after ``item``'s label) names the item in errors.
    """
    pos = reader.pos
    end = reader.end
    if pos + 4 > end:
        raise reader.error(f'{field_name(what, item)} header: 4 bytes needed, only '
                           f'{end - pos} left')
    item_type, _reserved, length = ITEM_HEADER.unpack_from(reader.view, pos)
    if pos + 4 + length > end:
        raise reader.error(f'{field_name(what, item)} of type 0x{item_type:02X} declares '
                           f'{length} bytes, only {end - pos - 4} left in its parent',
                           reader.base + pos)
    reader.pos = pos + 4
    return item_type, length


def read_item_header(reader: ByteReader, what: str, item: str = '') -> tuple[int, ByteReader]:
    """Read a 4-byte item header; return the item type and a reader bounded to its value.

    The reader moves past the item. ``what`` (after ``item``'s label) names the item in
    errors.
    """
    item_type, length = read_item_length(reader, what, item)
    start = reader.pos
    reader.pos = start + length
    return item_type, ByteReader(reader.view, start, start + length, reader.base,
                                 reader.context)


def stream_offset(stream: BinaryIO) -> int:
    """The stream's position, or 0 when it cannot tell."""
    try:
        return stream.tell()
    except (AttributeError, OSError, ValueError):
        return 0


def read_exact(stream: BinaryIO, n: int, what: str, offset: int) -> bytes:
    """Exactly ``n`` bytes from ``stream``, read in bounded chunks, or PDUProcessingError."""
    chunks = []
    missing = n
    try:
        while missing:
            chunk = stream.read(min(missing, _READ_CHUNK))
            if not chunk:
                raise PDUProcessingError(
                    f'{what}: {n} bytes needed, only {n - missing} available '
                    f'(at byte offset {offset} of the stream)')
            chunks.append(chunk)
            missing -= len(chunk)
    except (OSError, ValueError) as exc:
        raise PDUProcessingError(f'{what}: cannot read the stream: {exc}') from exc
    return b''.join(chunks)


def read_stream_item(stream: BinaryIO, what: str) -> tuple[int, ByteReader]:
    """Read one type/reserved/length item from ``stream``; return type and value reader."""
    start = stream_offset(stream)
    header = read_exact(stream, 4, f'{what} header', start)
    item_type, _reserved, length = ITEM_HEADER.unpack(header)
    value = read_exact(stream, length, f'{what} of type 0x{item_type:02X} '
                       f'({length} bytes declared)', start + 4)
    return item_type, ByteReader(memoryview(value), base=start + 4, context='stream')


def check_int(value: Any, low: int, high: int, what: str, item: str = '') -> int:
    """``value`` if it is an int in ``low..high``, else PDUProcessingError (for encoders)."""
    if not isinstance(value, int) or not low <= value <= high:
        raise PDUProcessingError(f'{field_name(what, item)} must be an integer '
                                 f'{low}..{high}, not {value!r}')
    return value


def encode_uid(uid: Any, what: str, item: str = '') -> bytes:
    """A UID's bytes for an item (PS3.5 9.1), unpadded as DICOM peers send them."""
    if isinstance(uid, str):
        encoded = _ENCODED_UIDS.get(uid)
        if encoded is not None:
            return encoded
        if _UID_STR.fullmatch(uid):
            encoded = uid.encode('ascii')
            if len(_ENCODED_UIDS) < _KNOWN_UIDS_MAX:
                _ENCODED_UIDS[uid] = encoded
            return encoded
    raise PDUProcessingError(f'{field_name(what, item)}: invalid UID {uid!r} (1 to 64 '
                             f'digits and dots expected)')


def too_long(length: int, high: int, what: str, item: str = '') -> PDUProcessingError:
    """The error (to raise) for a ``length`` above what its length field holds."""
    return PDUProcessingError(f'{field_name(what, item)} is {length} bytes long; the '
                              f'length field holds at most {high}')


def pack_length(length: int, high: int, what: str, item: str = '') -> int:
    """Check an encoded length field against its maximum."""
    if length > high:
        raise too_long(length, high, what, item)
    return length


def short_repr(value: Any) -> str:
    """repr of a value, with long byte strings cut short."""
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) > 32:
        return f'<{len(value)} bytes: {bytes(value[:16])!r}...>'
    return repr(value)


class WireObject:
    """Equality by type and attributes, and a readable repr, for every wire object."""

    _label: ClassVar[str] = 'item'

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable value objects

    def _repr_fields(self) -> Iterable[tuple[str, str]]:
        return ((name, short_repr(value)) for name, value in self.__dict__.items())

    def __repr__(self) -> str:
        fields = ', '.join(f'{name}={text}' for name, text in self._repr_fields())
        return f'{type(self).__name__}({fields})'


def decode_item(cls: Any, reader: ByteReader, item_type: int, length: int) -> Any:
    """Decode with ``cls`` the item value of ``length`` bytes at the reader's position.

    The reader is narrowed to the value while ``cls`` reads it, rather than given a
    reader of its own (building one per item cost more than reading most items), and
    moves past it; the value must be used exactly. After an error the reader is unusable.
    """
    end = reader.end
    value_end = reader.end = reader.pos + length
    obj = cls._decode_value(reader, item_type)
    if reader.pos < value_end:
        raise reader.error(f'{cls._label}: {value_end - reader.pos} bytes left over after '
                           f'its fields (item length disagrees with its content)')
    reader.end = end
    return obj


def decode_value(cls: Any, reader: ByteReader, item_type: int) -> Any:
    """Decode an item's value with ``cls`` and check that its length was used exactly."""
    return decode_item(cls, reader, item_type, reader.end - reader.pos)


class TypedItem(WireObject):
    """An item laid out as type, reserved byte, 2-byte length, value (PS3.8 9.3.2).

    The base of the user information sub-items here and of the A-ASSOCIATE items in
    ``pduitems``; subclasses give ``_encode_value`` and ``_decode_value``.
    """

    item_type: ClassVar[Optional[int]] = None

    def _encode_value(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> Any:
        raise NotImplementedError

    @property
    def item_length(self) -> int:
        """The item's length field: the bytes after its 4-byte header (as 0.9.8)."""
        return len(self._encode_value())

    def encode(self) -> bytes:
        """The item's bytes, header included."""
        value = self._encode_value()
        if len(value) > 0xFFFF:
            raise too_long(len(value), 0xFFFF, self._label)
        return ITEM_HEADER.pack(self.item_type, 0, len(value)) + value

    @classmethod
    def decode(cls, stream: BinaryIO) -> Any:
        """Read one item of this class from the stream's current position."""
        item_type, reader = read_stream_item(stream, cls._label)
        if item_type != cls.item_type:
            raise reader.error(f'{cls._label}: item type 0x{cls.item_type:02X} expected, '
                              f'got 0x{item_type:02X}', reader.offset - 4)
        return decode_value(cls, reader, item_type)
