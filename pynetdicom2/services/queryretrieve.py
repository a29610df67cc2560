"""Query/Retrieve (PS3.4 Annex C) and Modality Worklist (PS3.4 Annex K) services.

C-FIND, C-MOVE and C-GET as SCU and SCP. Each SCU call is a generator of the
responses (closing it early sends C-CANCEL-RQ); each SCP asks the AE's
``on_receive_find`` / ``on_receive_move`` / ``on_receive_get`` hook and runs the
C-STORE sub-operations of a retrieve.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from pynetdicom2 import dimse, dsutils, incoming, statuses, transcode, uids, userdataitems
from pynetdicom2.asceprovider import (
    IMPLEMENTATION_UID, AssociationRequester, RemoteAEConfig, number_contexts)
from pynetdicom2.exceptions import (
    AssociationError, AssociationRejectedError, DCMTimeoutError, DIMSEProcessingError,
    EventHandlingError, NetDICOMError, PDUProcessingError)
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services import storage
from pynetdicom2.services.common import (
    receive_response, response_to, sop_classes)

logger = logging.getLogger(__name__)

#: Query/Retrieve FIND SOP classes served by ``qr_find_scu`` / ``qr_find_scp``.
FIND_SOP_CLASSES = [uids.PATIENT_ROOT_FIND_SOP_CLASS, uids.STUDY_ROOT_FIND_SOP_CLASS,
                    uids.PATIENT_STUDY_ONLY_FIND_SOP_CLASS]
#: Query/Retrieve MOVE SOP classes served by ``qr_move_scu`` / ``qr_move_scp``.
MOVE_SOP_CLASSES = [uids.PATIENT_ROOT_MOVE_SOP_CLASS, uids.STUDY_ROOT_MOVE_SOP_CLASS,
                    uids.PATIENT_STUDY_ONLY_MOVE_SOP_CLASS]
#: Query/Retrieve GET SOP classes served by ``qr_get_scu`` / ``qr_get_scp``.
GET_SOP_CLASSES = list(uids.QR_GET_SOP_CLASSES)

# Status (0000,0900) of the C-STORE-RSP we send on our side of a C-GET when the
# consumer of qr_get_scu stopped (cancel): the data set was not processed, PS3.7 C.4.2
# general failure.
_STORE_NOT_PROCESSED = statuses.PROCESSING_FAILURE

# C-CANCEL-RQs for the running C-GET that one wait for a C-STORE-RSP will skip.
_MAX_CANCELS_SKIPPED = 16


# -- identifiers ---------------------------------------------------------------------

def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    """``ds`` encoded as a data set in ``transfer_syntax`` (an identifier, PS3.7 9.1.2)."""
    implicit, little, deflated = transcode.data_set_encoding(transfer_syntax)
    raw = dsutils.encode_flat(ds, implicit) if little else None
    if raw is None:
        fp = DicomBytesIO()
        fp.is_implicit_VR = implicit
        fp.is_little_endian = little
        write_dataset(fp, ds)
        raw = fp.getvalue()
    return transcode.deflate(raw) if deflated else raw


def decode_identifier(raw: bytes, transfer_syntax: str) -> Dataset:
    """The data set encoded in ``raw`` under ``transfer_syntax``.

    Bytes that do not decode raise ``DIMSEProcessingError``.
    """
    try:
        return transcode.read_data_set(raw, transfer_syntax)
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise DIMSEProcessingError(
            f'identifier does not decode as a data set in {UID(transfer_syntax).name}: '
            f'{exc}') from exc


def _request_identifier(msg, ctx: PContextDef) -> Dataset:
    if not isinstance(msg.data_set, (bytes, bytearray)):
        raise DIMSEProcessingError(f'{type(msg).__name__} carries no identifier')
    return decode_identifier(msg.data_set, ctx.supported_ts)


def _status_of(asce, rsp, response_class) -> statuses.Status:
    """The response's Status as a ``Status``; a response without one aborts."""
    if rsp.status is None:
        asce.abort()
        raise DIMSEProcessingError(f'{response_class.__name__} without a Status (0000,0900)')
    return statuses.Status(rsp.status, response_class)


def _response_identifier(asce, rsp, ctx: PContextDef) -> Optional[Dataset]:
    if rsp.data_set is None:
        return None
    try:
        return decode_identifier(rsp.data_set, ctx.supported_ts)
    except DIMSEProcessingError:
        asce.abort()
        raise


# -- cancel --------------------------------------------------------------------------

def _cancel_requested(asce, msg_id: int) -> bool:
    """True when the peer has sent C-CANCEL-RQ for request ``msg_id`` (PS3.7 9.3.2.3).

    Only what has already arrived is read, so the operation is not slowed down. A
    cancel for another message is ignored; any other message while one operation is
    outstanding breaks the protocol (we negotiate no asynchronous operations): the
    association is aborted and ``DIMSEProcessingError`` raised.
    """
    if not asce.message_waiting():
        return False
    msg, _ = asce.receive()
    if isinstance(msg, dimse.CCancelRQMessage):
        if msg.message_id_being_responded_to == msg_id:
            logger.info('%s cancelled request %s', asce.dul.peer, msg_id)
            return True
        logger.info('ignoring C-CANCEL-RQ for message %s while serving %s',
                    msg.message_id_being_responded_to, msg_id)
        return False
    asce.abort()
    raise DIMSEProcessingError(
        f'{asce.dul.peer} sent {type(msg).__name__} while request {msg_id} was in progress')


