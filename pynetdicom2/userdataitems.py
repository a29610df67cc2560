"""User information sub-items of A-ASSOCIATE-RQ/AC (PS3.8 Annex D, PS3.7 Annex D.3.3).

Each sub-item is a value object with ``encode()`` and a classmethod ``decode(stream)``.
The module also holds the bounded byte reader and the UID checks that ``pdu.py`` shares.
"""

from __future__ import annotations

import logging
import re
import struct
from typing import Any, BinaryIO, ClassVar, Iterable, Optional, Union

from pynetdicom2.exceptions import PDUProcessingError

__all__ = [
    'MAXIMUM_LENGTH_SUB_ITEM', 'IMPLEMENTATION_CLASS_UID_SUB_ITEM',
    'ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM', 'SCP_SCU_ROLE_SELECTION_SUB_ITEM',
    'IMPLEMENTATION_VERSION_NAME_SUB_ITEM', 'SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM',
    'SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM', 'USER_IDENTITY_NEGOTIATION_SUB_ITEM_RQ',
    'USER_IDENTITY_NEGOTIATION_SUB_ITEM_AC',
    'SubItem', 'MaximumLengthSubItem', 'ImplementationClassUIDSubItem',
    'AsynchronousOperationsWindowSubItem', 'ScpScuRoleSelectionSubItem',
    'ImplementationVersionNameSubItem', 'SOPClassExtendedNegotiationSubItem',
    'SOPClassCommonExtendedNegotiationSubItem', 'UserIdentityNegotiationSubItem',
    'UserIdentityNegotiationSubItemAc', 'GenericUserDataSubItem', 'SUB_ITEM_TYPES',
    'decode_user_data_item',
]

logger = logging.getLogger(__name__)

# Sub-item types, PS3.8 D.1 and PS3.7 D.3.3.
MAXIMUM_LENGTH_SUB_ITEM = 0x51
IMPLEMENTATION_CLASS_UID_SUB_ITEM = 0x52
ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM = 0x53
SCP_SCU_ROLE_SELECTION_SUB_ITEM = 0x54
IMPLEMENTATION_VERSION_NAME_SUB_ITEM = 0x55
SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM = 0x56
SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM = 0x57
USER_IDENTITY_NEGOTIATION_SUB_ITEM_RQ = 0x58
USER_IDENTITY_NEGOTIATION_SUB_ITEM_AC = 0x59

# Every item and sub-item of the A-ASSOCIATE PDUs starts with type, reserved, length (PS3.8 9.3.2).
ITEM_HEADER = struct.Struct('>BBH')
_U16 = struct.Struct('>H')
_U32 = struct.Struct('>I')

# Streams are read in chunks of this size, so a huge declared length never allocates
# more than what the stream really holds plus one chunk.
_READ_CHUNK = 64 * 1024

# PS3.5 9.1: a UID is 1..64 characters, digits and '.' only.
_UID_STR = re.compile(r'[0-9.]{1,64}')
_UID_BYTES = re.compile(rb'[0-9.]{1,64}')


# --- shared wire helpers (also used by pdu.py) --------------------------------------------

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
    PDU (or stream) being decoded; ``context`` says which one.
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

    def need(self, n: int, what: str) -> None:
        """Raise unless ``n`` bytes are left."""
        if n > self.end - self.pos:
            raise self.error(f'{what}: {n} bytes needed, only {self.end - self.pos} left')

    def u8(self, what: str) -> int:
        self.need(1, what)
        value = self.view[self.pos]
        self.pos += 1
        return value

    def u16(self, what: str) -> int:
        self.need(2, what)
        value = _U16.unpack_from(self.view, self.pos)[0]
        self.pos += 2
        return value

    def u32(self, what: str) -> int:
        self.need(4, what)
        value = _U32.unpack_from(self.view, self.pos)[0]
        self.pos += 4
        return value

    def take(self, n: int, what: str) -> memoryview:
        """The next ``n`` bytes as a zero-copy slice."""
        self.need(n, what)
        start = self.pos
        self.pos += n
        return self.view[start:self.pos]

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def sub(self, n: int, what: str) -> ByteReader:
        """A reader over the next ``n`` bytes only; this reader moves past them."""
        self.need(n, what)
        child = ByteReader(self.view, self.pos, self.pos + n, self.base, self.context)
        self.pos += n
        return child

    def uid(self, n: int, what: str) -> str:
        """The next ``n`` bytes as a UID (PS3.5 9.1), validated."""
        at = self.offset
        raw = bytes(self.take(n, what))
        # PS3.5 9.1 pads an odd-length UID with one NUL; some peers send it inside items.
        if raw.endswith(b'\x00'):
            raw = raw[:-1]
        if not _UID_BYTES.fullmatch(raw):
            raise self.error(f'{what}: invalid UID {raw[:80]!r} (1 to 64 digits and dots '
                            f'expected)', at)
        return raw.decode('ascii')


