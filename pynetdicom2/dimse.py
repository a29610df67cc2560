"""DIMSE messages (PS3.7 9.3 and 10.3).

One class per message over a command set, with a property per command element; the
map from Command Field to class and ``decode_message``. The command-set bytes come
from ``pynetdicom2.dimsecodec``; a message leaves as P-DATA-TF PDUs through
``pynetdicom2.fragmentation`` and is put together again from received fragments by
``pynetdicom2.reassembly``. No sockets and no associations here: bytes in, bytes out.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Union

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from pynetdicom2 import fragmentation, pdu
from pynetdicom2.dimsecodec import (
    COMMAND_ELEMENTS, TAG_OF, command_value, dataset_from, decode_elements, encode_command_set,
    encode_elements)
from pynetdicom2.exceptions import DIMSEProcessingError
from pynetdicom2.fragmentation import COMMAND_FRAGMENT, LAST_FRAGMENT  # as 0.9.8 named them

__all__ = [
    'NO_DATASET', 'DATASET_PRESENT', 'PRIORITY_LOW', 'PRIORITY_MEDIUM', 'PRIORITY_HIGH',
    'COMMAND_FRAGMENT', 'LAST_FRAGMENT',
    'DIMSEMessage', 'DIMSERequestMessage', 'DIMSEResponseMessage',
    'CEchoRQMessage', 'CEchoRSPMessage', 'CStoreRQMessage', 'CStoreRSPMessage',
    'CFindRQMessage', 'CFindRSPMessage', 'CGetRQMessage', 'CGetRSPMessage',
    'CMoveRQMessage', 'CMoveRSPMessage', 'CCancelRQMessage',
    'NEventReportRQMessage', 'NEventReportRSPMessage', 'NGetRQMessage', 'NGetRSPMessage',
    'NSetRQMessage', 'NSetRSPMessage', 'NActionRQMessage', 'NActionRSPMessage',
    'NCreateRQMessage', 'NCreateRSPMessage', 'NDeleteRQMessage', 'NDeleteRSPMessage',
    'MESSAGE_TYPE', 'decode_message',
]

# Command Data Set Type (0000,0800), PS3.7 E.1: 0101H means "no data set"; any other
# value means one follows. DCMTK and pynetdicom both send 0001H, so do we.
NO_DATASET = 0x0101
DATASET_PRESENT = 0x0001

# Priority (0000,0700), PS3.7 E.1.
PRIORITY_LOW = 0x0002
PRIORITY_MEDIUM = 0x0000
PRIORITY_HIGH = 0x0001

_COMMAND_GROUP_LENGTH = 0x00000000
_COMMAND_FIELD = 0x00000100
_COMMAND_DATA_SET_TYPE = 0x00000800

# Element number of each command element, by keyword (for ``command_fields``).
_ELEMENT_OF = {keyword: element for element, (_, keyword) in COMMAND_ELEMENTS.items()}


# -- the messages -------------------------------------------------------------------

def _command_property(element: int, doc: str) -> property:
    """A property reading command element (0000,element): None when absent.

    Setting None clears it: it is not sent.
    """
    vr = COMMAND_ELEMENTS[element][0]

    # Each message sets and reads a dozen of these: the common cases (the command set
    # still a dict; an int, a UID) are done here, without the general path's calls.
    def getter(self: DIMSEMessage) -> Any:
        elements = self._elements
        if elements is not None:
            return elements.get(element)
        return self._get_element(element)

    if vr == 'US' or vr == 'UL':
        def setter(self: DIMSEMessage, value: Any) -> None:
            elements = self._elements
            if elements is not None and type(value) is int:
                elements[element] = value
            else:
                self._set_element(element, vr, value)
    elif vr == 'UI':
        def setter(self: DIMSEMessage, value: Any) -> None:
            elements = self._elements
            if elements is not None and isinstance(value, str):
                elements[element] = command_value(element, vr, value)
            else:
                self._set_element(element, vr, value)
    else:
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

    @classmethod
    def _made_with(cls, elements: Dict[int, Any]) -> DIMSEMessage:
        """A message made here (as ``cls()`` makes one) holding ``elements`` besides
        its Command Field and Command Data Set Type: values already of their VR's
        type (``command_value``), none of them None."""
        msg = cls.__new__(cls)
        msg.context_id = None
        msg._data_set = None
        elements[_COMMAND_FIELD] = cls.command_field
        elements[_COMMAND_DATA_SET_TYPE] = NO_DATASET
        msg._elements = elements
        msg._command_set = None
        msg._fresh = True
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
            ds = self._command_set = dataset_from(elements)
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
        ds = self._command_set
        tag = TAG_OF.get(element) or BaseTag(element)
        # Dataset[tag] gives a DataElement from its element dict as it is (pydicom 2.x and
        # 3.x alike): read there (Dataset.get 2.7 us -> 0.3 us). A raw element, not yet
        # converted, takes Dataset's way.
        elements_of = getattr(ds, '_dict', None)  # None: a pydicom that keeps them elsewhere
        elem = elements_of.get(tag) if elements_of is not None else ds.get(tag)
        if type(elem) is not DataElement:
            if elem is None:
                return None
            elem = ds[tag]
        return elem.value

    def _set_element(self, element: int, vr: str, value: Any) -> None:
        if value is not None:
            value = command_value(element, vr, value)
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
        elements = self._elements
        if elements is not None:
            if value is None:
                elements[_COMMAND_DATA_SET_TYPE] = NO_DATASET
            else:
                current = elements.get(_COMMAND_DATA_SET_TYPE)
                if current is None or current == NO_DATASET:
                    elements[_COMMAND_DATA_SET_TYPE] = DATASET_PRESENT
            self._data_set = value
            return
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
            raw = encode_elements(elements)
            elements[_COMMAND_GROUP_LENGTH] = len(raw) - 12
        else:
            raw = encode_command_set(self._command_set)
            self._set_element(_COMMAND_GROUP_LENGTH, 'UL', len(raw) - 12)
        return raw

    # -- sending --------------------------------------------------------------------

    def iter_pdu_batches(self, pc_id: int, max_pdu_length: Optional[int]
                         ) -> Iterator[List[Any]]:
        """Iterate over the message as P-DATA-TF PDUs for scatter/gather sending,
        several whole PDUs per list: ``fragmentation.iter_pdu_batches`` over this
        command set and data set. ``max_pdu_length`` is the peer's Maximum Length
        Received (0 or None: no limit). A list stays valid until the next is
        requested. The command set is encoded at once (errors are raised here)."""
        command = self.encode_command_set()
        data_set = self._data_set
        # A small message (most are) is one list, made without a generator.
        batch = fragmentation.small_message_batch(command, data_set, pc_id, max_pdu_length)
        if batch is not None:
            return iter((batch,))
        return fragmentation.iter_pdu_batches(command, data_set, pc_id, max_pdu_length)

    def encode(self, pc_id: int, max_pdu_length: Optional[int]) -> Iterator[pdu.PDataTfPDU]:
        """Yield the message as ``pdu.PDataTfPDU`` objects (the original API).

        The PDUs of ``iter_pdu_batches``, one PDV each, copied out of its buffers;
        each ``PresentationDataValueItem``'s ``data_value`` starts with the message
        control header byte.
        """
        for batch in self.iter_pdu_batches(pc_id, max_pdu_length):
            for index in range(0, len(batch), 2):
                # A PDU's 12 header bytes end with its message control header.
                header, fragment = batch[index], batch[index + 1]
                yield pdu.PDataTfPDU([pdu.PresentationDataValueItem(
                    pc_id, header[-1:] + bytes(fragment))])

    def __repr__(self) -> str:
        ds = self._command_set
        if ds is None:
            # Shown, not kept: the dict stays the command set.
            ds = dataset_from(self._elements or {})
        return f'{type(self).__name__}\n{ds}\n'


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
    elements = decode_elements(command_bytes)
    value = elements.get(_COMMAND_FIELD)
    if value is None:
        raise DIMSEProcessingError('command set has no Command Field (0000,0100)')
    cls = MESSAGE_TYPE.get(value) if type(value) is int else None
    if cls is None:
        shown = f'0x{value:04X}' if isinstance(value, int) else repr(value)
        raise DIMSEProcessingError(f'unknown Command Field {shown} (PS3.7 E.1)')
    return cls._from_elements(elements)
