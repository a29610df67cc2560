"""DIMSE-N services (PS3.7 10): N-GET, N-SET, N-ACTION, N-CREATE, N-DELETE and
N-EVENT-REPORT as SCU calls for any negotiated SOP class, a generic SCP that hands them
to AE hooks, and the Modality Performed Procedure Step SOP class (PS3.4 F.7) on top.

Data sets travel encoded in the presentation context's accepted transfer syntax and
reach the user as pydicom ``Dataset`` objects, both ways.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional, Sequence, Tuple

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pynetdicom2 import dimse, statuses, transcode, uids
from pynetdicom2.exceptions import DIMSEProcessingError, EventHandlingError, NetDICOMError
from pynetdicom2.services.common import (
    MessageDispatcherSCP, receive_response, request_instance_uid, response_to)
from pynetdicom2.services.storage import encode_data_set

logger = logging.getLogger(__name__)

# General DIMSE-N statuses, PS3.7 Annex C.
NO_SUCH_SOP_INSTANCE = statuses.Status(0x0112)
NO_SUCH_EVENT_TYPE = statuses.Status(0x0113)
NO_SUCH_ACTION = statuses.Status(0x0123)
UNRECOGNIZED_OPERATION = statuses.UNRECOGNIZED_OPERATION  # PS3.7 C.5.29

_NAMES = {
    dimse.NGetRQMessage: 'N-GET', dimse.NSetRQMessage: 'N-SET',
    dimse.NActionRQMessage: 'N-ACTION', dimse.NCreateRQMessage: 'N-CREATE',
    dimse.NDeleteRQMessage: 'N-DELETE', dimse.NEventReportRQMessage: 'N-EVENT-REPORT',
}

_RESPONSE_CLASS = {
    dimse.NGetRQMessage: dimse.NGetRSPMessage,
    dimse.NSetRQMessage: dimse.NSetRSPMessage,
    dimse.NActionRQMessage: dimse.NActionRSPMessage,
    dimse.NCreateRQMessage: dimse.NCreateRSPMessage,
    dimse.NDeleteRQMessage: dimse.NDeleteRSPMessage,
    dimse.NEventReportRQMessage: dimse.NEventReportRSPMessage,
}


# -- data sets ------------------------------------------------------------------

def decode_data_set(raw: bytes, transfer_syntax: str) -> Dataset:
    """The pydicom ``Dataset`` the raw data set ``raw`` encodes in ``transfer_syntax``.

    Every element (sequence items too) is decoded here, so a malformed value raises
    ``DIMSEProcessingError`` now rather than later in a user's hook.
    """
    try:
        ds = transcode.read_data_set(raw, transfer_syntax)
        _decode_all(ds)
    except Exception as exc:
        raise DIMSEProcessingError(
            f'the data set does not decode as {transfer_syntax}: {exc}') from exc
    return ds


def _decode_all(ds: Dataset) -> None:
    for elem in ds:  # iterating converts raw elements into values
        if elem.VR == 'SQ':
            for item in elem.value:
                _decode_all(item)


# -- SCU ------------------------------------------------------------------------

class NResponse(tuple):
    """An N-service answer: unpacks as ``(status, data_set)``.

    ``status`` is the response's ``Status``, ``data_set`` its decoded data set or None,
    and ``response`` the whole response message (e.g. an N-CREATE-RSP's
    ``affected_sop_instance_uid`` when the SCP chose the UID).
    """

    def __new__(cls, status: statuses.Status, data_set: Optional[Dataset], response) -> NResponse:
        self = super().__new__(cls, (status, data_set))
        self.response = response
        return self

    @property
    def status(self) -> statuses.Status:
        return self[0]

    @property
    def data_set(self) -> Optional[Dataset]:
        return self[1]


def _request(asce, ctx, rq, msg_id: int, ds: Optional[Dataset], **fields) -> NResponse:
    """Send ``rq`` on ``ctx``'s SOP class, with the command ``fields`` that are not None
    and ``ds`` encoded in the context's syntax, and read its response."""
    response_class = _RESPONSE_CLASS[type(rq)]
    rq.message_id = msg_id
    rq.sop_class_uid = ctx.sop_class  # Affected or Requested SOP Class UID, as rq says
    for name, value in fields.items():
        if value is not None:
            setattr(rq, name, value)
    if ds is not None and len(ds):
        rq.data_set = encode_data_set(ds, ctx.supported_ts)
    asce.send(rq, ctx.id)
    rsp = receive_response(asce, response_class, msg_id)
    if rsp.status is None:
        asce.abort()
        raise DIMSEProcessingError(f'{response_class.__name__} from {asce.dul.peer} '
                                   'has no Status (0000,0900)')
    status = statuses.Status(rsp.status, response_class)
    reply = None
    if rsp.data_set is not None and len(rsp.data_set):
        reply = decode_data_set(rsp.data_set, ctx.supported_ts)
    if not status.is_success:
        logger.info('%s from %s: %s%s', response_class.__name__, asce.dul.peer, status,
                    f' ({rsp.error_comment})' if rsp.error_comment else '')
    return NResponse(status, reply, rsp)