def read_item_header(reader: ByteReader, what: str) -> tuple[int, ByteReader]:
    """Read a 4-byte item header; return the item type and a reader bounded to its value."""
    start = reader.offset
    reader.need(4, f'{what} header')
    item_type, _reserved, length = ITEM_HEADER.unpack_from(reader.view, reader.pos)
    reader.pos += 4
    if length > reader.remaining:
        raise reader.error(f'{what} of type 0x{item_type:02X} declares {length} bytes, only '
                          f'{reader.remaining} left in its parent', start)
    return item_type, reader.sub(length, what)


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


def check_int(value: Any, low: int, high: int, what: str) -> int:
    """``value`` if it is an int in ``low..high``, else PDUProcessingError (for encoders)."""
    if not isinstance(value, int) or not low <= value <= high:
        raise PDUProcessingError(f'{what} must be an integer {low}..{high}, not {value!r}')
    return value


def encode_uid(uid: Any, what: str) -> bytes:
    """A UID's bytes for an item (PS3.5 9.1), unpadded as DICOM peers send them."""
    if not isinstance(uid, str) or not _UID_STR.fullmatch(uid):
        raise PDUProcessingError(f'{what}: invalid UID {uid!r} (1 to 64 digits and dots '
                                 f'expected)')
    return uid.encode('ascii')


def pack_length(length: int, high: int, what: str) -> int:
    """Check an encoded length field against its maximum."""
    if length > high:
        raise PDUProcessingError(f'{what} is {length} bytes long; the length field holds '
                                 f'at most {high}')
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


def decode_value(cls: Any, reader: ByteReader, item_type: int) -> Any:
    """Decode an item's value with ``cls`` and check that its length was used exactly."""
    obj = cls._decode_value(reader, item_type)
    if reader.remaining:
        raise reader.error(f'{cls._label}: {reader.remaining} bytes left over after its '
                          f'fields (item length disagrees with its content)')
    return obj


class TypedItem(WireObject):
    """An item laid out as type, reserved byte, 2-byte length, value (PS3.8 9.3.2).

    The base of the user information sub-items here and of the A-ASSOCIATE items in
    ``pdu.py``; subclasses give ``_encode_value`` and ``_decode_value``.
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
        pack_length(len(value), 0xFFFF, self._label)
        return ITEM_HEADER.pack(self.item_type, 0, len(value)) + value

    @classmethod
    def decode(cls, stream: BinaryIO) -> Any:
        """Read one item of this class from the stream's current position."""
        item_type, reader = read_stream_item(stream, cls._label)
        if item_type != cls.item_type:
            raise reader.error(f'{cls._label}: item type 0x{cls.item_type:02X} expected, '
                              f'got 0x{item_type:02X}', reader.offset - 4)
        return decode_value(cls, reader, item_type)


# --- sub-items -----------------------------------------------------------------------------

class SubItem(TypedItem):
    """Base of the user information sub-items (PS3.8 D.1, PS3.7 D.3.3)."""

    @property
    def total_length(self) -> int:
        """Length of the encoded sub-item, header included."""
        return ITEM_HEADER.size + len(self._encode_value())


class MaximumLengthSubItem(SubItem):
    """Maximum length of the P-DATA-TF PDUs this side receives; 0 is unlimited (PS3.8 D.1)."""

    item_type = MAXIMUM_LENGTH_SUB_ITEM
    _label = 'Maximum Length Sub-Item'

    def __init__(self, maximum_length_received: int) -> None:
        self.maximum_length_received = maximum_length_received

    def _encode_value(self) -> bytes:
        return _U32.pack(check_int(self.maximum_length_received, 0, 0xFFFFFFFF,
                                   'maximum length received'))

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> MaximumLengthSubItem:
        return cls(reader.u32(f'{cls._label} maximum-length-received'))