def _cancel_and_drain(asce, ctx: PContextDef, msg_id: int, response_class,
                      on_store=None) -> Optional[statuses.Status]:
    """Send C-CANCEL-RQ for ``msg_id`` and read responses up to the final one.

    The association is then ready for the next request. ``on_store(msg, pc_id)``
    answers C-STORE-RQs of a C-GET still arriving. The wait is bounded by the
    AE's ``dcm_timeout``: past it the association is aborted (``DCMTimeoutError``).
    Nothing is sent when the association has already ended.
    """
    if not asce.association_established or asce.dul is None or asce.dul.sock is None:
        return None
    cancel = dimse.CCancelRQMessage()
    cancel.message_id_being_responded_to = msg_id
    asce.send(cancel, ctx.id)
    timeout = getattr(asce, 'settings', asce.ae).dcm_timeout
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            asce.abort()
            raise DCMTimeoutError(
                f'no final {response_class.__name__} from {asce.dul.peer} within '
                f'{timeout} s of C-CANCEL-RQ; the association was aborted')
        msg, pc_id = asce.receive()
        if on_store is not None and isinstance(msg, dimse.CStoreRQMessage):
            on_store(msg, pc_id)
            continue
        if (not isinstance(msg, response_class)
                or msg.message_id_being_responded_to != msg_id):
            asce.abort()
            raise DIMSEProcessingError(
                f'expected {response_class.__name__} for message {msg_id} after '
                f'C-CANCEL-RQ, received {type(msg).__name__}')
        status = _status_of(asce, msg, response_class)
        if not status.is_pending:
            logger.debug('cancelled request %s ended with %s', msg_id, status)
            return status


# -- C-FIND --------------------------------------------------------------------------

def _send_request(asce, ctx: PContextDef, rq, ds: Dataset, msg_id: int) -> None:
    """Send a C-FIND/C-MOVE/C-GET-RQ with ``ds`` as its identifier (priority medium)."""
    rq.message_id = msg_id
    rq.sop_class_uid = ctx.sop_class
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = encode_identifier(ds, ctx.supported_ts)
    asce.send(rq, ctx.id)


def _responses(asce, ctx: PContextDef, rq, ds: Dataset, msg_id: int, response_class
               ) -> Iterator[Tuple[statuses.Status, Any]]:
    """Send ``rq``; yield ``(Status, response)`` up to and including the final one.

    Closed before the final response, it cancels and drains (``_cancel_and_drain``).
    """
    _send_request(asce, ctx, rq, ds, msg_id)
    while True:
        rsp = receive_response(asce, response_class, msg_id)
        status = _status_of(asce, rsp, response_class)
        if not status.is_pending:
            yield status, rsp
            return
        try:
            yield status, rsp
        except GeneratorExit:
            _cancel_and_drain(asce, ctx, msg_id, response_class)
            raise


def _find_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
              ) -> Iterator[Tuple[Optional[Dataset], statuses.Status]]:
    responses = _responses(asce, ctx, dimse.CFindRQMessage(), ds, msg_id,
                           dimse.CFindRSPMessage)
    try:
        for status, rsp in responses:
            yield _response_identifier(asce, rsp, ctx), status
    finally:
        responses.close()


@sop_classes(FIND_SOP_CLASSES)
def qr_find_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
                ) -> Iterator[Tuple[Optional[Dataset], statuses.Status]]:
    """C-FIND (PS3.4 C.4.1): a generator of ``(identifier or None, Status)``.

    Sends C-FIND-RQ (priority medium, ``ds`` encoded in the context's transfer
    syntax) when first advanced; yields each response's identifier as a Dataset
    (None when it carries none), up to and including the final response (which
    may carry one, e.g. from an SCP answering ``(ds, SUCCESS)``), and stops.
    Closing the generator before the final response sends C-CANCEL-RQ and reads
    the remaining responses (bounded by ``dcm_timeout``), so the association stays
    usable.
    """
    return _find_scu(asce, ctx, ds, msg_id)


def _send_final(asce, ctx: PContextDef, msg, response_class, status,
                comment: Optional[str] = None, sub_ops: Optional['_SubOperations'] = None,
                identifier: Optional[Dataset] = None) -> None:
    rsp = response_to(msg, response_class, status, comment)
    if identifier is not None:
        rsp.data_set = encode_identifier(identifier, ctx.supported_ts)
    if sub_ops is not None:
        sub_ops.fill(rsp, final=True)
        if sub_ops.failed_uids and int(status) != 0x0000:
            # PS3.4 C.4.2.1.6 / C.4.3.1.6: the identifier of a final response with
            # Warning, Failure or Cancel may list the instances that failed.
            failed = Dataset()
            failed.FailedSOPInstanceUIDList = list(sub_ops.failed_uids)
            rsp.data_set = encode_identifier(failed, ctx.supported_ts)
    asce.send(rsp, ctx.id)


def _close_iterator(matches) -> None:
    close = getattr(matches, 'close', None)
    if close is not None:
        try:
            close()
        except EventHandlingError:
            logger.info('closing the matches after a cancel failed', exc_info=True)


# What _ask returns when the hook failed and the final response has been sent.
_ANSWERED = object()
# What a handler's iterator gives when it is exhausted.
_END = object()