def n_get_scu(asce, ctx, sop_instance_uid: str, attribute_list: Optional[Iterable] = None,
              msg_id: int = 1) -> NResponse:
    """N-GET (PS3.7 10.1.2): the attributes ``attribute_list`` of an instance.

    ``attribute_list`` holds tags (ints, ``(group, element)`` pairs or keywords);
    None or empty asks for every attribute. Returns ``(Status, Dataset or None)``.
    """
    return _request(asce, ctx, dimse.NGetRQMessage(), msg_id, None,
                    requested_sop_instance_uid=sop_instance_uid,
                    attribute_identifier_list=list(attribute_list or ()) or None)


def n_set_scu(asce, ctx, sop_instance_uid: str, ds: Dataset, msg_id: int = 1) -> NResponse:
    """N-SET (PS3.7 10.1.3): modify an instance with the Modification List ``ds``.

    Returns ``(Status, Dataset or None)``; the data set is what the SCP changed.
    """
    return _request(asce, ctx, dimse.NSetRQMessage(), msg_id, ds,
                    requested_sop_instance_uid=sop_instance_uid)


def n_action_scu(asce, ctx, sop_instance_uid: str, action_type_id: int,
                 ds: Optional[Dataset] = None, msg_id: int = 1) -> NResponse:
    """N-ACTION (PS3.7 10.1.4): run action ``action_type_id`` with Action Information ``ds``.

    Returns ``(Status, Dataset or None)``; the data set is the Action Reply.
    """
    return _request(asce, ctx, dimse.NActionRQMessage(), msg_id, ds,
                    requested_sop_instance_uid=sop_instance_uid, action_type_id=action_type_id)


def n_create_scu(asce, ctx, sop_instance_uid: Optional[str], ds: Optional[Dataset] = None,
                 msg_id: int = 1) -> NResponse:
    """N-CREATE (PS3.7 10.1.5): create an instance with the Attribute List ``ds``.

    With ``sop_instance_uid`` None the SCP chooses the UID: read it from the result's
    ``response.affected_sop_instance_uid``. Returns ``(Status, Dataset or None)``.
    """
    return _request(asce, ctx, dimse.NCreateRQMessage(), msg_id, ds,
                    affected_sop_instance_uid=sop_instance_uid)


def n_delete_scu(asce, ctx, sop_instance_uid: str, msg_id: int = 1) -> NResponse:
    """N-DELETE (PS3.7 10.1.6): delete an instance. Returns ``(Status, None)``."""
    return _request(asce, ctx, dimse.NDeleteRQMessage(), msg_id, None,
                    requested_sop_instance_uid=sop_instance_uid)


def n_event_report_scu(asce, ctx, sop_instance_uid: str, event_type_id: int,
                       ds: Optional[Dataset] = None, msg_id: int = 1) -> NResponse:
    """N-EVENT-REPORT (PS3.7 10.1.1): report event ``event_type_id`` with Event Information ``ds``.

    Returns ``(Status, Dataset or None)``; the data set is the Event Reply.
    """
    return _request(asce, ctx, dimse.NEventReportRQMessage(), msg_id, ds,
                    affected_sop_instance_uid=sop_instance_uid, event_type_id=event_type_id)


