"""The seven PDUs of the DICOM upper layer, as value objects (PS3.8 9.3).

``encode()`` gives the bytes for the wire; ``decode()`` checks every length against the
bytes it really has. ``iter_pdvs()`` is the zero-copy P-DATA path of the socket layer.
The items inside the PDUs live in ``pduitems`` and are re-exported here.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Iterable, Iterator, Optional, Union

from pynetdicom2.exceptions import PDUProcessingError
from pynetdicom2.pducodec import (
    ByteReader, WireObject, as_byte_view, check_int, decode_item, printable_ascii,
    read_item_length, too_long,
)
# The items moved to pduitems; every name stays importable from here (the same objects).
from pynetdicom2.pduitems import (  # noqa: F401
    ABSTRACT_SYNTAX_NOT_SUPPORTED, ABSTRACT_SYNTAX_SUB_ITEM, ACCEPTANCE,
    APPLICATION_CONTEXT_ITEM, NO_REASON, PRESENTATION_CONTEXT_ITEM_AC,
    PRESENTATION_CONTEXT_ITEM_RQ, TRANSFER_SYNTAX_SUB_ITEM, TRANSFER_SYNTAXES_NOT_SUPPORTED,
    USER_INFORMATION_ITEM, USER_REJECTION, AbstractSyntaxSubItem, ApplicationContextItem,
    Item, PresentationContextItemAC, PresentationContextItemRQ, PresentationDataValueItem,
    TransferSyntaxSubItem, UserInformationItem, check_context_id,
)

__all__ = [
    'A_ASSOCIATE_RQ', 'A_ASSOCIATE_AC', 'A_ASSOCIATE_RJ', 'P_DATA_TF', 'A_RELEASE_RQ',
    'A_RELEASE_RP', 'A_ABORT', 'PDU_HEADER_LENGTH',
    'APPLICATION_CONTEXT_ITEM', 'PRESENTATION_CONTEXT_ITEM_RQ', 'PRESENTATION_CONTEXT_ITEM_AC',
    'ABSTRACT_SYNTAX_SUB_ITEM', 'TRANSFER_SYNTAX_SUB_ITEM', 'USER_INFORMATION_ITEM',
    'ACCEPTANCE', 'USER_REJECTION', 'NO_REASON', 'ABSTRACT_SYNTAX_NOT_SUPPORTED',
    'TRANSFER_SYNTAXES_NOT_SUPPORTED', 'check_context_id',
    'PDU', 'AAssociateRqPDU', 'AAssociateAcPDU', 'AAssociateRjPDU', 'PDataTfPDU',
    'AReleaseRqPDU', 'AReleaseRpPDU', 'AAbortPDU', 'PDU_TYPES',
    'Item', 'ApplicationContextItem', 'PresentationContextItemRQ', 'PresentationContextItemAC',
    'AbstractSyntaxSubItem', 'TransferSyntaxSubItem', 'UserInformationItem',
    'PresentationDataValueItem', 'decode_pdu', 'parse_pdu_header', 'iter_pdvs',
]

# PDU types, PS3.8 9.3.1.
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

# Every PDU starts with type, reserved, 4-byte length of what follows (PS3.8 9.3.1).
PDU_HEADER_LENGTH = 6
_PDU_HEADER = struct.Struct('>BBI')

# A-ASSOCIATE-RQ/AC: the called and calling AE titles are 16 bytes each (PS3.8 9.3.2).
_AE_TITLE_LENGTH = 16
# A-ASSOCIATE-RQ/AC fields before the variable items: protocol version, reserved,
# called and calling AE titles, 32 reserved bytes (PS3.8 9.3.2, 9.3.3).
_ASSOCIATE_FIELDS = struct.Struct('>H2x16s16s32x')

# A PDV item's length field (PS3.8 9.3.5.1), read by the zero-copy P-DATA path.
_U32 = struct.Struct('>I')

_PRINTABLE = bytes(range(0x20, 0x7F))


# --- PDUs ----------------------------------------------------------------------------------

class PDU(WireObject):
    """Base of the seven PDUs: type, reserved, 4-byte length, body (PS3.8 9.3.1)."""

    pdu_type: ClassVar[int]
    # What errors call the PDU being decoded: named once per class, not per decode.
    _context: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._context = f'{cls._label} PDU'

    def _encode_body(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _decode_body(cls, reader: ByteReader) -> Any:
        raise NotImplementedError

    @property
    def pdu_length(self) -> int:
        """The PDU's length field: the bytes after its 6-byte header (as 0.9.8)."""
        return len(self._encode_body())

    def total_length(self) -> int:
        """Length of the encoded PDU, header included (as 0.9.8)."""
        return PDU_HEADER_LENGTH + self.pdu_length

    def encode(self) -> bytes:
        """The whole PDU as sent, header included."""
        body = self._encode_body()
        if len(body) > 0xFFFFFFFF:
            raise too_long(len(body), 0xFFFFFFFF, 'PDU', self._label)
        return _PDU_HEADER.pack(self.pdu_type, 0, len(body)) + body

    @classmethod
    def decode(cls, raw: Union[bytes, bytearray, memoryview]) -> Any:
        """Decode the whole PDU, header included; ``raw`` holds exactly one PDU."""
        return cls._decode_view(as_byte_view(raw))

    @classmethod
    def _decode_view(cls, view: memoryview) -> Any:
        reader = ByteReader(view, 0, len(view), 0, cls._context)
        reader.need(PDU_HEADER_LENGTH, 'PDU header')
        pdu_type, _reserved, length = _PDU_HEADER.unpack_from(view, 0)
        if pdu_type != cls.pdu_type:
            raise reader.error(f'PDU type 0x{cls.pdu_type:02X} ({cls._label}) expected, got '
                              f'0x{pdu_type:02X}', 0)
        if length != len(view) - PDU_HEADER_LENGTH:
            raise reader.error(f'PDU length field says {length} bytes, '
                              f'{len(view) - PDU_HEADER_LENGTH} follow the header', 2)
        reader.pos = PDU_HEADER_LENGTH
        pdu = cls._decode_body(reader)
        if reader.pos < reader.end:
            raise reader.error(f'{reader.end - reader.pos} bytes left over after the '
                               f'{cls._label} fields')
        return pdu