class ImplementationClassUIDSubItem(SubItem):
    """The UID naming the sender's implementation (PS3.7 D.3.3.2)."""

    item_type = IMPLEMENTATION_CLASS_UID_SUB_ITEM
    _label = 'Implementation Class UID Sub-Item'

    def __init__(self, implementation_class_uid: str) -> None:
        self.implementation_class_uid = implementation_class_uid

    def _encode_value(self) -> bytes:
        return encode_uid(self.implementation_class_uid, self._label)

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> ImplementationClassUIDSubItem:
        return cls(reader.uid(reader.remaining, cls._label))


class AsynchronousOperationsWindowSubItem(SubItem):
    """How many operations may be outstanding each way; 0 is unlimited (PS3.7 D.3.3.3)."""

    item_type = ASYNCHRONOUS_OPERATIONS_WINDOW_SUB_ITEM
    _label = 'Asynchronous Operations Window Sub-Item'

    def __init__(self, max_num_ops_invoked: int, max_num_ops_performed: int) -> None:
        self.max_num_ops_invoked = max_num_ops_invoked
        self.max_num_ops_performed = max_num_ops_performed

    def _encode_value(self) -> bytes:
        return (_U16.pack(check_int(self.max_num_ops_invoked, 0, 0xFFFF,
                                    'maximum number of operations invoked'))
                + _U16.pack(check_int(self.max_num_ops_performed, 0, 0xFFFF,
                                      'maximum number of operations performed')))

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> AsynchronousOperationsWindowSubItem:
        invoked = reader.u16(f'{cls._label} maximum-number-operations-invoked')
        performed = reader.u16(f'{cls._label} maximum-number-operations-performed')
        return cls(invoked, performed)


class ScpScuRoleSelectionSubItem(SubItem):
    """The SCU and SCP roles proposed or accepted for one SOP class (PS3.7 D.3.3.4).

    Roles are 0 (non-support) or 1 (support). They are checked when encoding; a
    received value is kept as it came, for the association layer to judge.
    """

    item_type = SCP_SCU_ROLE_SELECTION_SUB_ITEM
    _label = 'SCP/SCU Role Selection Sub-Item'

    def __init__(self, sop_class_uid: str, scu_role: int, scp_role: int) -> None:
        self.sop_class_uid = sop_class_uid
        self.scu_role = scu_role
        self.scp_role = scp_role

    def _encode_value(self) -> bytes:
        uid = encode_uid(self.sop_class_uid, f'{self._label} SOP class UID')
        return (_U16.pack(len(uid)) + uid
                + bytes((check_int(self.scu_role, 0, 1, 'SCU role'),
                         check_int(self.scp_role, 0, 1, 'SCP role'))))

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> ScpScuRoleSelectionSubItem:
        uid = reader.uid(reader.u16(f'{cls._label} UID-length'), f'{cls._label} SOP class UID')
        scu_role = reader.u8(f'{cls._label} SCU-role')
        scp_role = reader.u8(f'{cls._label} SCP-role')
        return cls(uid, scu_role, scp_role)


class ImplementationVersionNameSubItem(SubItem):
    """A name for the sender's implementation version, 1 to 16 characters (PS3.7 D.3.3.2).

    Checked when encoding (ISO 646 printable characters); decoded leniently, since the
    name is only informative: bytes outside printable ASCII read as '?'.
    """

    item_type = IMPLEMENTATION_VERSION_NAME_SUB_ITEM
    _label = 'Implementation Version Name Sub-Item'

    def __init__(self, implementation_version_name: str) -> None:
        self.implementation_version_name = implementation_version_name

    def _encode_value(self) -> bytes:
        name = self.implementation_version_name
        if (not isinstance(name, str) or not 1 <= len(name) <= 16
                or any(not ' ' <= char <= '~' for char in name)):
            raise PDUProcessingError(f'{self._label}: 1 to 16 printable ASCII characters '
                                     f'expected, not {name!r}')
        return name.encode('ascii')

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> ImplementationVersionNameSubItem:
        raw = bytes(reader.take(reader.remaining, cls._label))
        return cls(''.join(chr(b) if 0x20 <= b < 0x7F else '?' for b in raw))


