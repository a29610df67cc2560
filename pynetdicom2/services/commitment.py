"""Storage Commitment Push Model (PS3.4 J.3): the SCU asks with N-ACTION that the SCP
commit to keeping a list of instances; the SCP answers later with N-EVENT-REPORT, on a
new association (as pynetdicom2 0.9.8 always did) or, when the requester asked for it
by taking both roles, on the same one.
"""

from __future__ import annotations

import itertools
import logging
from typing import Iterable, List, Optional, Sequence, Tuple

from pydicom.dataset import Dataset

from pynetdicom2 import dimse, statuses, uids, userdataitems
from pynetdicom2.asceprovider import AssociationRequester
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationReleasedError, DIMSEProcessingError,
    EventHandlingError, NetDICOMError)
from pynetdicom2.services.common import (
    MessageDispatcherSCP, receive_response, response_to, sop_classes)
from pynetdicom2.services.nservices import decode_data_set, encode_data_set

logger = logging.getLogger(__name__)

STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS = uids.STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS
#: The well-known SOP instance every request and report names (PS3.4 J.3.5).
STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE = uids.STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE
#: Action Type ID "Request Storage Commitment" (PS3.4 J.3.2.1, Table J.3-1).
REQUEST_STORAGE_COMMITMENT = 1
#: Event Type IDs of the report (PS3.4 J.3.3.1, Table J.3-2).
STORAGE_COMMITMENT_SUCCESSFUL = 1
STORAGE_COMMITMENT_FAILURES_EXIST = 2

_SC = STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS
# Results an SCP may send on the association before its N-ACTION-RSP; beyond, give up.
_MAX_EARLY_REPORTS = 16
# Message IDs of the reports we send; unique enough among a peer's outstanding ones.
_report_ids = itertools.count(1)


def _next_report_id() -> int:
    return next(_report_ids) % 0xFFFF + 1


def _reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def build_action_information(transaction_uid: str,
                             references: Iterable[Tuple[str, str]]) -> Dataset:
    """The N-ACTION Action Information of a commitment request (PS3.4 Table J.3-1)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = [_reference(cls, inst) for cls, inst in references]
    return ds


def build_event_information(transaction_uid: str, success: Sequence[Tuple[str, str]],
                            failure: Sequence[tuple]) -> Dataset:
    """The N-EVENT-REPORT Event Information of a commitment result (PS3.4 Table J.3-2).

    ``failure`` items are ``(cls, inst, failure_reason)``, or ``(cls, inst)`` meaning
    0x0110 *processing failure*.
    """
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    if success or not failure:
        # Required for event type 1, and for type 2 when anything succeeded (1C).
        ds.ReferencedSOPSequence = [_reference(item[0], item[1]) for item in success]
    if failure:
        items = []
        for entry in failure:
            item = _reference(entry[0], entry[1])
            item.FailureReason = int(entry[2]) if len(entry) > 2 else 0x0110
            items.append(item)
        ds.FailedSOPSequence = items
    return ds


def _references(ds: Dataset, keyword: str, with_reason: bool = False) -> List[tuple]:
    found = []
    for item in ds.get(keyword) or ():
        cls = item.get('ReferencedSOPClassUID')
        inst = item.get('ReferencedSOPInstanceUID')
        if not cls or not inst:
            raise DIMSEProcessingError(f'a {keyword} item lacks Referenced SOP Class UID '
                                       'or Referenced SOP Instance UID')
        if with_reason:
            reason = item.get('FailureReason')
            found.append((str(cls), str(inst), None if reason is None else int(reason)))
        else:
            found.append((str(cls), str(inst)))
    return found


def _send_event_report(asce, ctx, event_type: int, ds: Dataset) -> statuses.Status:
    """Send one commitment N-EVENT-REPORT-RQ on ``ctx`` and return its response's status."""
    msg_id = _next_report_id()
    rq = dimse.NEventReportRQMessage()
    rq.message_id = msg_id
    rq.affected_sop_class_uid = _SC
    rq.affected_sop_instance_uid = STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE
    rq.event_type_id = event_type
    rq.data_set = encode_data_set(ds, ctx.supported_ts)
    asce.send(rq, ctx.id)
    rsp = receive_response(asce, dimse.NEventReportRSPMessage, msg_id)
    status = statuses.Status(rsp.status if rsp.status is not None else 0x0110,
                             dimse.NEventReportRSPMessage)
    if not status.is_success:
        logger.warning('storage commitment report to %s answered %s', asce.dul.peer, status)
    return status