def _encode_ae_title(title: Any, what: str) -> bytes:
    # PS3.8 9.3.2 and PS3.5 6.2 (AE): 1..16 ISO 646 characters, no backslash, not all
    # spaces, space padded. Never truncated: a wrong title must fail loudly.
    if not isinstance(title, str) and isinstance(title, (bytes, bytearray)):
        try:
            title = bytes(title).decode('ascii')
        except UnicodeDecodeError:
            pass
    if (not isinstance(title, str) or not 1 <= len(title) <= _AE_TITLE_LENGTH
            or not title.isascii() or not title.isprintable() or '\\' in title
            or not title.strip(' ')):
        raise PDUProcessingError(f'{what} must be 1 to 16 printable ASCII characters, '
                                 f'not all spaces and without backslash, not {title!r}')
    return title.encode('ascii').ljust(_AE_TITLE_LENGTH, b' ')


class _AAssociatePDU(PDU):
    """The common layout of A-ASSOCIATE-RQ and A-ASSOCIATE-AC (PS3.8 9.3.2, 9.3.3)."""

    _context_class: ClassVar[type]
    _item_classes: ClassVar[dict[int, type]]

    def __init__(self, called_ae_title: str, calling_ae_title: str,
                 variable_items: Iterable[Item], protocol_version: int = 1) -> None:
        self.called_ae_title = called_ae_title
        self.calling_ae_title = calling_ae_title
        self.variable_items = list(variable_items)
        self.protocol_version = protocol_version

    @property
    def application_context_name(self) -> Optional[str]:
        """The application context name, or None when there is no such item."""
        for item in self.variable_items:
            if isinstance(item, ApplicationContextItem):
                return item.context_name
        return None

    @property
    def presentation_context_items(self) -> list:
        """The presentation context items, in order."""
        return [item for item in self.variable_items
                if isinstance(item, self._context_class)]

    @property
    def user_information(self) -> Optional[UserInformationItem]:
        """The user information item, or None."""
        for item in self.variable_items:
            if isinstance(item, UserInformationItem):
                return item
        return None

    def _encode_body(self) -> bytes:
        version = check_int(self.protocol_version, 0, 0xFFFF, 'protocol version')
        allowed = self._item_classes.values()
        items = self.variable_items
        app_context = False
        for index, item in enumerate(items):
            # The same placement rules the decoder enforces (PS3.8 9.3.2, 9.3.3).
            item_class = type(item)
            if item_class not in allowed:
                raise PDUProcessingError(f'{self._label}: {item!r} is not allowed among its '
                                         f'variable items')
            if item_class is ApplicationContextItem:
                if app_context:
                    raise PDUProcessingError(f'{self._label}: more than one Application '
                                             f'Context Item')
                app_context = True
            elif item_class is UserInformationItem and index != len(items) - 1:
                raise PDUProcessingError(f'{self._label}: the User Information Item must '
                                         f'be the last item')
        parts = [_ASSOCIATE_FIELDS.pack(
            version, _encode_ae_title(self.called_ae_title, 'called AE title'),
            _encode_ae_title(self.calling_ae_title, 'calling AE title'))]
        for item in items:
            parts.append(item.encode())
        return b''.join(parts)

    @classmethod
    def _decode_ae_title(cls, reader: ByteReader, raw: bytes, what: str, at: int) -> str:
        """The AE title field ``raw``, read at ``at`` in the reader's view, as str."""
        raise NotImplementedError

    @classmethod
    def _decode_body(cls, reader: ByteReader) -> _AAssociatePDU:
        # Reserved fields are sent as zeros and not tested on receipt (PS3.8 9.3.2).
        pos = reader.pos
        if reader.end - pos >= _ASSOCIATE_FIELDS.size:
            version, called, calling = _ASSOCIATE_FIELDS.unpack_from(reader.view, pos)
            reader.pos = pos + _ASSOCIATE_FIELDS.size
            called = cls._decode_ae_title(reader, called, 'called AE title', pos + 4)
            calling = cls._decode_ae_title(reader, calling, 'calling AE title', pos + 20)
        else:
            # Cut short: field by field, so that the error names the first field
            # missing, or a bad AE title before it.
            version = reader.u16('protocol-version')
            reader.skip(2, 'reserved field')
            called = cls._decode_ae_title(
                reader, bytes(reader.take(_AE_TITLE_LENGTH, 'called AE title')),
                'called AE title', pos + 4)
            calling = cls._decode_ae_title(
                reader, bytes(reader.take(_AE_TITLE_LENGTH, 'calling AE title')),
                'calling AE title', pos + 20)
            reader.skip(32, 'reserved field')
        label = cls._label
        item_classes = cls._item_classes
        items = []
        app_context = user_info = False
        while reader.pos < reader.end:
            at = reader.pos
            if user_info:
                raise reader.error(f'{label}: the User Information Item must be the last '
                                   f'item', reader.base + at)
            item_type, length = read_item_length(reader, 'variable item', label)
            item_class = item_classes.get(item_type)
            if item_class is None:
                raise reader.error(f'{label}: item type 0x{item_type:02X} is not allowed '
                                   f'among its variable items', reader.base + at)
            if item_class is ApplicationContextItem:
                if app_context:
                    raise reader.error(f'{label}: more than one Application Context Item',
                                       reader.base + at)
                app_context = True
            user_info = item_class is UserInformationItem
            items.append(decode_item(item_class, reader, item_type, length))
        return cls(called, calling, items, version)


