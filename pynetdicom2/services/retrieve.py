"""C-MOVE and C-GET as SCU and SCP (PS3.4 C.4.2, C.4.3).

Each SCU call is a generator (closing it early sends C-CANCEL-RQ); each SCP asks the
AE's ``on_receive_move`` / ``on_receive_get`` hook and runs the C-STORE
sub-operations (``pynetdicom2.services.suboperations``): C-MOVE's on a
sub-association with the destination, C-GET's on the requester's own association.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, List, Optional, Tuple

from pydicom.dataset import Dataset

from pynetdicom2 import dimse, incoming, statuses, uids
from pynetdicom2.asceprovider import AssociationRequester, RemoteAEConfig
from pynetdicom2.exceptions import (
    AssociationRejectedError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError)
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services import storage
from pynetdicom2.services.cancel import CancelWatch, cancel_and_drain, cancel_requested
from pynetdicom2.services.common import response_to, sop_classes
from pynetdicom2.services.identifiers import decode_identifier, status_of
from pynetdicom2.services.qrexchange import (
    ANSWERED, END, ask, close_iterator, received_request, responses, send_final,
    send_request)
from pynetdicom2.services.suboperations import (
    ASSOCIATION_LOST, Instance, SubOperations, Unsendable, describe, move_contexts,
    next_message_id, store, store_context)

# The Query/Retrieve services log under one name, whichever module of theirs speaks.
logger = logging.getLogger('pynetdicom2.services.queryretrieve')

#: Query/Retrieve MOVE SOP classes served by ``qr_move_scu`` / ``qr_move_scp``.
MOVE_SOP_CLASSES = [uids.PATIENT_ROOT_MOVE_SOP_CLASS, uids.STUDY_ROOT_MOVE_SOP_CLASS,
                    uids.PATIENT_STUDY_ONLY_MOVE_SOP_CLASS]
#: Query/Retrieve GET SOP classes served by ``qr_get_scu`` / ``qr_get_scp``.
GET_SOP_CLASSES = list(uids.QR_GET_SOP_CLASSES)

# Status (0000,0900) of the C-STORE-RSP we send on our side of a C-GET when the
# consumer of qr_get_scu stopped (cancel): the data set was not processed, PS3.7 C.4.2
# general failure.
_STORE_NOT_PROCESSED = statuses.PROCESSING_FAILURE


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
    return responses(asce, ctx, rq, ds, msg_id, dimse.CMoveRSPMessage)


def _move_scp(asce, ctx: PContextDef, msg) -> None:
    rsp_class = dimse.CMoveRSPMessage
    ds = received_request(asce, ctx, msg, rsp_class)
    if ds is None:
        return
    destination = msg.move_destination

    def call():
        answer = asce.ae.on_receive_move(ctx, ds, destination)
        remote_ae, nops, datasets = answer if answer is not None else (None, 0, ())
        # Buffered: the sub-association must propose every SOP class before the first
        # C-STORE. Paths cost little; Datasets stay in memory until the move ends.
        return remote_ae, nops, list(datasets) if datasets is not None else []
    answer = ask(asce, ctx, msg, rsp_class, call)
    if answer is ANSWERED:
        return
    remote_ae, nops, items = answer
    try:
        remote = None if remote_ae is None else RemoteAEConfig.from_value(remote_ae)
    except (TypeError, ValueError) as exc:
        logger.warning('on_receive_move gave an unusable remote AE %r: %s', remote_ae, exc)
        remote = None
    if remote is None:
        send_final(asce, ctx, msg, rsp_class, statuses.C_MOVE_DESTINATION_UNKNOWN,
                    f'move destination {destination!r} unknown')
        return
    if nops is not None and nops != len(items):
        logger.debug('on_receive_move announced %s sub-operations and gave %d',
                     nops, len(items))

    sub_ops = SubOperations(len(items))
    instances: List[Instance] = []
    for item in items:
        try:
            instances.append(describe(item))
        except Unsendable as exc:
            logger.warning('C-MOVE sub-operation fails: %s', exc)
            sub_ops.record('failed', exc.sop_instance)
    if not instances:
        send_final(asce, ctx, msg, rsp_class, sub_ops.final_status(rsp_class),
                    sub_ops=sub_ops)
        return

    # The sub-association has settings of its own (for its peer); ours decide what to send.
    contexts = move_contexts(instances, getattr(
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
        send_final(asce, ctx, msg, rsp_class, statuses.Status(0xA702, rsp_class),
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
    send_final(asce, ctx, msg, rsp_class, status, comment, sub_ops)


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
        if cancel_requested(asce, msg.message_id):
            return statuses.C_MOVE_CANCEL, None
        store_ctx = store_context(assoc, instance)
        if store_ctx is None:
            refused = storage.not_accepted(assoc, instance.sop_class)
            logger.warning('C-MOVE: %s', refused)
            outcome, comment = 'failed', refused.comment
        else:
            sub_msg_id = next_message_id(sub_msg_id)
            try:
                outcome, comment = store(assoc, store_ctx, instance, sub_msg_id, **originator)
            except ASSOCIATION_LOST as exc:
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

    0x0000; or, when the AE's ``on_receive_store`` is not the library's default
    (``incoming.library_default`` marks that one), that hook's status (it
    gets the file at its start or the raw bytes, as for every C-STORE), 0xC000
    when it raises ``EventHandlingError``.
    """
    return storage.keep_or_drop(asce, store_ctx, msg,
                                call_hook=incoming.overridden(asce.ae, 'on_receive_store'))


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
    send_request(asce, ctx, dimse.CGetRQMessage(), ds, msg_id)
    while True:
        msg, pc_id = asce.receive()
        if isinstance(msg, dimse.CGetRSPMessage) and msg.message_id_being_responded_to == msg_id:
            status = status_of(asce, msg, dimse.CGetRSPMessage)
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
            cancel_and_drain(asce, ctx, msg_id, dimse.CGetRSPMessage, _refuse_store(asce))
            raise
        try:
            status, comment = _store_status(asce, store_ctx, msg)
        finally:
            _release_data(asce, msg)
        _answer_store(asce, msg, pc_id, status, comment)


