"""Verification service class (PS3.4 Annex A): C-ECHO as SCU and SCP."""

from __future__ import annotations

import logging

from pynetdicom2 import dimse, statuses, uids
from pynetdicom2.exceptions import EventHandlingError
from pynetdicom2.services.common import receive_response, response_to, sop_classes

logger = logging.getLogger(__name__)


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
    """C-ECHO SCP: answer with ``on_receive_echo``'s status (0x0110 when it fails)."""
    try:
        status = asce.ae.on_receive_echo(ctx)
    except EventHandlingError:
        logger.info('on_receive_echo failed', exc_info=True)
        status = statuses.PROCESSING_FAILURE
    asce.send(response_to(msg, dimse.CEchoRSPMessage, status), ctx.id)