class AAssociateRqPDU(_AAssociatePDU):
    """A-ASSOCIATE-RQ: the association request (PS3.8 9.3.2).

    AE titles are str, stripped of padding when decoded. A title with control or
    non-ASCII bytes fails to decode; an all-space title decodes to '' so that the
    association layer can reject it (called/calling AE title not recognized).
    """

    pdu_type = A_ASSOCIATE_RQ
    _label = 'A-ASSOCIATE-RQ'

    @classmethod
    def _decode_ae_title(cls, reader: ByteReader, raw: bytes, what: str, at: int) -> str:
        # Space padded by PS3.8 9.3.2; some broken peers pad with NUL: tolerated.
        raw = raw.strip(b' \x00')
        if raw.translate(None, _PRINTABLE):
            raise reader.error(f'{what} {raw!r} holds bytes that are not printable ASCII',
                               reader.base + at)
        return raw.decode('ascii')


class AAssociateAcPDU(_AAssociatePDU):
    """A-ASSOCIATE-AC: the association acceptance (PS3.8 9.3.3).

    The AE title fields repeat the request's and are "not tested" (PS3.8 9.3.3): they
    decode leniently, stripped, with unprintable bytes read as '?'.
    """

    pdu_type = A_ASSOCIATE_AC
    _label = 'A-ASSOCIATE-AC'

    @classmethod
    def _decode_ae_title(cls, reader: ByteReader, raw: bytes, what: str, at: int) -> str:
        return printable_ascii(raw.strip(b' \x00'))