def _get_scp(asce, ctx: PContextDef, msg) -> None:
    rsp_class = dimse.CGetRSPMessage
    ds = received_request(asce, ctx, msg, rsp_class)
    if ds is None:
        return

    def call():
        nops, datasets = asce.ae.on_receive_get(ctx, ds)
        return nops, iter(datasets if datasets is not None else ())
    answer = ask(asce, ctx, msg, rsp_class, call)
    if answer is ANSWERED:
        return
    nops, items = answer
    sub_ops = SubOperations(nops)
    watch = CancelWatch(asce, msg.message_id)
    sub_msg_id = 0
    while True:
        if watch.cancelled or cancel_requested(asce, msg.message_id):
            close_iterator(items)
            send_final(asce, ctx, msg, rsp_class, statuses.C_GET_CANCEL, sub_ops=sub_ops)
            return
        item = ask(asce, ctx, msg, rsp_class, lambda: next(items, END), sub_ops)
        if item is ANSWERED:
            return
        if item is END:
            break
        try:
            instance = describe(item)
        except Unsendable as exc:
            logger.warning('C-GET sub-operation fails: %s', exc)
            sub_ops.record('failed', exc.sop_instance)
        else:
            store_ctx = store_context(asce, instance, need_scp_role=True)
            if store_ctx is None:
                # PS3.4 C.4.3.3.1: no suitable context (with the SCP role) is a failure.
                logger.warning('C-GET: %s accepted no context with the SCP role for %s in %s',
                               asce.dul.peer, instance.sop_class, instance.transfer_syntax)
                outcome, comment = 'failed', f'no context for {instance.sop_class}'
            else:
                sub_msg_id = next_message_id(sub_msg_id)
                outcome, comment = store(watch, store_ctx, instance, sub_msg_id)
            sub_ops.record(outcome, instance.sop_instance, comment)
        pending = response_to(msg, rsp_class, statuses.C_GET_PENDING)
        sub_ops.fill(pending)
        asce.send(pending, ctx.id)
    send_final(asce, ctx, msg, rsp_class, sub_ops.final_status(rsp_class),
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


__all__ = ['MOVE_SOP_CLASSES', 'GET_SOP_CLASSES', 'qr_move_scu', 'qr_move_scp',
           'qr_get_scu', 'qr_get_scp']