def _received_request(asce, ctx: PContextDef, msg, response_class) -> Optional[Dataset]:
    """The identifier of the request an SCP was called with, or None when done.

    A C-CANCEL-RQ that crossed our final response has nothing left to stop and is
    ignored (PS3.7 9.3.2.3); an identifier that does not decode is answered 0xC000.
    """
    if isinstance(msg, dimse.CCancelRQMessage):
        logger.debug('C-CANCEL-RQ for finished message %s ignored',
                     msg.message_id_being_responded_to)
        return None
    try:
        return _request_identifier(msg, ctx)
    except DIMSEProcessingError as exc:
        _send_final(asce, ctx, msg, response_class, _unable(response_class), str(exc))
        return None


def _ask(asce, ctx: PContextDef, msg, response_class, call, sub_ops=None):
    """``call()``'s result; ``_ANSWERED`` when a user hook in it raised
    ``EventHandlingError``, which is answered 0xC000 with its text as Error Comment
    (or with the exception's own failure ``status``, as for storage commitment)."""
    try:
        return call()
    except EventHandlingError as exc:
        status = _unable(response_class)
        own = getattr(exc, 'status', None)
        if own is not None and statuses.Status(own, response_class).is_failure:
            status = statuses.Status(own, response_class)
        logger.info('the handler failed; answering %s with %s', response_class.__name__,
                    status, exc_info=True)
        _send_final(asce, ctx, msg, response_class, status, str(exc) or None, sub_ops)
        return _ANSWERED


def _unable(response_class) -> statuses.Status:
    """0xC000, "unable to process" (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)."""
    return statuses.Status(0xC000, response_class)


# Implementation Class UIDs of requesters that read an identifier on a final C-FIND-RSP:
# ours and pynetdicom2 0.9.x's, whose SCP answered ``(ds, SUCCESS)`` that way.
_FINAL_IDENTIFIER_READERS = frozenset({
    IMPLEMENTATION_UID, '1.2.826.0.1.3680043.8.498.1.1.155105445218102811803000'})


def _reads_final_identifier(asce) -> bool:
    """True when the requester is one of ``_FINAL_IDENTIFIER_READERS``."""
    info = getattr(getattr(asce, 'rq', None), 'user_information', None)
    for item in (info.user_data if info is not None else ()):
        if isinstance(item, userdataitems.ImplementationClassUIDSubItem):
            return str(item.implementation_class_uid).rstrip('\0 ') in _FINAL_IDENTIFIER_READERS
    return False


def _find_scp(asce, ctx: PContextDef, msg) -> None:
    rsp_class = dimse.CFindRSPMessage
    ds = _received_request(asce, ctx, msg, rsp_class)
    if ds is None:
        return
    matches = _ask(asce, ctx, msg, rsp_class, lambda: iter(asce.ae.on_receive_find(ctx, ds)))
    if matches is _ANSWERED:
        return
    while True:
        if _cancel_requested(asce, msg.message_id):
            _close_iterator(matches)
            _send_final(asce, ctx, msg, rsp_class, statuses.C_FIND_CANCEL)
            return
        item = _ask(asce, ctx, msg, rsp_class, lambda: next(matches, _END))
        if item is _ANSWERED:
            return
        if item is _END:
            break
        match, status = item
        status = statuses.Status(status, rsp_class)
        if not status.is_pending:
            # The handler chose the final status itself: it ends the operation.
            _close_iterator(matches)
            if match is not None and not _reads_final_identifier(asce):
                # PS3.4 Table C.4-1: a final response carries no identifier, and DCMTK
                # then fails the release on the P-DATA it did not read. A match
                # (with success or warning) goes in a pending response of its own.
                if status.is_success or status.is_warning:
                    rsp = response_to(msg, rsp_class, statuses.C_FIND_PENDING)
                    rsp.data_set = encode_identifier(match, ctx.supported_ts)
                    asce.send(rsp, ctx.id)
                match = None
            _send_final(asce, ctx, msg, rsp_class, status, identifier=match)
            return
        rsp = response_to(msg, rsp_class, status)
        # Encoded now, before the handler runs again: each match goes out as it was
        # when yielded, even if the handler reuses one Dataset object.
        if match is not None:
            rsp.data_set = encode_identifier(match, ctx.supported_ts)
        asce.send(rsp, ctx.id)
    _send_final(asce, ctx, msg, rsp_class, statuses.SUCCESS)


@sop_classes(FIND_SOP_CLASSES)
def qr_find_scp(asce, ctx: PContextDef, msg) -> None:
    """C-FIND SCP: answer with the matches of ``ae.on_receive_find(ctx, ds)``.

    The hook yields ``(Dataset, Status or int)``; each pending one becomes a pending
    C-FIND-RSP carrying that Dataset, encoded at once; a non-pending status ends the
    operation as the final response, carrying the Dataset yielded with it (None: no
    identifier), as pynetdicom2 0.9.8 did: ``yield ds, SUCCESS`` answers with one
    match. That is for requesters that read it (this library and pynetdicom2 0.9.x,
    known by their Implementation Class UID); any other gets the Dataset of a
    success or warning in a pending response before the final one, as PS3.4 Table
    C.4-1 wants (with a failure or cancel it is left out). When the
    handler gives no final status the final response is 0x0000 without an
    identifier.
    ``EventHandlingError`` from the hook (called or iterated) ends with 0xC000 and
    the association stays usable. A C-CANCEL-RQ from the peer, looked for before
    each match, ends with 0xFE00.
    """
    _find_scp(asce, ctx, msg)


