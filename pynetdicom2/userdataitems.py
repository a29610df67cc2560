"""User information sub-items of A-ASSOCIATE-RQ/AC (PS3.8 Annex D, PS3.7 Annex D.3.3).

Each sub-item is a value object with ``encode()`` and a classmethod ``decode(stream)``.
The byte reader and item framing they are built on live in ``pducodec`` (re-exported
here, as before).
"""

from __future__ import annotations

import logging
import struct
from typing import Any, BinaryIO, Iterable, Union

from pynetdicom2.exceptions import PDUProcessingError
# The shared wire helpers moved to pducodec; their names stay importable from here.
from pynetdicom2.pducodec import (  # noqa: F401
    ITEM_HEADER, ByteReader, TypedItem, WireObject, as_byte_view, check_int, decode_item,
    decode_value, encode_uid, field_name, pack_length, printable_ascii, read_exact,
    read_item_header, read_item_length, read_stream_item, short_repr, stream_offset,
    too_long,
)

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

_U16 = struct.Struct('>H')
_U32 = struct.Struct('>I')


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
        return cls(reader.u32('maximum-length-received', cls._label))


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
        return cls(reader.uid(reader.end - reader.pos, cls._label))


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
        invoked = reader.u16('maximum-number-operations-invoked', cls._label)
        performed = reader.u16('maximum-number-operations-performed', cls._label)
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
        uid = encode_uid(self.sop_class_uid, 'SOP class UID', self._label)
        return (_U16.pack(len(uid)) + uid
                + bytes((check_int(self.scu_role, 0, 1, 'SCU role'),
                         check_int(self.scp_role, 0, 1, 'SCP role'))))

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> ScpScuRoleSelectionSubItem:
        uid = reader.uid(reader.u16('UID-length', cls._label), 'SOP class UID', cls._label)
        scu_role = reader.u8('SCU-role', cls._label)
        scp_role = reader.u8('SCP-role', cls._label)
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
                or not name.isascii() or not name.isprintable()):
            raise PDUProcessingError(f'{self._label}: 1 to 16 printable ASCII characters '
                                     f'expected, not {name!r}')
        return name.encode('ascii')

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> ImplementationVersionNameSubItem:
        return cls(printable_ascii(bytes(reader.take(reader.end - reader.pos, cls._label))))


class SOPClassExtendedNegotiationSubItem(SubItem):
    """Service-class-specific application information for one SOP class (PS3.7 D.3.3.5)."""

    item_type = SOP_CLASS_EXTENDED_NEGOTIATION_SUB_ITEM
    _label = 'SOP Class Extended Negotiation Sub-Item'

    def __init__(self, sop_class_uid: str, app_info: bytes) -> None:
        self.sop_class_uid = sop_class_uid
        self.app_info = app_info

    def _encode_value(self) -> bytes:
        uid = encode_uid(self.sop_class_uid, 'SOP class UID', self._label)
        if not isinstance(self.app_info, (bytes, bytearray)):
            raise PDUProcessingError(f'{self._label}: app_info must be bytes, '
                                     f'not {type(self.app_info).__name__}')
        return _U16.pack(len(uid)) + uid + bytes(self.app_info)

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> SOPClassExtendedNegotiationSubItem:
        uid = reader.uid(reader.u16('SOP-class-uid-length', cls._label),
                         'SOP class UID', cls._label)
        return cls(uid, bytes(reader.take(reader.end - reader.pos, cls._label)))


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
        sop = encode_uid(self.sop_class_uid, 'SOP class UID', self._label)
        service = encode_uid(self.service_class_uid, 'service class UID', self._label)
        related = b''.join(
            _U16.pack(len(uid)) + uid for uid in
            (encode_uid(u, 'related general SOP class UID', self._label)
             for u in self.related_general_sop_class_uids))
        pack_length(len(related), 0xFFFF, 'related general SOP classes', self._label)
        return (_U16.pack(len(sop)) + sop + _U16.pack(len(service)) + service
                + _U16.pack(len(related)) + related)

    @classmethod
    def _decode_value(cls, reader: ByteReader,
                      item_type: int) -> SOPClassCommonExtendedNegotiationSubItem:
        # The header's second byte is the sub-item version (0); later versions are
        # read with the version 0 layout, which they extend.
        sop = reader.uid(reader.u16('SOP-class-uid-length', cls._label),
                         'SOP class UID', cls._label)
        service = reader.uid(reader.u16('service-class-uid-length', cls._label),
                             'service class UID', cls._label)
        related_reader = reader.sub(
            reader.u16('related-general-sop-class-identification-length', cls._label),
            'related general SOP class identification', cls._label)
        related = []
        while related_reader.pos < related_reader.end:
            related.append(related_reader.uid(
                related_reader.u16('related-general-sop-class-uid-length', cls._label),
                'related general SOP class UID', cls._label))
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
        identity_type = reader.u8('user-identity-type', cls._label)
        response = reader.u8('positive-response-requested', cls._label)
        primary = bytes(reader.take(reader.u16('primary-field-length', cls._label),
                                    'primary field', cls._label))
        secondary = bytes(reader.take(reader.u16('secondary-field-length', cls._label),
                                      'secondary field', cls._label))
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
        return cls(bytes(reader.take(reader.u16('server-response-length', cls._label),
                                     'server response', cls._label)))

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
        return cls(item_type, bytes(reader.take(reader.end - reader.pos, cls._label)))

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


def parse_user_data(reader: ByteReader) -> list[SubItem]:
    """Decode every sub-item left in a bounded reader (the user information item's value)."""
    user_data = []
    while reader.pos < reader.end:
        item_type, length = read_item_length(reader, 'user information sub-item')
        cls = SUB_ITEM_TYPES.get(item_type, GenericUserDataSubItem)
        if cls is GenericUserDataSubItem:
            logger.debug('unknown user information sub-item type 0x%02X kept as raw bytes',
                         item_type)
        user_data.append(decode_item(cls, reader, item_type, length))
    return user_data


def decode_user_data_item(stream: BinaryIO) -> SubItem:
    """Read one sub-item of any type from ``stream``; unknown types give a Generic one."""
    item_type, reader = read_stream_item(stream, 'user information sub-item')
    return decode_value(SUB_ITEM_TYPES.get(item_type, GenericUserDataSubItem), reader,
                        item_type)