class SOPClassExtendedNegotiationSubItem(SubItem):
    """Service-class-specific application information for one SOP class (PS3.7 D.3.3.5)."""

    item_type = SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM
    _label = 'SOP Class Extended Negotiation Sub-Item'

    def __init__(self, sop_class_uid: str, app_info: bytes) -> None:
        self.sop_class_uid = sop_class_uid
        self.app_info = app_info

    def _encode_value(self) -> bytes:
        uid = encode_uid(self.sop_class_uid, f'{self._label} SOP class UID')
        if not isinstance(self.app_info, (bytes, bytearray)):
            raise PDUProcessingError(f'{self._label}: app_info must be bytes, '
                                     f'not {type(self.app_info).__name__}')
        return _U16.pack(len(uid)) + uid + bytes(self.app_info)

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> SOPClassExtendedNegotiationSubItem:
        uid = reader.uid(reader.u16(f'{cls._label} SOP-class-uid-length'),
                         f'{cls._label} SOP class UID')
        return cls(uid, bytes(reader.take(reader.remaining, cls._label)))


class SOPClassCommonExtendedNegotiationSubItem(SubItem):
    """A SOP class's service class and related general SOP classes (PS3.7 D.3.3.6).

    Sub-item version 0; ``related_general_sop_class_uids`` is kept as a tuple.
    """

    item_type = SOP_CLASS_COMMON_EXTENDED_NEGOTIATION_SUB_ITEM
    _label = 'SOP Class Common Extended Negotiation Sub-Item'

    def __init__(self, sop_class_uid: str, service_class_uid: str,
                 related_general_sop_class_uids: Iterable[str] = ()) -> None:
        self.sop_class_uid = sop_class_uid
        self.service_class_uid = service_class_uid
        self.related_general_sop_class_uids = tuple(related_general_sop_class_uids)

    def _encode_value(self) -> bytes:
        sop = encode_uid(self.sop_class_uid, f'{self._label} SOP class UID')
        service = encode_uid(self.service_class_uid, f'{self._label} service class UID')
        related = b''.join(
            _U16.pack(len(uid)) + uid for uid in
            (encode_uid(u, f'{self._label} related general SOP class UID')
             for u in self.related_general_sop_class_uids))
        pack_length(len(related), 0xFFFF, f'{self._label} related general SOP classes')
        return (_U16.pack(len(sop)) + sop + _U16.pack(len(service)) + service
                + _U16.pack(len(related)) + related)

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> SOPClassCommonExtendedNegotiationSubItem:
        # The header's second byte is the sub-item version (0); later versions are
        # read with the version 0 layout, which they extend.
        sop = reader.uid(reader.u16(f'{cls._label} SOP-class-uid-length'),
                         f'{cls._label} SOP class UID')
        service = reader.uid(reader.u16(f'{cls._label} service-class-uid-length'),
                             f'{cls._label} service class UID')
        related_reader = reader.sub(
            reader.u16(f'{cls._label} related-general-sop-class-identification-length'),
            f'{cls._label} related general SOP class identification')
        related = []
        while related_reader.remaining:
            related.append(related_reader.uid(
                related_reader.u16(f'{cls._label} related-general-sop-class-uid-length'),
                f'{cls._label} related general SOP class UID'))
        return cls(sop, service, related)


def _identity_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode('utf-8')
        except UnicodeEncodeError as exc:
            raise PDUProcessingError(f'{what} cannot be encoded as UTF-8') from exc
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise PDUProcessingError(f'{what} must be str or bytes, not {type(value).__name__}')


def _stored_identity(value: Any) -> Any:
    """A user-identity field as it is kept: its bytes on the wire (UTF-8 for ``str``).

    Kept as bytes whatever was given, so an item and its decoded copy hold the same
    thing (0.9.7 and 0.9.8 did the same). A value that has no bytes (not UTF-8
    encodable, not str or bytes) is kept as given; ``encode`` then says what is wrong.
    """
    if isinstance(value, str):
        try:
            return value.encode('utf-8')
        except UnicodeEncodeError:
            return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _identity_text(value: Any) -> Any:
    """A kept user-identity field as read: ``str`` when it is UTF-8, else the bytes.

    As 0.9.8: a user name or password reads as ``str`` (scripts compare it with
    ``'alice'``); an opaque credential (a Kerberos ticket) reads as ``bytes``.
    """
    if isinstance(value, bytes):
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError:
            return value
    return value