@sop_classes([uids.MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS])
def modality_work_list_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
                           ) -> Iterator[Tuple[Optional[Dataset], statuses.Status]]:
    """Modality Worklist C-FIND (PS3.4 K.4.1): as ``qr_find_scu``."""
    return _find_scu(asce, ctx, ds, msg_id)


@sop_classes([uids.MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS])
def modality_work_list_scp(asce, ctx: PContextDef, msg) -> None:
    """Modality Worklist C-FIND SCP: as ``qr_find_scp``, through ``on_receive_find``."""
    _find_scp(asce, ctx, msg)


# -- retrieve sub-operations ---------------------------------------------------------

class _SubOperations:
    """The counts a C-MOVE / C-GET response reports (PS3.7 9.3.3.2, 9.3.4.2)."""

    def __init__(self, remaining: int) -> None:
        self.remaining = max(int(remaining or 0), 0)
        self.completed = 0
        self.failed = 0
        self.warning = 0
        self.failed_uids: List[str] = []
        #: Why the first failed sub-operation failed: the final response's Error Comment.
        self.failure_comment: Optional[str] = None

    def record(self, outcome: str, sop_instance_uid: Optional[str],
               comment: Optional[str] = None) -> None:
        self.remaining = max(self.remaining - 1, 0)
        if outcome == 'failed' and comment and self.failure_comment is None:
            self.failure_comment = comment
        if outcome == 'completed':
            self.completed += 1
        elif outcome == 'warning':
            self.warning += 1
        else:
            self.failed += 1
            if sop_instance_uid:
                self.failed_uids.append(str(sop_instance_uid))

    def fill(self, rsp, final: bool = False) -> None:
        # PS3.4 C.4.2.1.5: Remaining goes in pending (and may in cancel) responses;
        # the other three in every response.
        if not final or int(rsp.status) == 0xFE00:
            rsp.num_of_remaining_sub_ops = self.remaining
        rsp.num_of_completed_sub_ops = self.completed
        rsp.num_of_failed_sub_ops = self.failed
        rsp.num_of_warning_sub_ops = self.warning

    def final_status(self, response_class) -> statuses.Status:
        """0x0000 when every sub-operation succeeded, else 0xB000 (PS3.4 C.4.2.3.1)."""
        if self.failed or self.warning:
            return statuses.Status(0xB000, response_class)
        return statuses.Status(0x0000, response_class)


class _Instance(NamedTuple):
    """One data set a retrieve sends: where it is, and what its file meta says."""
    source: Any                    # a pydicom Dataset, or a path (str)
    sop_class: str
    sop_instance: str
    transfer_syntax: Optional[str]  # None: a Dataset without file meta, any syntax


class _Unsendable(Exception):
    """A data set the hook returned that cannot be sent (internal)."""

    def __init__(self, reason: str, sop_instance: Optional[str] = None) -> None:
        super().__init__(reason)
        self.sop_instance = sop_instance


def _describe(item) -> _Instance:
    """What a C-STORE sub-operation needs to know of ``item`` (a Dataset or a path).

    For a path only the file meta information is read.
    """
    if isinstance(item, Dataset):
        sop_class = item.get('SOPClassUID')
        sop_instance = item.get('SOPInstanceUID')
        if not sop_class or not sop_instance:
            raise _Unsendable('data set without SOP Class UID or SOP Instance UID',
                              sop_instance)
        meta = getattr(item, 'file_meta', None)
        ts = meta.get('TransferSyntaxUID') if meta is not None else None
        return _Instance(item, str(sop_class), str(sop_instance), str(ts) if ts else None)
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        try:
            meta = read_file_meta_info(path)
        except Exception as exc:  # unreadable or not Part-10: this one sub-op fails
            raise _Unsendable(f'{path}: {exc}') from exc
        sop_class = meta.get('MediaStorageSOPClassUID')
        sop_instance = meta.get('MediaStorageSOPInstanceUID')
        ts = meta.get('TransferSyntaxUID')
        if not sop_class or not sop_instance or not ts:
            raise _Unsendable(f'{path}: file meta information lacks the SOP class, '
                              'instance or transfer syntax', sop_instance)
        return _Instance(path, str(sop_class), str(sop_instance), str(ts))
    raise _Unsendable(f'cannot send a {type(item).__name__}; expected a Dataset or a path')


def _syntaxes_to_propose(instance: _Instance, decompress_lossy: bool = True
                         ) -> Tuple[str, ...]:
    """The instance's own syntax first, then the uncompressed ones it converts to."""
    return transcode.offered_syntaxes(instance.transfer_syntax, decompress_lossy)


def _store_context(asce, instance: _Instance, need_scp_role: bool = False
                   ) -> Optional[PContextDef]:
    """The accepted context to send ``instance`` on, or None.

    The context with the instance's own transfer syntax is preferred; else any: the
    storage SCU converts the instance to its syntax or says why it cannot. With
    ``need_scp_role`` (C-GET) only contexts for which the requester accepted the
    SCP role qualify (PS3.4 C.5.3, PS3.7 D.3.3.4).
    """
    candidates = [c for c in asce.accepted_contexts.values()
                  if c.sop_class == instance.sop_class]
    if need_scp_role:
        candidates = [c for c in candidates if asce.roles.get(c.sop_class, (1, 0))[1] == 1]
    for ctx in candidates:
        if ctx.supported_ts == instance.transfer_syntax:
            return ctx
    return candidates[0] if candidates else None


