"""DIMSE services: the callables an AE runs as SCU or SCP for its SOP classes.

A service is a callable with the attributes ``sop_classes`` (UIDs it serves) and
``store_in_file`` (whether incoming data sets stream into a file). As SCP it is called
``service(asce, ctx, msg)`` with a received request; as SCU, ``get_scu`` binds
``asce`` and ``ctx`` and the user supplies the rest.
"""

from __future__ import annotations

import logging
from typing import Iterable

from pynetdicom2 import dimse, statuses, uids
from pynetdicom2.exceptions import DIMSEProcessingError, EventHandlingError
from pynetdicom2.uids import *  # noqa: F401,F403  (0.9.7 scripts read sopclass.<UID NAME>)

logger = logging.getLogger(__name__)


def sop_classes(uid_list: Iterable[str]):
    """Decorator: the SOP classes a service serves."""
    def decorate(service):
        service.sop_classes = list(uid_list)
        if not hasattr(service, 'store_in_file'):
            service.store_in_file = False
        return service
    return decorate


def store_in_file(service):
    """Decorator: incoming data sets of this service stream into a file."""
    service.store_in_file = True
    return service


def receive_response(asce, response_class, msg_id: int):
    """The next message, checked to be ``response_class`` answering ``msg_id``."""
    msg, _ = asce.receive()
    if not isinstance(msg, response_class):
        asce.abort()
        raise DIMSEProcessingError(
            f'expected {response_class.__name__}, received {type(msg).__name__}')
    if msg.message_id_being_responded_to != msg_id:
        asce.abort()
        raise DIMSEProcessingError(
            f'{response_class.__name__} answers message {msg.message_id_being_responded_to},'
            f' expected {msg_id}')
    return msg


def response_to(request, response_class, status) -> 'dimse.DIMSEResponseMessage':
    """A response carrying the request's IDs and ``status``."""
    rsp = response_class()
    rsp.message_id_being_responded_to = request.message_id
    rsp.sop_class_uid = request.sop_class_uid
    if request.affected_sop_instance_uid is not None:
        rsp.affected_sop_instance_uid = request.affected_sop_instance_uid
    rsp.status = int(status)
    return rsp


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