class NServiceSCU:
    """The six N-service calls bound to one association and presentation context.

    Register it for the SOP classes you use, ``ae.add_scu(NServiceSCU, [uid, ...])``;
    ``assoc.get_scu(uid)()`` then gives an instance whose methods take the user
    arguments of the functions above (``n_get_scu`` ...) and return ``(Status,
    Dataset or None)``. Or build one yourself: ``NServiceSCU(assoc,
    assoc.context_for(uid))``.
    """

    sop_classes: list = []
    store_in_file = False

    def __init__(self, asce, ctx) -> None:
        self.asce = asce
        self.ctx = ctx

    def get(self, sop_instance_uid: str, attribute_list: Optional[Iterable] = None,
            msg_id: int = 1) -> NResponse:
        return n_get_scu(self.asce, self.ctx, sop_instance_uid, attribute_list, msg_id)

    def set(self, sop_instance_uid: str, ds: Dataset, msg_id: int = 1) -> NResponse:
        return n_set_scu(self.asce, self.ctx, sop_instance_uid, ds, msg_id)

    def action(self, sop_instance_uid: str, action_type_id: int, ds: Optional[Dataset] = None,
               msg_id: int = 1) -> NResponse:
        return n_action_scu(self.asce, self.ctx, sop_instance_uid, action_type_id, ds, msg_id)

    def create(self, sop_instance_uid: Optional[str], ds: Optional[Dataset] = None,
               msg_id: int = 1) -> NResponse:
        return n_create_scu(self.asce, self.ctx, sop_instance_uid, ds, msg_id)

    def delete(self, sop_instance_uid: str, msg_id: int = 1) -> NResponse:
        return n_delete_scu(self.asce, self.ctx, sop_instance_uid, msg_id)

    def event_report(self, sop_instance_uid: str, event_type_id: int,
                     ds: Optional[Dataset] = None, msg_id: int = 1) -> NResponse:
        return n_event_report_scu(self.asce, self.ctx, sop_instance_uid, event_type_id, ds,
                                  msg_id)


# -- SCP ------------------------------------------------------------------------

def _hook_result(result: Any, response_class) -> Tuple[statuses.Status, Optional[Dataset]]:
    """``(Status, Dataset or None)`` from a hook's answer: that pair, or a bare status."""
    if isinstance(result, (tuple, list)):
        if len(result) != 2:
            raise TypeError(f'a hook returned {len(result)} values; expected '
                            '(status, Dataset or None)')
        status, ds = result
    else:
        status, ds = result, None
    if ds is not None and not isinstance(ds, Dataset):
        raise TypeError(f'a hook returned {type(ds).__name__} as data set; expected a '
                        'pydicom Dataset or None')
    return statuses.Status(status, response_class), ds