def _outcome(status: statuses.Status) -> str:
    if status.is_success:
        return 'completed'
    if status.is_warning:
        return 'warning'
    return 'failed'


# Errors after which the association a C-STORE went over is gone.
_ASSOCIATION_LOST = (AssociationError, DCMTimeoutError, DIMSEProcessingError,
                     PDUProcessingError)


def _store(assoc, ctx: PContextDef, instance: _Instance, msg_id: int, **originator
           ) -> Tuple[str, Optional[str]]:
    """Run one C-STORE sub-operation; ('completed', 'warning' or 'failed', why it failed).

    A failure of the data set itself (cannot be converted or encoded, file vanished)
    is 'failed' with the reason; a failure of the association propagates.
    """
    from pynetdicom2.services import storage  # written beside us; imported when used
    try:
        status = storage.storage_scu(assoc, ctx, instance.source, msg_id, **originator)
    except _ASSOCIATION_LOST:
        raise
    except (NetDICOMError, OSError, ValueError) as exc:
        logger.warning('C-STORE of %s failed: %s', instance.sop_instance, exc)
        return 'failed', getattr(exc, 'comment', None) or str(exc)
    status = statuses.Status(status, dimse.CStoreRSPMessage)
    if not (status.is_success or status.is_warning):
        logger.info('C-STORE of %s answered %s', instance.sop_instance, status)
    return _outcome(status), None


def _next_message_id(msg_id: int) -> int:
    return msg_id % 0xFFFF + 1


# -- C-MOVE --------------------------------------------------------------------------

@sop_classes(MOVE_SOP_CLASSES)
def qr_move_scu(asce, ctx: PContextDef, ds: Dataset, destination_aet: str, msg_id: int
                ) -> Iterator[Tuple[statuses.Status, dimse.CMoveRSPMessage]]:
    """C-MOVE (PS3.4 C.4.2): a generator of ``(Status, CMoveRSPMessage)``.

    Asks the peer to send the matches of ``ds`` to ``destination_aet``; yields each
    response, the final one included, and stops after it. The counts are on the
    message (``num_of_completed_sub_ops`` ...). Closing the generator before the
    final response sends C-CANCEL-RQ and reads up to the final response.
    """
    rq = dimse.CMoveRQMessage()
    rq.move_destination = destination_aet
    return _responses(asce, ctx, rq, ds, msg_id, dimse.CMoveRSPMessage)


def _move_contexts(instances: List[_Instance], decompress_lossy: bool = True) -> dict:
    """The contexts of a C-MOVE sub-association: per SOP class, an uncompressed
    instance's syntax first with the others it converts to, and a compressed one's
    syntax alone, the uncompressed ones it converts to in another context; so the
    destination can take compressed data as they are and still accept the class when
    it takes only uncompressed data. Past 128 contexts, a class's syntaxes share one
    (``asceprovider.number_contexts``)."""
    classes: dict = {}
    for instance in instances:
        groups = classes.setdefault(instance.sop_class, {})
        offered = _syntaxes_to_propose(instance, decompress_lossy)
        if transcode.is_uncompressed(instance.transfer_syntax):
            groups[offered] = None
        else:
            groups[offered[:1]] = None
            if offered[1:]:
                groups[offered[1:]] = None
    return number_contexts((sop_class, list(groups)) for sop_class, groups in classes.items())


def _move_scp(asce, ctx: PContextDef, msg) -> None:
    rsp_class = dimse.CMoveRSPMessage
    ds = _received_request(asce, ctx, msg, rsp_class)
    if ds is None:
        return
    destination = msg.move_destination

    def call():
        answer = asce.ae.on_receive_move(ctx, ds, destination)
        remote_ae, nops, datasets = answer if answer is not None else (None, 0, ())
        # Buffered: the sub-association must propose every SOP class before the first
        # C-STORE. Paths cost little; Datasets stay in memory until the move ends.
        return remote_ae, nops, list(datasets) if datasets is not None else []
    answer = _ask(asce, ctx, msg, rsp_class, call)
    if answer is _ANSWERED:
        return
    remote_ae, nops, items = answer
    try:
        remote = None if remote_ae is None else RemoteAEConfig.from_value(remote_ae)
    except (TypeError, ValueError) as exc:
        logger.warning('on_receive_move gave an unusable remote AE %r: %s', remote_ae, exc)
        remote = None
    if remote is None:
        _send_final(asce, ctx, msg, rsp_class, statuses.C_MOVE_DESTINATION_UNKNOWN,
                    f'move destination {destination!r} unknown')
        return
    if nops is not None and nops != len(items):
        logger.debug('on_receive_move announced %s sub-operations and gave %d',
                     nops, len(items))

    sub_ops = _SubOperations(len(items))
    instances: List[_Instance] = []
    for item in items:
        try:
            instances.append(_describe(item))
        except _Unsendable as exc:
            logger.warning('C-MOVE sub-operation fails: %s', exc)
            sub_ops.record('failed', exc.sop_instance)
    if not instances:
        _send_final(asce, ctx, msg, rsp_class, sub_ops.final_status(rsp_class),
                    sub_ops=sub_ops)
        return

    # The sub-association has settings of its own (for its peer); ours decide what to send.
    contexts = _move_contexts(instances, getattr(
        getattr(asce, 'settings', asce.ae), 'decompress_lossy', True))
    assoc = AssociationRequester(asce.ae, None, remote, contexts)
    try:
        assoc.request()
    except (NetDICOMError, OSError) as exc:
        # The destination is known (0xA801 would tell the requester it is not) but
        # rejected, refused or did not answer the sub-association: no sub-operation
        # can be performed, 0xA702 with every one counted failed (PS3.4 C.4.2.1.5,
        # C.4.2.3.1). The whole reason goes to the log; the Error Comment is cut.
        logger.warning('C-MOVE from %s: cannot associate with move destination %s at '
                       '%s:%s: %s; %d sub-operation(s) failed', _requester(asce),
                       remote.aet, remote.address, remote.port, exc, len(instances))
        for instance in instances:
            sub_ops.record('failed', instance.sop_instance)
        _send_final(asce, ctx, msg, rsp_class, statuses.Status(0xA702, rsp_class),
                    _unreachable(remote, exc), sub_ops)
        return
    try:
        final = _move_sub_operations(asce, ctx, msg, assoc, instances, sub_ops)
    except BaseException:
        assoc.abort()
        raise
    if assoc.association_established:
        try:
            assoc.release()
        except NetDICOMError as exc:
            logger.info('releasing the C-MOVE sub-association failed: %s', exc)
    status, comment = final
    _send_final(asce, ctx, msg, rsp_class, status, comment, sub_ops)


