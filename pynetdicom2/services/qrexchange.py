"""The exchange every Query/Retrieve operation shares (PS3.7 9.1.2-9.1.4): the
requester sends a request with an identifier and reads responses up to the final
one; the performer reads the request, asks the AE's hook and answers, with 0xC000
when the hook fails."""

from __future__ import annotations

import logging
from typing import Any, Iterator, Optional, Tuple

from pydicom.dataset import Dataset

from pynetdicom2 import dimse, statuses
from pynetdicom2.exceptions import DIMSEProcessingError, EventHandlingError
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services.cancel import cancel_and_drain
from pynetdicom2.services.common import receive_response, response_to
from pynetdicom2.services.identifiers import encode_identifier, request_identifier, status_of

# The Query/Retrieve services log under one name, whichever module of theirs speaks.
logger = logging.getLogger('pynetdicom2.services.queryretrieve')


def send_request(asce, ctx: PContextDef, rq, ds: Dataset, msg_id: int) -> None:
    """Send a C-FIND/C-MOVE/C-GET-RQ with ``ds`` as its identifier (priority medium)."""
    rq.message_id = msg_id
    rq.sop_class_uid = ctx.sop_class
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = encode_identifier(ds, ctx.supported_ts)
    asce.send(rq, ctx.id)


def responses(asce, ctx: PContextDef, rq, ds: Dataset, msg_id: int, response_class
               ) -> Iterator[Tuple[statuses.Status, Any]]:
    """Send ``rq``; yield ``(Status, response)`` up to and including the final one.

    Closed before the final response, it cancels and drains (``cancel_and_drain``).
    """
    send_request(asce, ctx, rq, ds, msg_id)
    while True:
        rsp = receive_response(asce, response_class, msg_id)
        status = status_of(asce, rsp, response_class)
        if not status.is_pending:
            yield status, rsp
            return
        try:
            yield status, rsp
        except GeneratorExit:
            cancel_and_drain(asce, ctx, msg_id, response_class)
            raise


def send_final(asce, ctx: PContextDef, msg, response_class, status,
                comment: Optional[str] = None, sub_ops=None,
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


def close_iterator(matches) -> None:
    close = getattr(matches, 'close', None)
    if close is not None:
        try:
            close()
        except EventHandlingError:
            logger.info('closing the matches after a cancel failed', exc_info=True)


# What ask returns when the hook failed and the final response has been sent.
ANSWERED = object()
# What a handler's iterator gives when it is exhausted.
END = object()


def received_request(asce, ctx: PContextDef, msg, response_class) -> Optional[Dataset]:
    """The identifier of the request an SCP was called with, or None when done.

    A C-CANCEL-RQ that crossed our final response has nothing left to stop and is
    ignored (PS3.7 9.3.2.3); an identifier that does not decode is answered 0xC000.
    """
    if isinstance(msg, dimse.CCancelRQMessage):
        logger.debug('C-CANCEL-RQ for finished message %s ignored',
                     msg.message_id_being_responded_to)
        return None
    try:
        return request_identifier(msg, ctx)
    except DIMSEProcessingError as exc:
        send_final(asce, ctx, msg, response_class, unable(response_class), str(exc))
        return None


def ask(asce, ctx: PContextDef, msg, response_class, call, sub_ops=None):
    """``call()``'s result; ``ANSWERED`` when a user hook in it raised
    ``EventHandlingError``, which is answered 0xC000 with its text as Error Comment
    (or with the exception's own failure ``status``, as for storage commitment)."""
    try:
        return call()
    except EventHandlingError as exc:
        status = unable(response_class)
        own = getattr(exc, 'status', None)
        if own is not None and statuses.Status(own, response_class).is_failure:
            status = statuses.Status(own, response_class)
        logger.info('the handler failed; answering %s with %s', response_class.__name__,
                    status, exc_info=True)
        send_final(asce, ctx, msg, response_class, status, str(exc) or None, sub_ops)
        return ANSWERED


def unable(response_class) -> statuses.Status:
    """0xC000, "unable to process" (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)."""
    return statuses.Status(0xC000, response_class)


__all__ = ['send_request', 'responses', 'send_final', 'close_iterator', 'ANSWERED', 'END',
           'received_request', 'ask', 'unable']
