"""The items inside the PDUs of the upper layer (PS3.8 9.3.2, 9.3.3, 9.3.5.1).

The A-ASSOCIATE items (application context, presentation contexts with their abstract
and transfer syntax sub-items, user information) and the PDV item of a P-DATA-TF, as
value objects with ``encode()`` and ``decode()``; ``pdu`` assembles the PDUs from them
and re-exports every name here.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, BinaryIO, ClassVar, Iterable, Optional

from pynetdicom2.exceptions import PDUProcessingError
from pynetdicom2.pducodec import (
    ITEM_HEADER, ByteReader, TypedItem, WireObject, check_int, encode_uid, pack_length,
    read_exact, read_item_length, stream_offset,
)
from pynetdicom2.userdataitems import SubItem, parse_user_data

__all__ = [
    'APPLICATION_CONTEXT_ITEM', 'PRESENTATION_CONTEXT_ITEM_RQ', 'PRESENTATION_CONTEXT_ITEM_AC',
    'ABSTRACT_SYNTAX_SUB_ITEM', 'TRANSFER_SYNTAX_SUB_ITEM', 'USER_INFORMATION_ITEM',
    'ACCEPTANCE', 'USER_REJECTION', 'NO_REASON', 'ABSTRACT_SYNTAX_NOT_SUPPORTED',
    'TRANSFER_SYNTAXES_NOT_SUPPORTED', 'check_context_id',
    'Item', 'ApplicationContextItem', 'PresentationContextItemRQ', 'PresentationContextItemAC',
    'AbstractSyntaxSubItem', 'TransferSyntaxSubItem', 'UserInformationItem',
    'PresentationDataValueItem',
]

# What these items log belongs to the PDU layer's logger, as before the split.
logger = logging.getLogger('pynetdicom2.pdu')

# Item types of the A-ASSOCIATE PDUs, PS3.8 9.3.2 and 9.3.3.
APPLICATION_CONTEXT_ITEM = 0x10
PRESENTATION_CONTEXT_ITEM_RQ = 0x20
PRESENTATION_CONTEXT_ITEM_AC = 0x21
ABSTRACT_SYNTAX_SUB_ITEM = 0x30
TRANSFER_SYNTAX_SUB_ITEM = 0x40
USER_INFORMATION_ITEM = 0x50

# Presentation context results in A-ASSOCIATE-AC, PS3.8 9.3.3.2.
ACCEPTANCE = 0
USER_REJECTION = 1
NO_REASON = 2
ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

# A PDV item: 4-byte item length, presentation context ID, then the PDV (PS3.8 9.3.5.1).
_PDV_HEADER = struct.Struct('>IB')
_U32 = struct.Struct('>I')


def check_context_id(value: Any, error: type = PDUProcessingError) -> int:
    """``value`` if it is a presentation context ID we may send, else ``error``.

    PS3.8 9.3.2.2 and 9.3.5.1: an odd integer 1..255, in an A-ASSOCIATE item and in a
    P-DATA-TF PDV alike; every encoder here and the outbound P-DATA framing
    (``fragmentation``) ask this one rule. What we receive is read as any byte: the
    decoders do not check parity, the association decides what an ID names.
    """
    if not isinstance(value, int) or not 1 <= value <= 255 or not value % 2:
        raise error(f'presentation context ID must be an odd integer 1..255 '
                    f'(PS3.8 9.3.2.2), not {value!r}')
    return value


class Item(TypedItem):
    """Base of the A-ASSOCIATE items: type, reserved, 2-byte length, value (PS3.8 9.3.2)."""

    def total_length(self) -> int:
        """Length of the encoded item, header included."""
        return ITEM_HEADER.size + len(self._encode_value())


class _UIDItem(Item):
    """An item whose value is one UID."""

    _field: ClassVar[str] = 'name'

    def _encode_value(self) -> bytes:
        return encode_uid(getattr(self, self._field), self._label)

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> Any:
        return cls(reader.uid(reader.end - reader.pos, cls._label))


class ApplicationContextItem(_UIDItem):
    """The application context name, a UID (PS3.8 9.3.2.1, PS3.7 A.2.1)."""

    item_type = APPLICATION_CONTEXT_ITEM
    _label = 'Application Context Item'
    _field = 'context_name'

    def __init__(self, context_name: str) -> None:
        self.context_name = context_name


class AbstractSyntaxSubItem(_UIDItem):
    """The abstract syntax (SOP class UID) of a proposed presentation context (PS3.8 9.3.2.2.1)."""

    item_type = ABSTRACT_SYNTAX_SUB_ITEM
    _label = 'Abstract Syntax Sub-Item'

    def __init__(self, name: str) -> None:
        self.name = name


class TransferSyntaxSubItem(_UIDItem):
    """A transfer syntax UID, proposed or accepted (PS3.8 9.3.2.2.2)."""

    item_type = TRANSFER_SYNTAX_SUB_ITEM
    _label = 'Transfer Syntax Sub-Item'

    def __init__(self, name: str) -> None:
        self.name = name


# The syntax sub-items hold a UID alone: the presentation context items read it in
# place, as the sub-item classes would (``_UIDItem._decode_value``).
_AS_LABEL = AbstractSyntaxSubItem._label
_TS_LABEL = TransferSyntaxSubItem._label


class PresentationContextItemRQ(Item):
    """A proposed presentation context: ID, abstract syntax, transfer syntaxes (PS3.8 9.3.2.2)."""

    item_type = PRESENTATION_CONTEXT_ITEM_RQ
    _label = 'Presentation Context Item (RQ)'

    def __init__(self, context_id: int, abs_sub_item: AbstractSyntaxSubItem,
                 ts_sub_items: Iterable[TransferSyntaxSubItem]) -> None:
        self.context_id = context_id
        self.abs_sub_item = abs_sub_item
        self.ts_sub_items = list(ts_sub_items)

    def _encode_value(self) -> bytes:
        context_id = check_context_id(self.context_id)
        if not isinstance(self.abs_sub_item, AbstractSyntaxSubItem):
            raise PDUProcessingError(f'{self._label} {context_id}: an AbstractSyntaxSubItem '
                                     f'is needed, not {self.abs_sub_item!r}')
        # PS3.8 9.3.2.2: one or more transfer syntaxes, all checked before any is encoded.
        ts_sub_items = self.ts_sub_items
        valid = bool(ts_sub_items)
        for ts in ts_sub_items:
            if not isinstance(ts, TransferSyntaxSubItem):
                valid = False
                break
        if not valid:
            raise PDUProcessingError(f'{self._label} {context_id}: one or more '
                                     f'TransferSyntaxSubItems are needed')
        parts = [bytes((context_id, 0, 0, 0)), self.abs_sub_item.encode()]
        for ts in ts_sub_items:
            parts.append(ts.encode())
        return b''.join(parts)

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> PresentationContextItemRQ:
        label = cls._label
        start = reader.pos
        context_id = reader.u8('presentation-context-ID', label)
        reader.skip(3, 'reserved fields', label)
        abs_sub_item = None
        ts_sub_items = []
        while reader.pos < reader.end:
            at = reader.pos
            sub_type, length = read_item_length(reader, 'sub-item', label)
            if sub_type == TRANSFER_SYNTAX_SUB_ITEM:
                ts_sub_items.append(TransferSyntaxSubItem(reader.uid(length, _TS_LABEL)))
            elif sub_type == ABSTRACT_SYNTAX_SUB_ITEM:
                if abs_sub_item is not None:
                    raise reader.error(f'{label} {context_id}: more than one Abstract '
                                       f'Syntax Sub-Item', reader.base + at)
                abs_sub_item = AbstractSyntaxSubItem(reader.uid(length, _AS_LABEL))
            else:
                raise reader.error(f'{label} {context_id}: sub-item type 0x{sub_type:02X} '
                                   f'is not allowed here', reader.base + at)
        # PS3.8 9.3.2.2: exactly one abstract syntax and at least one transfer syntax.
        if abs_sub_item is None or not ts_sub_items:
            raise reader.error(f'{label} {context_id}: needs one Abstract Syntax Sub-Item '
                               f'and one or more Transfer Syntax Sub-Items', reader.base + start)
        return cls(context_id, abs_sub_item, ts_sub_items)


class PresentationContextItemAC(Item):
    """The answer to one proposed presentation context (PS3.8 9.3.3.2).

    ``result_reason``: 0 acceptance, 1 user-rejection, 2 no-reason, 3 abstract syntax
    not supported, 4 transfer syntaxes not supported. When the context is rejected the
    transfer syntax is "not significant": ``ts_sub_item=None`` is sent as an empty
    Transfer Syntax Sub-Item (as DCMTK does), and an empty or absent one decodes to
    None, as does an invalid one in a rejected context.
    """

    item_type = PRESENTATION_CONTEXT_ITEM_AC
    _label = 'Presentation Context Item (AC)'

    def __init__(self, context_id: int, result_reason: int,
                 ts_sub_item: Optional[TransferSyntaxSubItem]) -> None:
        self.context_id = context_id
        self.result_reason = result_reason
        self.ts_sub_item = ts_sub_item

    def _encode_value(self) -> bytes:
        context_id = check_context_id(self.context_id)
        result = check_int(self.result_reason, 0, 4, 'result/reason', self._label)
        if self.ts_sub_item is None:
            ts = ITEM_HEADER.pack(TRANSFER_SYNTAX_SUB_ITEM, 0, 0)
        elif isinstance(self.ts_sub_item, TransferSyntaxSubItem):
            ts = self.ts_sub_item.encode()
        else:
            raise PDUProcessingError(f'{self._label} {context_id}: a TransferSyntaxSubItem '
                                     f'or None is needed, not {self.ts_sub_item!r}')
        return bytes((context_id, 0, result, 0)) + ts

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> PresentationContextItemAC:
        label = cls._label
        context_id = reader.u8('presentation-context-ID', label)
        reader.skip(1, 'reserved field', label)
        result = reader.u8('result/reason', label)
        reader.skip(1, 'reserved field', label)
        ts_sub_item = None
        seen = False
        while reader.pos < reader.end:
            at = reader.pos
            sub_type, length = read_item_length(reader, 'sub-item', label)
            if sub_type != TRANSFER_SYNTAX_SUB_ITEM or seen:
                raise reader.error(f'{label} {context_id}: only one Transfer Syntax Sub-Item '
                                   f'is allowed, found type 0x{sub_type:02X}', reader.base + at)
            seen = True
            if not length:
                continue
            try:
                ts_sub_item = TransferSyntaxSubItem(reader.uid(length, _TS_LABEL))
            except PDUProcessingError:
                if result == ACCEPTANCE:
                    raise
                # PS3.8 9.3.3.2: not significant when rejected, so not tested.
                logger.debug('ignored the transfer syntax of rejected presentation '
                             'context %d', context_id)
                reader.pos = at + 4 + length
        return cls(context_id, result, ts_sub_item)


class UserInformationItem(Item):
    """The user information item: a list of ``userdataitems`` sub-items (PS3.8 9.3.2.3)."""

    item_type = USER_INFORMATION_ITEM
    _label = 'User Information Item'

    def __init__(self, user_data: Iterable[SubItem]) -> None:
        self.user_data = list(user_data)

    def _encode_value(self) -> bytes:
        for sub in self.user_data:
            if not isinstance(sub, SubItem):
                raise PDUProcessingError(f'{self._label}: a userdataitems sub-item is '
                                         f'needed, not {sub!r}')
        parts = []
        for sub in self.user_data:
            parts.append(sub.encode())
        return b''.join(parts)

    @classmethod
    def _decode_value(cls, reader: ByteReader, item_type: int) -> UserInformationItem:
        return cls(parse_user_data(reader))


class PresentationDataValueItem(WireObject):
    """One PDV of a P-DATA-TF PDU (PS3.8 9.3.5.1).

    ``data_value`` is the PDV itself: the message control header byte (PS3.8 E.2)
    followed by the command or data set fragment. A PDV item has no item type on
    the wire: its header is a 4-byte length and the presentation context ID.
    """

    item_type: ClassVar[Optional[int]] = None
    _label = 'Presentation Data Value Item'

    def __init__(self, context_id: int, data_value: bytes) -> None:
        self.context_id = context_id
        self.data_value = data_value

    def encode(self) -> bytes:
        """The PDV item's bytes, header included."""
        context_id = check_context_id(self.context_id)
        if not isinstance(self.data_value, (bytes, bytearray, memoryview)) \
                or not len(self.data_value):
            raise PDUProcessingError(f'{self._label}: data_value must be bytes holding at '
                                     f'least the message control header')
        pack_length(len(self.data_value) + 1, 0xFFFFFFFF, self._label)
        return _PDV_HEADER.pack(len(self.data_value) + 1, context_id) + bytes(self.data_value)

    def total_length(self) -> int:
        """Length of the encoded PDV item, header included."""
        return _PDV_HEADER.size + len(self.data_value)

    @property
    def item_length(self) -> int:
        """The PDV item's length field: context ID and ``data_value`` (as 0.9.8)."""
        return len(self.data_value) + 1

    @classmethod
    def decode(cls, stream: BinaryIO) -> PresentationDataValueItem:
        """Read one PDV item from the stream's current position."""
        start = stream_offset(stream)
        length = _U32.unpack(read_exact(stream, 4, f'{cls._label} item-length', start))[0]
        if length < 2:
            raise PDUProcessingError(f'{cls._label}: item length {length} is below 2 (at '
                                     f'byte offset {start} of the stream)')
        body = read_exact(stream, length, f'{cls._label} ({length} bytes declared)', start + 4)
        return cls(body[0], body[1:])