def answer_event_report(asce, ctx, msg) -> statuses.Status:
    """Take a commitment N-EVENT-REPORT-RQ: tell ``ae.on_commitment_response``, answer it.

    Returns the status sent in the N-EVENT-REPORT-RSP: 0x0000; 0x0113 for an unknown
    Event Type ID; 0x0110 when the data set does not decode or lacks the Transaction
    UID, when the AE has no hook (or it raises ``NotImplementedError``), or when the
    hook raises ``EventHandlingError``.
    """
    status, comment = statuses.SUCCESS, None
    if msg.event_type_id not in (STORAGE_COMMITMENT_SUCCESSFUL,
                                 STORAGE_COMMITMENT_FAILURES_EXIST):
        status, comment = statuses.Status(0x0113), f'no such event type {msg.event_type_id}'
    else:
        status, comment = _deliver_report(asce, ctx, msg)
    asce.send(response_to(msg, dimse.NEventReportRSPMessage, status, comment), ctx.id)
    return statuses.Status(status, dimse.NEventReportRSPMessage)


def _transaction(msg, ctx, what: str, information: str) -> Tuple[Dataset, str]:
    """The decoded data set of a commitment request or report and its Transaction UID
    (PS3.4 J.3.2, J.3.3); ``DIMSEProcessingError`` when either is missing."""
    if msg.data_set is None:
        raise DIMSEProcessingError(f'the {what} has no {information}')
    ds = decode_data_set(msg.data_set, ctx.supported_ts)
    transaction_uid = ds.get('TransactionUID')
    if not transaction_uid:
        raise DIMSEProcessingError(f'the {what} has no Transaction UID')
    return ds, transaction_uid


def _deliver_report(asce, ctx, msg) -> Tuple[statuses.Status, Optional[str]]:
    try:
        ds, transaction_uid = _transaction(msg, ctx, 'report', 'Event Information')
        success = _references(ds, 'ReferencedSOPSequence')
        failure = _references(ds, 'FailedSOPSequence', with_reason=True)
    except NetDICOMError as exc:
        logger.info('storage commitment report from %s: %s', asce.dul.peer, exc)
        return statuses.PROCESSING_FAILURE, str(exc)
    hook = getattr(asce.ae, 'on_commitment_response', None)
    if hook is None:
        return statuses.PROCESSING_FAILURE, 'storage commitment results are not accepted here'
    try:
        hook(str(transaction_uid), success, failure)
    except NotImplementedError:
        return statuses.PROCESSING_FAILURE, 'storage commitment results are not accepted here'
    except EventHandlingError as exc:
        logger.info('on_commitment_response failed: %s', exc)
        return statuses.PROCESSING_FAILURE, str(exc) or 'on_commitment_response failed'
    return statuses.SUCCESS, None