def _unreachable(remote: RemoteAEConfig, exc: BaseException) -> str:
    """The Error Comment for a move destination we could not associate with: what
    happened in a few words that fit in 64 characters, the address included."""
    if isinstance(exc, AssociationRejectedError):
        return f'{remote.aet} rejected the sub-association (diagnostic {exc.diagnostic})'
    where = f'{remote.aet} at {remote.address}:{remote.port}'
    if isinstance(exc, DCMTimeoutError):
        return f'move destination {where} did not answer'
    return f'cannot reach move destination {where}'


def _requester(asce) -> str:
    """``AET@host:port`` of the peer an SCP association serves, for log lines."""
    dul = getattr(asce, 'dul', None)
    return getattr(dul, 'peer', None) or getattr(asce, 'remote_ae', None) or 'a peer'


def _move_sub_operations(asce, ctx, msg, assoc, instances, sub_ops):
    """Send every instance over ``assoc``; returns the final (status, comment)."""
    rsp_class = dimse.CMoveRSPMessage
    originator = {'move_originator_aet': asce.remote_ae,
                  'move_originator_message_id': msg.message_id}
    sub_msg_id = 0
    for n, instance in enumerate(instances):
        if _cancel_requested(asce, msg.message_id):
            return statuses.C_MOVE_CANCEL, None
        store_ctx = _store_context(assoc, instance)
        if store_ctx is None:
            refused = storage.not_accepted(assoc, instance.sop_class)
            logger.warning('C-MOVE: %s', refused)
            outcome, comment = 'failed', refused.comment
        else:
            sub_msg_id = _next_message_id(sub_msg_id)
            try:
                outcome, comment = _store(assoc, store_ctx, instance, sub_msg_id, **originator)
            except _ASSOCIATION_LOST as exc:
                logger.warning('C-MOVE sub-association with %s lost: %s',
                               assoc.remote_ae.aet, exc)
                for rest in instances[n:]:
                    sub_ops.record('failed', rest.sop_instance)
                return statuses.C_MOVE_UNABLE_TO_PROCESS, f'sub-association lost: {exc}'
        sub_ops.record(outcome, instance.sop_instance, comment)
        pending = response_to(msg, rsp_class, statuses.C_MOVE_PENDING)
        sub_ops.fill(pending)
        asce.send(pending, ctx.id)
    return sub_ops.final_status(rsp_class), sub_ops.failure_comment


@sop_classes(MOVE_SOP_CLASSES)
def qr_move_scp(asce, ctx: PContextDef, msg) -> None:
    """C-MOVE SCP: send the data sets ``ae.on_receive_move`` names to its destination.

    The hook returns ``(remote_ae, number_of_sub_ops, data sets)``, the data sets
    being pydicom Datasets or file paths. They are first gathered into a list (for a
    path only the file meta is read) so that ONE sub-association to ``remote_ae``
    proposes just their SOP classes, each in its own transfer syntax (a compressed
    one in a context of its own), then every uncompressed syntax it can be converted
    to (``pynetdicom2.transcode``; a lossy one only when the AE's ``decompress_lossy``
    is not False). Each goes by C-STORE
    with the Move Originator AE title and message ID, converted when the destination
    accepted another syntax, followed by a pending C-MOVE-RSP with the counts; the
    final status is 0x0000, or 0xB000 when one failed or warned (failed instances
    listed in the identifier, the first failure's reason as Error Comment).

    Other endings: the hook returns None or a None ``remote_ae`` (destination not
    known) → 0xA801; the sub-association is rejected or cannot be made → 0xA702
    (unable to perform sub-operations) with every sub-operation failed and a
    WARNING naming the requester and the destination; it is lost midway → 0xC000
    with the rest failed; ``EventHandlingError`` from the hook → 0xC000; C-CANCEL-RQ from the
    peer (looked for before each sub-operation) → 0xFE00 with the counts.
    """
    _move_scp(asce, ctx, msg)


# -- C-GET ---------------------------------------------------------------------------

