"""Verification service class (PS3.4 Annex A): C-ECHO as SCU and SCP."""

from __future__ import annotations

import logging

from pynetdicom2 import dimse, statuses, uids
from pynetdicom2.exceptions import DIMSEProcessingError, EventHandlingError
from pynetdicom2.services.common import receive_response, response_to, sop_classes

logger = logging.getLogger(__name__)

#: PS3.7 C.5.6: the operation is not one the SOP class supports (``statuses``' own).
UNRECOGNIZED_OPERATION = statuses.UNRECOGNIZED_OPERATION


@sop_classes([uids.VERIFICATION_SOP_CLASS])
def verification_scu(asce, ctx, msg_id: int) -> statuses.Status:
    """C-ECHO: verify the peer; returns the response's status."""
    rq = dimse.CEchoRQMessage()
    rq.message_id = msg_id
    rq.sop_class_uid = ctx.sop_class
    asce.send(rq, ctx.id)
    rsp = receive_response(asce, dimse.CEchoRSPMessage, msg_id)
    return statuses.Status(rsp.status, dimse.CEchoRSPMessage)


@sop_classes([uids.VERIFICATION_SOP_CLASS])
def verification_scp(asce, ctx, msg) -> None:
    """C-ECHO SCP: answer with ``on_receive_echo``'s status (0x0110 when it fails).

    Any other request on the verification context is answered 0x0211 (unrecognized
    operation, PS3.7 C.5.6) in its own response type.
    """
    if not isinstance(msg, dimse.CEchoRQMessage):
        response_class = dimse.MESSAGE_TYPE.get((msg.command_field or 0) | 0x8000)
        if response_class is None:
            asce.abort()
            raise DIMSEProcessingError(
                f'{type(msg).__name__} cannot be answered on the verification context')
        asce.send(response_to(msg, response_class, UNRECOGNIZED_OPERATION), ctx.id)
        return
    try:
        status = asce.ae.on_receive_echo(ctx)
    except EventHandlingError:
        logger.info('on_receive_echo failed', exc_info=True)
        status = statuses.PROCESSING_FAILURE
    asce.send(response_to(msg, dimse.CEchoRSPMessage, status), ctx.id)