AAssociateRqPDU._context_class = PresentationContextItemRQ
AAssociateRqPDU._item_classes = {
    APPLICATION_CONTEXT_ITEM: ApplicationContextItem,
    PRESENTATION_CONTEXT_ITEM_RQ: PresentationContextItemRQ,
    USER_INFORMATION_ITEM: UserInformationItem,
}
AAssociateAcPDU._context_class = PresentationContextItemAC
AAssociateAcPDU._item_classes = {
    APPLICATION_CONTEXT_ITEM: ApplicationContextItem,
    PRESENTATION_CONTEXT_ITEM_AC: PresentationContextItemAC,
    USER_INFORMATION_ITEM: UserInformationItem,
}


class AAssociateRjPDU(PDU):
    """A-ASSOCIATE-RJ: the association rejection (PS3.8 9.3.4).

    ``result`` 1 permanent / 2 transient, ``source`` 1..3, ``reason_diag`` as listed in
    ``exceptions.AssociationRejectedError``.
    """

    pdu_type = A_ASSOCIATE_RJ
    _label = 'A-ASSOCIATE-RJ'

    def __init__(self, result: int, source: int, reason_diag: int) -> None:
        self.result = result
        self.source = source
        self.reason_diag = reason_diag

    def _encode_body(self) -> bytes:
        return bytes((0, check_int(self.result, 0, 0xFF, 'result'),
                      check_int(self.source, 0, 0xFF, 'source'),
                      check_int(self.reason_diag, 0, 0xFF, 'reason/diag.')))

    @classmethod
    def _decode_body(cls, reader: ByteReader) -> AAssociateRjPDU:
        reader.skip(1, 'reserved field')
        return cls(reader.u8('result'), reader.u8('source'), reader.u8('reason/diag.'))


class PDataTfPDU(PDU):
    """P-DATA-TF: one or more presentation data values (PS3.8 9.3.5).

    Decoding copies each PDV; the socket layer uses ``iter_pdvs`` instead.
    """

    pdu_type = P_DATA_TF
    _label = 'P-DATA-TF'

    def __init__(self, data_value_items: Iterable[PresentationDataValueItem]) -> None:
        self.data_value_items = list(data_value_items)

    def _encode_body(self) -> bytes:
        for item in self.data_value_items:
            if not isinstance(item, PresentationDataValueItem):
                raise PDUProcessingError(f'{self._label}: a PresentationDataValueItem is '
                                         f'needed, not {item!r}')
        return b''.join(item.encode() for item in self.data_value_items)

    @classmethod
    def _decode_body(cls, reader: ByteReader) -> PDataTfPDU:
        items = [PresentationDataValueItem(context_id, bytes(data_value))
                 for context_id, data_value in _pdv_spans(reader)]
        return cls(items)


class _FixedEmptyPDU(PDU):
    """A PDU whose body is four reserved bytes (PS3.8 9.3.6, 9.3.7)."""

    def __init__(self) -> None:
        pass

    def _encode_body(self) -> bytes:
        return bytes(4)

    @classmethod
    def _decode_body(cls, reader: ByteReader) -> Any:
        reader.skip(4, 'reserved field')
        return cls()