def _overrides(ae, name: str) -> bool:
    """True when ``ae``'s class redefines the hook ``name`` of its base class."""
    owners = [klass for klass in type(ae).__mro__ if name in vars(klass)]
    return len(owners) > 1


def _received_data(asce, store_ctx: PContextDef, msg):
    """What a C-STORE-RQ received during C-GET carries, for the consumer to see.

    The file (positioned at its start) for ``store_in_file`` SOP classes, else a
    Dataset decoded from the bytes; None when the bytes do not decode.
    """
    owner = storage.received_data_set(store_ctx, msg)
    in_file = store_ctx.sop_class in getattr(asce.ae, 'store_in_file', ())
    data = owner.for_hook(in_file or isinstance(owner, incoming.SuppliedFile))
    if not isinstance(data, (bytes, bytearray)):
        return data
    try:
        return decode_identifier(data, store_ctx.supported_ts)
    except DIMSEProcessingError as exc:
        logger.warning('C-STORE data set from %s does not decode: %s', asce.dul.peer, exc)
        return None


def _store_status(asce, store_ctx: PContextDef, msg) -> Tuple[statuses.Status, Optional[str]]:
    """The status (and Error Comment) to answer a C-STORE received during C-GET with,
    once consumed; the data set is kept or dropped by then, as by the storage SCP.

    0x0000; or, when the AE overrides ``on_receive_store``, that hook's status (it
    gets the file at its start or the raw bytes, as for every C-STORE), 0xC000
    when it raises ``EventHandlingError``.
    """
    return storage.keep_or_drop(asce, store_ctx, msg,
                                call_hook=_overrides(asce.ae, 'on_receive_store'))


def _answer_store(asce, msg, pc_id: int, status, comment: Optional[str] = None) -> None:
    storage.answer(asce, msg, pc_id, status, comment)


def _release_data(asce, msg) -> None:
    """The exchange of a C-STORE-RQ is over: hand its data set back, as the storage SCP
    does (what was not kept is dropped)."""
    storage.release(msg)


def _refuse_store(asce):
    """After our C-CANCEL-RQ, C-STORE-RQs still in flight are answered as failures."""
    def refuse(msg, pc_id):
        _release_data(asce, msg)
        _answer_store(asce, msg, pc_id, _STORE_NOT_PROCESSED)
    return refuse


@sop_classes(GET_SOP_CLASSES)
def qr_get_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
               ) -> Iterator[Tuple[PContextDef, Any]]:
    """C-GET (PS3.4 C.4.3): a generator of ``(store context, data set)``.

    The peer sends the matches by C-STORE on this same association, so propose the
    storage SOP classes with the SCP role: register a storage SCP for them
    (``add_scp``; classes in ``store_in_file`` arrive in a file). Each C-STORE-RQ is
    yielded with the context it came on: a Dataset decoded from the bytes, or the
    open file (positioned at its start) for ``store_in_file`` classes. When the
    consumer resumes the generator the C-STORE-RSP goes back: 0x0000, or, when the
    AE overrides ``on_receive_store`` (``ClientStorageAE`` does), that hook is called
    then and its status answered; on Success or Warning the data set is kept (a
    ``ClientStorageAE`` gives it its final name) before the response leaves, else
    dropped; the file is then released, so read it before resuming. A data set that
    does not parse to its end, or whose UIDs are not the request's, is answered
    0xC000 / 0xA900 as by the storage SCP and never yielded.
    Pending C-GET-RSPs are read silently; the generator ends after the final one
    and returns its Status (``StopIteration.value``).

    If the consumer closes the generator (or it is thrown an exception, or dropped
    while suspended), the C-STORE in hand is answered 0x0110 (processing failure),
    C-CANCEL-RQ is sent, C-STOREs still arriving are refused the same way, and the
    responses are read up to the final one (bounded by ``dcm_timeout``).
    """
    _send_request(asce, ctx, dimse.CGetRQMessage(), ds, msg_id)
    while True:
        msg, pc_id = asce.receive()
        if isinstance(msg, dimse.CGetRSPMessage) and msg.message_id_being_responded_to == msg_id:
            status = _status_of(asce, msg, dimse.CGetRSPMessage)
            if status.is_pending:
                continue
            if not status.is_success:
                logger.info('C-GET %s ended with %s (%s completed, %s failed, %s warning)',
                            msg_id, status, msg.num_of_completed_sub_ops,
                            msg.num_of_failed_sub_ops, msg.num_of_warning_sub_ops)
            return status
        if not isinstance(msg, dimse.CStoreRQMessage):
            asce.abort()
            raise DIMSEProcessingError(
                f'expected C-STORE-RQ or C-GET-RSP for message {msg_id} from '
                f'{asce.dul.peer}, received {type(msg).__name__}')
        store_ctx = asce.accepted_contexts[pc_id]
        # Checked as by the storage SCP: the consumer never sees a data set that
        # does not parse or is not the one the request names.
        refused = storage.refusal(asce, store_ctx, msg)
        data = _received_data(asce, store_ctx, msg) if refused is None else None
        if data is None:
            _release_data(asce, msg)
            _answer_store(asce, msg, pc_id, *(refused or (
                statuses.C_STORE_CANNOT_UNDERSTAND, 'the data set does not decode')))
            continue
        try:
            yield store_ctx, data
        except BaseException:
            _release_data(asce, msg)
            _answer_store(asce, msg, pc_id, _STORE_NOT_PROCESSED)
            _cancel_and_drain(asce, ctx, msg_id, dimse.CGetRSPMessage, _refuse_store(asce))
            raise
        try:
            status, comment = _store_status(asce, store_ctx, msg)
        finally:
            _release_data(asce, msg)
        _answer_store(asce, msg, pc_id, status, comment)