@sop_classes([_SC])
def storage_commitment_scu(asce, ctx, transaction_uid: str,
                           references: Iterable[Tuple[str, str]], msg_id: int,
                           wait_for_report: Optional[bool] = None) -> statuses.Status:
    """Request storage commitment (N-ACTION, PS3.4 J.3.2) of ``[(cls, inst), ...]``.

    Returns the N-ACTION-RSP status: success means the SCP took the request, not that
    it committed. The result comes later as an N-EVENT-REPORT that reaches
    ``ae.on_commitment_response(transaction_uid, success, failure)``:

    * by default on a new association from the SCP, as with pynetdicom2 0.9.8: this
      AE must listen (an ``AE``) and serve ``add_scp(StorageCommitment())`` too. The
      association stays free: hold it, use it or release it while the result comes;
    * on this association, when the AE asked for it with
      ``add_scp(StorageCommitment(report_on_same_association=True))``: its
      associations then propose both roles for this SOP class, and when the SCP
      accepts them this call waits (``dcm_timeout``) for the report, answers it
      (``on_commitment_response`` runs in this thread) and only then returns.

    ``wait_for_report`` overrides that choice: True waits for a report on this
    association even without the roles (an SCP may send it anyway), False returns at
    once (then release at once: a report arriving while another response is expected
    aborts the association). A result that arrives before the N-ACTION-RSP is
    answered whatever ``wait_for_report`` says.
    """
    rq = dimse.NActionRQMessage()
    rq.message_id = msg_id
    rq.sop_class_uid = ctx.sop_class  # Requested SOP Class UID
    rq.requested_sop_instance_uid = STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE
    rq.action_type_id = REQUEST_STORAGE_COMMITMENT
    rq.data_set = encode_data_set(build_action_information(transaction_uid, references),
                                    ctx.supported_ts)
    asce.send(rq, ctx.id)
    rsp, reported = _receive_action_response(asce, msg_id)
    status = statuses.Status(rsp.status, dimse.NActionRSPMessage)
    if wait_for_report is None:
        # We proposed the SCP role only because the AE asked for the report here.
        wait_for_report = bool(asce.roles.get(_SC, (1, 0))[1])
    if wait_for_report and status.is_success and not reported:
        msg, pc_id = asce.receive()
        if not _is_report(msg):
            asce.abort()
            raise DIMSEProcessingError(f'expected a storage commitment N-EVENT-REPORT-RQ '
                                       f'from {asce.dul.peer}, received {type(msg).__name__}')
        answer_event_report(asce, asce.accepted_contexts[pc_id], msg)
    return status


def _is_report(msg) -> bool:
    return isinstance(msg, dimse.NEventReportRQMessage) and msg.sop_class_uid == _SC


def _receive_action_response(asce, msg_id: int):
    """``(N-ACTION-RSP, whether a report was answered before it)``.

    An SCP may send the result on this association before its N-ACTION-RSP (pynetdicom
    3 may, sending it from another thread): each such report is answered as it comes. Anything else
    than these and the response aborts the association (``DIMSEProcessingError``).
    """
    reported = False
    for _ in range(_MAX_EARLY_REPORTS + 1):
        msg, pc_id = asce.receive()
        if not _is_report(msg):
            break
        logger.debug('%s sent the storage commitment result before its N-ACTION-RSP',
                     asce.dul.peer)
        answer_event_report(asce, asce.accepted_contexts[pc_id], msg)
        reported = True
    else:
        asce.abort()
        raise DIMSEProcessingError(f'{asce.dul.peer} sent more than {_MAX_EARLY_REPORTS} '
                                   'reports and no N-ACTION-RSP')
    if not isinstance(msg, dimse.NActionRSPMessage):
        asce.abort()
        raise DIMSEProcessingError(f'expected NActionRSPMessage from {asce.dul.peer}, '
                                   f'received {type(msg).__name__}')
    if msg.message_id_being_responded_to != msg_id or msg.status is None:
        asce.abort()
        raise DIMSEProcessingError(
            f'N-ACTION-RSP from {asce.dul.peer} answers message '
            f'{msg.message_id_being_responded_to} (expected {msg_id}) with status {msg.status}')
    return msg, reported


class _ReportRequester(AssociationRequester):
    """The association a commitment SCP opens to deliver its report: it proposes the
    SCP role (alone) for the SOP class, as the SCU expects (PS3.4 J.3.3.1.3)."""

    def role_selection_items(self) -> list:
        return [userdataitems.ScpScuRoleSelectionSubItem(_SC, 0, 1)]