class AReleaseRqPDU(_FixedEmptyPDU):
    """A-RELEASE-RQ: request an orderly release (PS3.8 9.3.6)."""

    pdu_type = A_RELEASE_RQ
    _label = 'A-RELEASE-RQ'


class AReleaseRpPDU(_FixedEmptyPDU):
    """A-RELEASE-RP: confirm the release (PS3.8 9.3.7)."""

    pdu_type = A_RELEASE_RP
    _label = 'A-RELEASE-RP'


class AAbortPDU(PDU):
    """A-ABORT: abort the association (PS3.8 9.3.8).

    ``source`` 0 service-user, 2 service-provider; ``reason_diag`` as listed in
    ``exceptions.AssociationAbortedError`` (meaningful for source 2).
    """

    pdu_type = A_ABORT
    _label = 'A-ABORT'

    def __init__(self, source: int, reason_diag: int) -> None:
        self.source = source
        self.reason_diag = reason_diag

    def _encode_body(self) -> bytes:
        return bytes((0, 0, check_int(self.source, 0, 0xFF, 'source'),
                      check_int(self.reason_diag, 0, 0xFF, 'reason/diag.')))

    @classmethod
    def _decode_body(cls, reader: ByteReader) -> AAbortPDU:
        reader.skip(2, 'reserved fields')
        return cls(reader.u8('source'), reader.u8('reason/diag.'))


PDU_TYPES: dict[int, type[PDU]] = {
    cls.pdu_type: cls for cls in (
        AAssociateRqPDU, AAssociateAcPDU, AAssociateRjPDU, PDataTfPDU, AReleaseRqPDU,
        AReleaseRpPDU, AAbortPDU)
}


# --- entry points for the socket layer ------------------------------------------------------

def parse_pdu_header(header: Union[bytes, bytearray, memoryview]) -> tuple[int, int]:
    """``(pdu_type, length)`` from the first 6 bytes of a PDU; the type must be known."""
    return _parse_header(as_byte_view(header))


def _parse_header(view: memoryview) -> tuple[int, int]:
    if len(view) < PDU_HEADER_LENGTH:
        raise PDUProcessingError(f'PDU header: {PDU_HEADER_LENGTH} bytes needed, got '
                                 f'{len(view)}')
    pdu_type, _reserved, length = _PDU_HEADER.unpack_from(view, 0)
    if pdu_type not in PDU_TYPES:
        raise PDUProcessingError(f'unknown PDU type 0x{pdu_type:02X} (at byte offset 0 of '
                                 f'the PDU)')
    return pdu_type, length


def decode_pdu(raw: Union[bytes, bytearray, memoryview],
               max_length: Optional[int] = None) -> PDU:
    """Decode one whole PDU of any type.

    ``max_length`` bounds the declared length (the body after the 6-byte header);
    None or 0 means no bound, as 0 means unlimited in PS3.8 D.1.
    """
    view = as_byte_view(raw)
    pdu_type, length = _parse_header(view)
    if max_length and length > max_length:
        raise PDUProcessingError(f'{PDU_TYPES[pdu_type]._label} PDU declares {length} bytes, '
                                 f'above the maximum of {max_length}')
    if length != len(view) - PDU_HEADER_LENGTH:
        raise PDUProcessingError(f'{PDU_TYPES[pdu_type]._label} PDU declares {length} bytes, '
                                 f'{len(view) - PDU_HEADER_LENGTH} follow the header')
    return PDU_TYPES[pdu_type]._decode_view(view)