class NServiceSCP(MessageDispatcherSCP):
    """A generic SCP for DIMSE-N requests: each one goes to an AE hook.

    ``ae.add_scp(NServiceSCP([uid, ...]))`` serves those SOP classes. The hooks, looked
    up on the AE, are called ``hook(context, msg, ds)`` with the presentation context,
    the request message (its ``affected_sop_instance_uid`` /
    ``requested_sop_instance_uid``, ``action_type_id``, ``event_type_id``,
    ``attribute_identifier_list`` ...) and its decoded data set (None for N-GET and
    N-DELETE), and return ``(Status, Dataset or None)`` (a bare status also does):

    ============== =========================== ================================
    request        hook                        data set returned
    ============== =========================== ================================
    N-GET          ``on_receive_n_get``        the Attribute List
    N-SET          ``on_receive_n_set``        the attributes changed (optional)
    N-ACTION       ``on_receive_n_action``     the Action Reply (optional)
    N-CREATE       ``on_receive_n_create``     the Attribute List (optional)
    N-DELETE       ``on_receive_n_delete``     none
    N-EVENT-REPORT ``on_receive_n_event_report`` the Event Reply (optional)
    ============== =========================== ================================

    The response carries the hook's status and data set, encoded in the context's
    transfer syntax. An AE without the hook (or whose hook raises
    ``NotImplementedError``) answers 0x0211 *Unrecognized operation* (PS3.7 C.5.29:
    the operation is not one agreed); ``EventHandlingError`` from the hook answers
    0x0110 *Processing failure* with the error as Error Comment, and the association
    stays usable; a request data set that does not decode answers 0x0110 too. An
    N-CREATE-RQ without Affected SOP Instance UID gets one generated here, set on
    ``msg`` before the hook runs, and returned in the response (PS3.7 10.1.5.1.3).
    Any other exception from a hook aborts the association.
    """

    #: Hook name per request, PS3.7 10.1.
    hooks = {
        dimse.NGetRQMessage: 'on_receive_n_get',
        dimse.NSetRQMessage: 'on_receive_n_set',
        dimse.NActionRQMessage: 'on_receive_n_action',
        dimse.NCreateRQMessage: 'on_receive_n_create',
        dimse.NDeleteRQMessage: 'on_receive_n_delete',
        dimse.NEventReportRQMessage: 'on_receive_n_event_report',
    }

    def __init__(self, sop_classes: Sequence[str] = ()) -> None:
        self.sop_classes = list(sop_classes)

    def n_get(self, msg, asce, ctx) -> None:
        self.serve(asce, ctx, msg)

    n_set = n_action = n_create = n_delete = n_event_report = n_get

    def hook_arguments(self, ctx, msg, ds) -> tuple:
        """The arguments the hook is called with."""
        return ctx, msg, ds

    def serve(self, asce, ctx, msg) -> None:
        """Answer one N request with its hook's status and data set."""
        if not isinstance(msg, dimse.DIMSERequestMessage):
            asce.abort()
            raise DIMSEProcessingError(f'{asce.dul.peer} sent {type(msg).__name__}, a '
                                       'response no request of ours asked for')
        response_class = _RESPONSE_CLASS[type(msg)]
        if isinstance(msg, dimse.NCreateRQMessage) and msg.affected_sop_instance_uid is None:
            msg.affected_sop_instance_uid = generate_uid()
        status, reply, comment = self._run_hook(asce, ctx, msg, response_class)
        data_set = None
        if reply is not None and len(reply):
            try:
                data_set = encode_data_set(reply, ctx.supported_ts)
            except Exception as exc:  # the hook's data set, not the peer, is at fault
                logger.error('the %s data set cannot be encoded: %s',
                             response_class.__name__, exc)
                status = statuses.Status(statuses.PROCESSING_FAILURE, response_class)
                comment = 'the reply data set could not be encoded'
        rsp = response_to(msg, response_class, status,
                          comment if status.is_failure else None)
        if data_set is not None:
            rsp.data_set = data_set
        asce.send(rsp, ctx.id)

    def _run_hook(self, asce, ctx, msg, response_class):
        failure = statuses.Status(statuses.PROCESSING_FAILURE, response_class)
        name = self.hooks.get(type(msg))
        hook = getattr(asce.ae, name, None) if name else None
        if hook is None:
            return (statuses.Status(UNRECOGNIZED_OPERATION, response_class), None,
                    f'{_NAMES[type(msg)]} is not supported here')
        ds = None
        if msg.data_set is not None:
            try:
                ds = decode_data_set(msg.data_set, ctx.supported_ts)
            except NetDICOMError as exc:
                logger.info('%s from %s: %s', type(msg).__name__, asce.dul.peer, exc)
                return failure, None, 'the data set does not decode'
        try:
            result = hook(*self.hook_arguments(ctx, msg, ds))
        except NotImplementedError:
            return (statuses.Status(UNRECOGNIZED_OPERATION, response_class), None,
                    f'{_NAMES[type(msg)]} is not supported here')
        except EventHandlingError as exc:
            logger.info('%s failed: %s', name, exc)
            return failure, None, str(exc) or f'{name} failed'
        status, reply = _hook_result(result, response_class)
        return status, reply, None


#: ``n_service_scp([uid, ...])`` builds the generic SCP for those SOP classes.
n_service_scp = NServiceSCP


# -- Modality Performed Procedure Step, PS3.4 F.7 --------------------------------

MPPS_SOP_CLASS = uids.MODALITY_PERFORMED_PROCEDURE_STEP_SOP_CLASS


class ModalityPerformedProcedureStepSCU(NServiceSCU):
    """MPPS SCU (PS3.4 F.7.2): ``create`` (N-CREATE) and ``set`` (N-SET) a procedure step.

    ``ae.add_scu(mpps_scu)``, then ``mpps = assoc.get_scu(MODALITY_PERFORMED_PROCEDURE_
    STEP_SOP_CLASS)()``; ``mpps.create(uid, ds, msg_id)`` with Performed Procedure Step
    Status "IN PROGRESS", later ``mpps.set(uid, ds, msg_id)`` with "COMPLETED" or
    "DISCONTINUED". Each returns ``(Status, Dataset or None)``. The functions
    ``mpps_create_scu`` / ``mpps_set_scu`` do the same given ``asce, ctx``.
    """

    sop_classes = [MPPS_SOP_CLASS]


mpps_scu = ModalityPerformedProcedureStepSCU