def _masked(value: Any) -> str:
    return "'***'" if value else repr(value)


class UserIdentityNegotiationSubItem(SubItem):
    """The requester's identity: user name, password, Kerberos, SAML or JWT (PS3.7 D.3.3.7.1).

    ``user_identity_type``: 1 username, 2 username and passcode, 3 Kerberos ticket,
    4 SAML assertion, 5 JSON web token. The fields may be given as ``str`` (sent as
    UTF-8) or ``bytes``; they are kept as the bytes sent, and read, as in 0.9.8, as
    ``str`` when those bytes are UTF-8 (``'alice'``) and as ``bytes`` otherwise (a
    Kerberos ticket). So ``UserIdentityNegotiationSubItem('joe')`` and its decoded
    copy are equal attribute for attribute. ``repr`` masks the secrets: the secondary
    field always, the primary field for types 3, 4 and 5.
    """

    item_type = USER_IDENTITY_NEGOTIATION_SUB_ITEM_RQ
    _label = 'User Identity Negotiation Sub-Item'

    def __init__(self, primary_field: Union[str, bytes], secondary_field: Union[str, bytes] = '',
                 user_identity_type: int = 2, positive_response_req: int = 0) -> None:
        self.primary_field = primary_field
        self.secondary_field = secondary_field
        self.user_identity_type = user_identity_type
        self.positive_response_req = positive_response_req

    @property
    def primary_field(self) -> Union[str, bytes]:
        """User name, Kerberos ticket, SAML assertion or JWT (``user_identity_type``)."""
        return _identity_text(self._primary_field)

    @primary_field.setter
    def primary_field(self, value: Union[str, bytes]) -> None:
        self._primary_field = _stored_identity(value)

    @property
    def secondary_field(self) -> Union[str, bytes]:
        """The passcode of type 2; empty for the other types."""
        return _identity_text(self._secondary_field)

    @secondary_field.setter
    def secondary_field(self, value: Union[str, bytes]) -> None:
        self._secondary_field = _stored_identity(value)

    def _encode_value(self) -> bytes:
        identity_type = check_int(self.user_identity_type, 0, 0xFF, 'user identity type')
        response = check_int(self.positive_response_req, 0, 1, 'positive response requested')
        primary = _identity_bytes(self._primary_field, 'user identity primary field')
        secondary = _identity_bytes(self._secondary_field, 'user identity secondary field')
        pack_length(len(primary), 0xFFFF, 'user identity primary field')
        pack_length(len(secondary), 0xFFFF, 'user identity secondary field')
        if secondary and identity_type != 2:
            # PS3.7 D.3.3.7.1: the secondary field is non-empty only for type 2.
            raise PDUProcessingError(f'user identity type {identity_type} takes no '
                                     f'secondary field')
        return (bytes((identity_type, response)) + _U16.pack(len(primary)) + primary
                + _U16.pack(len(secondary)) + secondary)

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> UserIdentityNegotiationSubItem:
        identity_type = reader.u8(f'{cls._label} user-identity-type')
        response = reader.u8(f'{cls._label} positive-response-requested')
        primary = bytes(reader.take(reader.u16(f'{cls._label} primary-field-length'),
                                    f'{cls._label} primary field'))
        secondary = bytes(reader.take(reader.u16(f'{cls._label} secondary-field-length'),
                                      f'{cls._label} secondary field'))
        return cls(primary, secondary, identity_type, response)

    def _repr_fields(self) -> Iterable[tuple[str, str]]:
        secret_primary = self.user_identity_type in (3, 4, 5)
        return [('primary_field', _masked(self.primary_field) if secret_primary
                 else short_repr(self.primary_field)),
                ('secondary_field', _masked(self.secondary_field)),
                ('user_identity_type', repr(self.user_identity_type)),
                ('positive_response_req', repr(self.positive_response_req))]