class _CancelWatch:
    """The association as a C-STORE sub-operation of a C-GET sees it.

    A C-CANCEL-RQ for the C-GET that arrives while the C-STORE waits for its
    response is noted (``cancelled``) instead of being taken for the response.
    """

    def __init__(self, asce, msg_id: int) -> None:
        self._asce = asce
        self._msg_id = msg_id
        self.cancelled = False

    def __getattr__(self, name: str):
        return getattr(self._asce, name)

    def receive(self):
        for _ in range(_MAX_CANCELS_SKIPPED):
            msg, pc_id = self._asce.receive()
            if not (isinstance(msg, dimse.CCancelRQMessage)
                    and msg.message_id_being_responded_to == self._msg_id):
                return msg, pc_id
            logger.info('%s cancelled C-GET %s', self._asce.dul.peer, self._msg_id)
            self.cancelled = True
        self._asce.abort()
        raise DIMSEProcessingError(f'{self._asce.dul.peer} sent C-CANCEL-RQ again and again')


def _get_scp(asce, ctx: PContextDef, msg) -> None:
    rsp_class = dimse.CGetRSPMessage
    ds = _received_request(asce, ctx, msg, rsp_class)
    if ds is None:
        return

    def call():
        nops, datasets = asce.ae.on_receive_get(ctx, ds)
        return nops, iter(datasets if datasets is not None else ())
    answer = _ask(asce, ctx, msg, rsp_class, call)
    if answer is _ANSWERED:
        return
    nops, items = answer
    sub_ops = _SubOperations(nops)
    watch = _CancelWatch(asce, msg.message_id)
    sub_msg_id = 0
    while True:
        if watch.cancelled or _cancel_requested(asce, msg.message_id):
            _close_iterator(items)
            _send_final(asce, ctx, msg, rsp_class, statuses.C_GET_CANCEL, sub_ops=sub_ops)
            return
        item = _ask(asce, ctx, msg, rsp_class, lambda: next(items, _END), sub_ops)
        if item is _ANSWERED:
            return
        if item is _END:
            break
        try:
            instance = _describe(item)
        except _Unsendable as exc:
            logger.warning('C-GET sub-operation fails: %s', exc)
            sub_ops.record('failed', exc.sop_instance)
        else:
            store_ctx = _store_context(asce, instance, need_scp_role=True)
            if store_ctx is None:
                # PS3.4 C.4.3.3.1: no suitable context (with the SCP role) is a failure.
                logger.warning('C-GET: %s accepted no context with the SCP role for %s in %s',
                               asce.dul.peer, instance.sop_class, instance.transfer_syntax)
                outcome, comment = 'failed', f'no context for {instance.sop_class}'
            else:
                sub_msg_id = _next_message_id(sub_msg_id)
                outcome, comment = _store(watch, store_ctx, instance, sub_msg_id)
            sub_ops.record(outcome, instance.sop_instance, comment)
        pending = response_to(msg, rsp_class, statuses.C_GET_PENDING)
        sub_ops.fill(pending)
        asce.send(pending, ctx.id)
    _send_final(asce, ctx, msg, rsp_class, sub_ops.final_status(rsp_class),
                sub_ops.failure_comment, sub_ops=sub_ops)


@sop_classes(GET_SOP_CLASSES)
def qr_get_scp(asce, ctx: PContextDef, msg) -> None:
    """C-GET SCP (beyond pynetdicom2 0.9.8): send ``ae.on_receive_get``'s data sets back.

    The hook returns ``(number_of_sub_ops, data sets)`` (Datasets or file paths,
    read lazily). Each is sent by C-STORE on this association, on an accepted
    context for its SOP class for which the requester took the SCP role through
    role selection (PS3.4 C.5.3); without one the sub-operation fails. Such
    contexts are accepted whenever the requester also proposes a C-GET class this
    AE serves, whether or not the AE lists the storage classes (a 0.9.x-style AE
    with only ``add_scp(qr_get_scp)`` serves C-GET). A data set in an uncompressed
    syntax is converted to the syntax the context accepted (``pynetdicom2.transcode``:
    between uncompressed syntaxes, by decompressing, or by compressing losslessly); a
    sub-operation that no conversion helps fails, and the final response's Error
    Comment names both syntaxes.
    A pending C-GET-RSP with the counts
    follows each sub-operation; the final status is 0x0000, or 0xB000 when one
    failed or warned. ``EventHandlingError`` from the hook → 0xC000; C-CANCEL-RQ
    (looked for before each sub-operation and while waiting for a C-STORE-RSP)
    → 0xFE00 with the counts.
    """
    _get_scp(asce, ctx, msg)


__all__ = [
    'FIND_SOP_CLASSES', 'MOVE_SOP_CLASSES', 'GET_SOP_CLASSES',
    'qr_find_scu', 'qr_find_scp', 'modality_work_list_scu', 'modality_work_list_scp',
    'qr_move_scu', 'qr_move_scp', 'qr_get_scu', 'qr_get_scp',
    'encode_identifier', 'decode_identifier',
]