def decode_associate(raw: Union[bytes, bytearray, memoryview]) -> PDU:
    """``decode_pdu`` for the A-ASSOCIATE-RQ or -AC that opens an association: a
    peer associating again and again sends the same bytes, so a PDU decoded before
    from the very same bytes is copied instead of decoded again (at most
    ``_KEPT_LIMIT`` kept, each at most ``_KEPT_BYTES`` long). The copy is made of
    objects of its own, as a decode makes them: changing it changes no other."""
    view = as_byte_view(raw)
    if len(view) > _KEPT_BYTES:
        return decode_pdu(view)
    key = bytes(view)
    plan = _KEPT.get(key)
    if plan is not None:
        return _build(plan)
    decoded = decode_pdu(view)
    if type(decoded) in _KEPT_TYPES:
        try:
            plan = _plan(decoded)
        except TypeError:                   # a value not plain enough to copy: not kept
            return decoded
        if len(_KEPT) >= _KEPT_LIMIT:
            _KEPT.clear()
        _KEPT[key] = plan
    return decoded


# How to make the A-ASSOCIATE PDUs decoded before, by their bytes (``_plan``).
_KEPT: dict = {}
_KEPT_LIMIT = 64
_KEPT_BYTES = 8192
_KEPT_TYPES = frozenset({AAssociateRqPDU, AAssociateAcPDU})
# Values shared between the copies of a PDU: immutable.
_PLAIN_VALUES = frozenset({str, int, bool, bytes, type(None)})
_new_object = object.__new__


def _plan(value: Any) -> tuple:
    """How ``_build`` makes a fresh copy of a decoded PDU, item or sub-item:
    ``(type, fields, parts)`` with its plain fields (the others None, in their
    place) and a plan for each other one; for a list or tuple, ``(type, ((value,
    None) or (None, plan), ...), None)``. A value of a type it does not know (a
    view into a buffer, say) raises ``TypeError``."""
    kind = type(value)
    if kind is list or kind is tuple:
        return (kind, tuple([(item, None) if type(item) in _PLAIN_VALUES
                             else (None, _plan(item)) for item in value]), None)
    # Wire objects keep their fields in __dict__ (none has slots).
    if not issubclass(kind, WireObject) or '__slots__' in kind.__dict__:
        raise TypeError(f'cannot copy a {kind.__name__}')
    fields = dict(value.__dict__)
    parts = []
    for name, item in fields.items():
        if type(item) not in _PLAIN_VALUES:
            parts.append((name, _plan(item)))
            fields[name] = None
    return (kind, fields, tuple(parts))


def _build(plan: tuple) -> Any:
    """A fresh copy from its ``_plan``: lists and objects of its own."""
    kind, fields, parts = plan
    if parts is None:
        items = [item if part is None else _build(part) for item, part in fields]
        return items if kind is list else tuple(items)
    copy = _new_object(kind)
    values = fields.copy()
    for name, part in parts:
        values[name] = _build(part)
    copy.__dict__ = values
    return copy


def _pdv_spans(reader: ByteReader) -> Iterator[tuple[int, memoryview]]:
    """``(context_id, data_value)`` per PDV item left in ``reader``, as zero-copy slices."""
    view = reader.view
    while reader.pos < reader.end:
        at = reader.offset
        left = reader.end - reader.pos
        if left < 4:
            raise reader.error(f'PDV item: truncated item length ({left} bytes left)', at)
        length = _U32.unpack_from(view, reader.pos)[0]
        # PS3.8 9.3.5.1: the item holds the context ID and a PDV of at least its
        # message control header.
        if length < 2:
            raise reader.error(f'PDV item: item length {length} is below 2', at)
        if length > left - 4:
            raise reader.error(f'PDV item declares {length} bytes, only {left - 4} left', at)
        start = reader.pos + 4
        reader.pos = start + length
        yield view[start], view[start + 1:reader.pos]


def iter_pdvs(body: Union[bytes, bytearray, memoryview]
              ) -> Iterator[tuple[int, int, memoryview]]:
    """``(context_id, message_control_header, fragment)`` for each PDV of a P-DATA-TF body.

    ``body`` is what follows the 6-byte PDU header; fragments are zero-copy slices of
    it. Offsets in errors count from the start of the PDU.
    """
    reader = ByteReader(as_byte_view(body), base=PDU_HEADER_LENGTH, context='P-DATA-TF PDU')
    for context_id, data_value in _pdv_spans(reader):
        yield context_id, data_value[0], data_value[1:]