class UserIdentityNegotiationSubItemAc(SubItem):
    """The acceptor's answer to a user identity request (PS3.7 D.3.3.7.2).

    ``server_response`` (a Kerberos server ticket, a SAML response, a JWT, or empty)
    may be given as ``str`` (sent as UTF-8) or ``bytes``; as in 0.9.8 it is kept as
    bytes and reads as ``str`` when it is UTF-8, else as ``bytes``. ``repr`` shows
    only its length.
    """

    item_type = USER_IDENTITY_NEGOTIATION_SUB_ITEM_AC
    _label = 'User Identity Negotiation Sub-Item (AC)'

    def __init__(self, server_response: Union[str, bytes]) -> None:
        self.server_response = server_response

    @property
    def server_response(self) -> Union[str, bytes]:
        """What the acceptor sends back: ``str`` when UTF-8, else ``bytes``."""
        return _identity_text(self._server_response)

    @server_response.setter
    def server_response(self, value: Union[str, bytes]) -> None:
        self._server_response = _stored_identity(value)

    def _encode_value(self) -> bytes:
        response = _identity_bytes(self._server_response, 'user identity server response')
        pack_length(len(response), 0xFFFF, 'user identity server response')
        return _U16.pack(len(response)) + response

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> UserIdentityNegotiationSubItemAc:
        return cls(bytes(reader.take(reader.u16(f'{cls._label} server-response-length'),
                                     f'{cls._label} server response')))

    def _repr_fields(self) -> Iterable[tuple[str, str]]:
        response = self._server_response
        size = len(response) if isinstance(response, (bytes, str)) else '?'
        return [('server_response', f'<{size} bytes>')]


class GenericUserDataSubItem(SubItem):
    """A sub-item of a type this library does not know; its value is kept as raw bytes.

    PS3.7 D.3.3 lets an implementation ignore sub-items it does not recognize; keeping
    them lets the association layer see and log them.
    """

    _label = 'User Data Sub-Item'

    def __init__(self, item_type: int, user_data: bytes) -> None:
        self.item_type = item_type  # type: ignore[misc]  # per instance, unlike the others
        self.user_data = user_data

    def _encode_value(self) -> bytes:
        check_int(self.item_type, 0, 0xFF, 'item type')
        if not isinstance(self.user_data, (bytes, bytearray)):
            raise PDUProcessingError(f'{self._label}: user_data must be bytes, '
                                     f'not {type(self.user_data).__name__}')
        return bytes(self.user_data)

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> GenericUserDataSubItem:
        return cls(item_type, bytes(reader.take(reader.remaining, cls._label)))

    @classmethod
    def decode(cls, stream: BinaryIO) -> GenericUserDataSubItem:
        """Read one sub-item of any type from the stream, keeping its value as bytes."""
        item_type, reader = read_stream_item(stream, cls._label)
        return decode_value(cls, reader, item_type)


SUB_ITEM_TYPES: dict[int, type[SubItem]] = {
    cls.item_type: cls for cls in (  # type: ignore[misc]
        MaximumLengthSubItem, ImplementationClassUIDSubItem,
        AsynchronousOperationsWindowSubItem, ScpScuRoleSelectionSubItem,
        ImplementationVersionNameSubItem, SOPClassExtendedNegotiationSubItem,
        SOPClassCommonExtendedNegotiationSubItem, UserIdentityNegotiationSubItem,
        UserIdentityNegotiationSubItemAc)
}


def parse_user_data_item(reader: ByteReader) -> SubItem:
    """Decode the next sub-item from a bounded reader (used by the user information item)."""
    item_type, value = read_item_header(reader, 'user information sub-item')
    cls = SUB_ITEM_TYPES.get(item_type, GenericUserDataSubItem)
    if cls is GenericUserDataSubItem:
        logger.debug('unknown user information sub-item type 0x%02X kept as raw bytes',
                     item_type)
    return decode_value(cls, value, item_type)


def decode_user_data_item(stream: BinaryIO) -> SubItem:
    """Read one sub-item of any type from ``stream``; unknown types give a Generic one."""
    item_type, reader = read_stream_item(stream, 'user information sub-item')
    return decode_value(SUB_ITEM_TYPES.get(item_type, GenericUserDataSubItem), reader,
                        item_type)