class StorageCommitment(MessageDispatcherSCP):
    """Storage Commitment Push Model SCP (N-ACTION) and result receiver (N-EVENT-REPORT).

    Add an instance as SCP: ``ae.add_scp(StorageCommitment())``. An AE that *requests*
    commitment registers it too, to take the result on a new association.
    ``StorageCommitment(report_on_same_association=True)`` asks instead for results on
    the associations this AE requests: they propose the SCU and SCP roles for this
    SOP class (PS3.7 D.3.3.4) and ``storage_commitment_scu`` waits there for the
    report. By default no role is proposed, so no SCP sends the report on an
    association nobody reads while the requester waits for it elsewhere.

    N-ACTION (PS3.4 J.3.2): the request goes to ``ae.on_commitment_request(remote_aet,
    uids)`` (``uids`` is a list of ``(sop_class_uid, sop_instance_uid)``), which returns
    ``(remote_ae, success, failure)``: where to send the result if not on this
    association (a dict with ``aet``, ``address``, ``port``, or None), the committed
    ``(cls, inst)`` and the failed ``(cls, inst, failure_reason)``. The SCP answers
    N-ACTION-RSP 0x0000, then sends the N-EVENT-REPORT-RQ (event type 1 when all
    succeeded, 2 when some failed, PS3.4 J.3.3) and waits for its response:

    * on a new association to ``remote_ae``, as pynetdicom2 0.9.8 always did,
      proposing only this SOP class with the SCP role (PS3.4 J.3.3.1.3). A failure
      there is logged; the original association carries on;
    * on this association instead when the requester asked for it by proposing both
      the SCU and the SCP role for this SOP class (as this library's
      ``report_on_same_association`` and pynetdicom do); if the requester releases
      or aborts first, on a new association to ``remote_ae`` (the association's
      release or abort is still raised). A requester proposing the SCP role alone
      is pynetdicom2 0.9.x, which proposed it for every class it served and never
      read a report on its own association: it gets a new association.

    N-ACTION-RSP statuses (PS3.4 J.3.2.1.4; the class constants): 0x0110 when the
    request does not decode or lacks the Transaction UID or references, when the AE
    has no hook (or it raises ``NotImplementedError``), or when it raises
    ``EventHandlingError`` — the association stays usable; a hook may give its
    ``EventHandlingError`` a ``status`` attribute (e.g. ``RESOURCE_LIMITATION``) to
    answer that instead. 0x0112 when the Requested SOP Instance UID is not the
    well-known 1.2.840.10008.1.20.1.1; 0x0123 (no such action) for an Action Type ID
    other than 1.

    N-EVENT-REPORT (the result, as the requesting AE): see ``answer_event_report``.
    """

    PROCESSING_FAILURE = 0x0110
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    RESOURCE_LIMITATION = 0x0213
    REFERENCED_SOP_CLASS_NOT_SUPPORTED = 0x0122
    CLASS_OR_INSTANCE_CONFLICT = 0x0119
    DUPLICATE_TRANSACTION_UID = 0x0131

    sop_classes = [_SC]
    #: As requester: take the report on our own associations (see the class text).
    report_on_same_association = False

    def __init__(self, report_on_same_association: bool = False) -> None:
        self.report_on_same_association = report_on_same_association

    @property
    def propose_scp_role(self) -> bool:
        """Whether associations this AE requests propose the SCP role for this SOP
        class (read by the association requester)."""
        return self.report_on_same_association

    def n_event_report(self, msg, asce, ctx) -> None:
        if not isinstance(msg, dimse.NEventReportRQMessage):
            asce.abort()
            raise DIMSEProcessingError(f'{asce.dul.peer} sent an unexpected {type(msg).__name__}')
        answer_event_report(asce, ctx, msg)

    def n_action(self, msg, asce, ctx) -> None:
        if not isinstance(msg, dimse.NActionRQMessage):
            asce.abort()
            raise DIMSEProcessingError(f'{asce.dul.peer} sent an unexpected {type(msg).__name__}')
        status, comment, outcome = self._commit(asce, msg, ctx)
        asce.send(response_to(msg, dimse.NActionRSPMessage, status, comment), ctx.id)
        if outcome is not None:
            self._report(asce, ctx, *outcome)

    def _commit(self, asce, msg, ctx):
        """``(status, error comment, (transaction_uid, remote_ae, success, failure) or None)``."""
        failure_status = statuses.Status(self.PROCESSING_FAILURE)
        if msg.action_type_id != REQUEST_STORAGE_COMMITMENT:
            return statuses.Status(0x0123), f'no such action {msg.action_type_id}', None
        if msg.requested_sop_instance_uid != STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE:
            return (statuses.Status(self.NO_SUCH_OBJECT_INSTANCE),
                    f'no such instance {msg.requested_sop_instance_uid}', None)
        try:
            ds, transaction_uid = _transaction(msg, ctx, 'request', 'Action Information')
            references = _references(ds, 'ReferencedSOPSequence')
            if not references:
                raise DIMSEProcessingError('the request references no instance')
        except NetDICOMError as exc:
            logger.info('storage commitment request from %s: %s', asce.dul.peer, exc)
            return failure_status, str(exc), None
        hook = getattr(asce.ae, 'on_commitment_request', None)
        if hook is None:
            return failure_status, 'storage commitment is not supported here', None
        try:
            remote_ae, success, failure = hook(asce.remote_ae, references)
        except NotImplementedError:
            return failure_status, 'storage commitment is not supported here', None
        except EventHandlingError as exc:
            logger.info('on_commitment_request failed: %s', exc)
            status = statuses.Status(getattr(exc, 'status', self.PROCESSING_FAILURE))
            return status, str(exc) or 'on_commitment_request failed', None
        outcome = (str(transaction_uid), remote_ae, list(success), list(failure))
        return statuses.SUCCESS, None, outcome

    def _report(self, asce, ctx, transaction_uid, remote_ae, success, failure) -> None:
        """Send the result where the requester can take it (PS3.4 J.3.3.1.2)."""
        event_type = (STORAGE_COMMITMENT_FAILURES_EXIST if failure
                      else STORAGE_COMMITMENT_SUCCESSFUL)
        ds = build_event_information(transaction_uid, success, failure)
        role = asce.roles.get(_SC)
        # Both roles: the requester asked for the report here (PS3.7 D.3.3.4). The SCP
        # role alone is pynetdicom2 0.9.x's proposal for every class it served.
        if role is not None and role[0] and role[1]:
            try:
                _send_event_report(asce, ctx, event_type, ds)
                return
            except (AssociationReleasedError, AssociationAbortedError):
                # PS3.4 J.3.3.1.2 note 1: the SCU may release before the report.
                if remote_ae is not None:
                    logger.info('%s left before the storage commitment report; sending '
                                'it on a new association', asce.dul.peer)
                    self._report_on_new_association(asce.ae, remote_ae, event_type, ds)
                raise
        if remote_ae is None:
            logger.warning('storage commitment result %s for %s not sent: no remote AE to '
                           'send it to, and the requester did not ask for it on this '
                           'association (SCU and SCP roles)', transaction_uid, asce.dul.peer)
            return
        self._report_on_new_association(asce.ae, remote_ae, event_type, ds)

    @staticmethod
    def _report_on_new_association(ae, remote_ae, event_type: int, ds: Dataset) -> None:
        try:
            assoc = _ReportRequester(ae, ae.max_pdu_length, remote_ae,
                                     ae.contexts_to_propose([_SC]))
            assoc.request()
            try:
                _send_event_report(assoc, assoc.context_for(_SC), event_type, ds)
            except BaseException:
                assoc.abort()
                raise
            assoc.release()
        except (NetDICOMError, OSError) as exc:
            logger.error('storage commitment result %s could not be sent to %r: %s',
                         ds.TransactionUID, remote_ae, exc)


__all__ = ['StorageCommitment', 'storage_commitment_scu', 'answer_event_report',
           'build_action_information', 'build_event_information',
           'STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS',
           'STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE', 'REQUEST_STORAGE_COMMITMENT',
           'STORAGE_COMMITMENT_SUCCESSFUL', 'STORAGE_COMMITMENT_FAILURES_EXIST']