def mpps_create_scu(asce, ctx, sop_instance_uid: str, ds: Dataset, msg_id: int = 1) -> NResponse:
    """N-CREATE a Modality Performed Procedure Step (PS3.4 F.7.2.1).

    The SCU names the new instance (``sop_instance_uid``) and sends its attributes
    ``ds`` (Performed Procedure Step Status "IN PROGRESS"). Returns ``(Status, Dataset
    or None)``; statuses of PS3.4 F.7.2.1.2 (see ``ModalityPerformedProcedureStepSCP``).
    """
    return n_create_scu(asce, ctx, sop_instance_uid, ds, msg_id)


def mpps_set_scu(asce, ctx, sop_instance_uid: str, ds: Dataset, msg_id: int = 1) -> NResponse:
    """N-SET a Modality Performed Procedure Step (PS3.4 F.7.2.2): update its attributes.

    Returns ``(Status, Dataset or None)``; statuses of PS3.4 F.7.2.2.2.
    """
    return n_set_scu(asce, ctx, sop_instance_uid, ds, msg_id)


class ModalityPerformedProcedureStepSCP(NServiceSCP):
    """MPPS SCP (PS3.4 F.7.2): N-CREATE and N-SET of Modality Performed Procedure Steps.

    ``ae.add_scp(mpps_scp)``. Each request goes to an AE hook called
    ``hook(context, sop_instance_uid, ds)``, which returns ``(Status, Dataset or
    None)`` (or a bare status):

    * ``on_mpps_create`` — N-CREATE; ``ds`` is the new step's attributes.
    * ``on_mpps_set`` — N-SET; ``ds`` is the Modification List. Keeping a step that is
      COMPLETED or DISCONTINUED from changing is the hook's job (0x0110 with Error ID
      0xA710 in the standard's words; we send the Error Comment).

    A missing hook (or ``NotImplementedError``) answers 0x0211 *Unrecognized
    operation*, as do N-GET, N-ACTION, N-DELETE and N-EVENT-REPORT on this SOP class;
    ``EventHandlingError`` answers 0x0110 *Processing failure*.

    Statuses a hook may return (PS3.4 F.7.2.1.2 N-CREATE, F.7.2.2.2 N-SET; PS3.7 C):

    ====== ======= =================================================================
    code   type    meaning
    ====== ======= =================================================================
    0x0000 Success
    0x0001 Warning requested optional attributes are not supported
    0x0107 Warning attribute list error
    0x0116 Warning attribute value out of range
    0x0105 Failure no such attribute
    0x0106 Failure invalid attribute value
    0x0110 Failure processing failure (N-SET: the step may no longer be updated)
    0x0111 Failure duplicate SOP instance (N-CREATE)
    0x0112 Failure no such SOP instance (N-SET)
    0x0117 Failure invalid object instance
    0x0118 Failure no such SOP class
    0x0119 Failure class-instance conflict
    0x0120 Failure missing attribute (N-CREATE)
    0x0121 Failure missing attribute value
    0x0124 Failure not authorized
    0x0210 Failure duplicate invocation
    0x0211 Failure unrecognized operation
    0x0212 Failure mistyped argument
    0x0213 Failure resource limitation
    ====== ======= =================================================================
    """

    hooks = {
        dimse.NCreateRQMessage: 'on_mpps_create',
        dimse.NSetRQMessage: 'on_mpps_set',
    }

    def __init__(self) -> None:
        super().__init__([MPPS_SOP_CLASS])

    def hook_arguments(self, ctx, msg, ds) -> tuple:
        return ctx, request_instance_uid(msg), ds


#: The MPPS SCP to register: ``ae.add_scp(mpps_scp)``.
mpps_scp = ModalityPerformedProcedureStepSCP()


__all__ = [
    'NResponse', 'NServiceSCU', 'NServiceSCP', 'n_service_scp', 'n_get_scu', 'n_set_scu',
    'n_action_scu', 'n_create_scu', 'n_delete_scu', 'n_event_report_scu',
    'ModalityPerformedProcedureStepSCU', 'ModalityPerformedProcedureStepSCP', 'mpps_scu',
    'mpps_scp', 'mpps_create_scu', 'mpps_set_scu', 'MPPS_SOP_CLASS', 'encode_data_set',
    'decode_data_set', 'NO_SUCH_SOP_INSTANCE', 'NO_SUCH_EVENT_TYPE', 'NO_SUCH_ACTION',
    'UNRECOGNIZED_OPERATION',
]
