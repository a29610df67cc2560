"""What every service shares: the decorators, message dispatch, request/response helpers."""

from __future__ import annotations

import logging
from typing import Iterable, Optional

from pydicom.uid import UID

from pynetdicom2 import dimse, incoming
from pynetdicom2.exceptions import DIMSEProcessingError

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
    """Decorator: incoming data sets of this service stream into a file.

    A service that names no ``data_sink`` of its own gets the one of 0.9.x: the file
    from ``ae.get_file`` for the SOP classes in ``ae.store_in_file``.
    """
    service.store_in_file = True
    if getattr(service, 'data_sink', None) is None:
        service.data_sink = incoming.file_sink
    return service


#: Error Comment (0000,0902) is LO: at most 64 characters, no backslash (PS3.5 6.2,
#: PS3.7 C.4).
ERROR_COMMENT_LENGTH = 64
_ELLIPSIS = '...'


def error_comment(text: str, limit: int = ERROR_COMMENT_LENGTH) -> str:
    """``text`` made a valid Error Comment: at most ``limit`` characters of LO.

    Backslashes (the value separator) become '/', control characters and runs of
    spaces one space. A longer text is cut at the last space that fits and ends in
    "...", so a word or a number (a tag, a length, a UID) is never cut in two; only a
    single word longer than the whole comment is cut inside.
    """
    text = ''.join(' ' if ch < ' ' or ch == '\x7f' else ch for ch in str(text))
    text = ' '.join(text.replace('\\', '/').split())
    if len(text) <= limit:
        return text
    room = limit - len(_ELLIPSIS)
    cut = text.rfind(' ', 0, room + 1)
    if cut <= 0:
        return text[:room] + _ELLIPSIS
    return text[:cut].rstrip(' ,;:-(') + _ELLIPSIS


def receive_response(asce, response_class, msg_id: int):
    """The next message, checked to be a ``response_class`` answering ``msg_id``.

    Anything else aborts the association and raises ``DIMSEProcessingError``.
    """
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


def request_instance_uid(request) -> Optional[str]:
    """The SOP instance a request is about: Affected or Requested SOP Instance UID."""
    uid = request.affected_sop_instance_uid
    return uid if uid is not None else request.requested_sop_instance_uid


def response_to(request, response_class, status, comment: Optional[str] = None):
    """A response carrying the request's message ID, SOP class and instance, and ``status``.

    An N-ACTION-RSP or N-EVENT-REPORT-RSP repeats the request's type ID (PS3.7 10.3.4,
    10.3.1); ``comment``, when given, becomes the Error Comment (``error_comment``).
    """
    # Each property is a dict look-up on both messages (dimse keeps the command set as
    # a dict until someone reads ``command_set``): about a microsecond in all.
    message_id = request.message_id
    sop_class = request.sop_class_uid
    sop_instance = request.affected_sop_instance_uid
    if sop_instance is None:
        sop_instance = request.requested_sop_instance_uid
    if (type(message_id) is int and type(sop_class) is UID
            and (sop_instance is None or type(sop_instance) is UID)
            and not comment and not isinstance(request, _TYPE_ID_REQUESTS)):
        # The common case (every C-STORE, C-FIND, C-ECHO response) made at once:
        # values already of their VR's type, as the properties would store them.
        elements = {0x0002: sop_class, 0x0120: message_id,
                    0x0900: status if type(status) is int else int(status)}
        if sop_instance is not None:
            elements[0x1000] = sop_instance
        return response_class._made_with(elements)
    rsp = response_class()
    rsp.message_id_being_responded_to = request.message_id
    sop_class = request.sop_class_uid
    if sop_class is not None:
        rsp.affected_sop_class_uid = sop_class
    sop_instance = request_instance_uid(request)
    if sop_instance is not None:
        rsp.affected_sop_instance_uid = sop_instance
    if isinstance(request, dimse.NActionRQMessage):
        rsp.action_type_id = request.action_type_id
    elif isinstance(request, dimse.NEventReportRQMessage):
        rsp.event_type_id = request.event_type_id
    rsp.status = int(status)
    if comment:
        rsp.error_comment = error_comment(comment)
    return rsp


# Requests whose response repeats their type ID (PS3.7 10.3.4, 10.3.1).
_TYPE_ID_REQUESTS = (dimse.NActionRQMessage, dimse.NEventReportRQMessage)


class MessageDispatcher:
    """Call the method named after a message's command (``c_store``, ``n_action``, ...).

    A message with no such method raises ``DIMSEProcessingError``.
    """

    _METHODS = {
        dimse.CStoreRQMessage: 'c_store', dimse.CStoreRSPMessage: 'c_store',
        dimse.CFindRQMessage: 'c_find', dimse.CFindRSPMessage: 'c_find',
        dimse.CGetRQMessage: 'c_get', dimse.CGetRSPMessage: 'c_get',
        dimse.CMoveRQMessage: 'c_move', dimse.CMoveRSPMessage: 'c_move',
        dimse.CEchoRQMessage: 'c_echo', dimse.CEchoRSPMessage: 'c_echo',
        dimse.NEventReportRQMessage: 'n_event_report',
        dimse.NEventReportRSPMessage: 'n_event_report',
        dimse.NGetRQMessage: 'n_get', dimse.NGetRSPMessage: 'n_get',
        dimse.NSetRQMessage: 'n_set', dimse.NSetRSPMessage: 'n_set',
        dimse.NActionRQMessage: 'n_action', dimse.NActionRSPMessage: 'n_action',
        dimse.NCreateRQMessage: 'n_create', dimse.NCreateRSPMessage: 'n_create',
        dimse.NDeleteRQMessage: 'n_delete', dimse.NDeleteRSPMessage: 'n_delete',
    }

    def dispatch(self, msg, *args, **kwargs):
        """Run the handler for ``msg``'s command."""
        name = self._METHODS.get(type(msg))
        handler = getattr(self, name, None) if name else None
        if handler is None:
            raise DIMSEProcessingError(
                f'{type(self).__name__} cannot handle {type(msg).__name__}')
        return handler(msg, *args, **kwargs)


class MessageDispatcherSCU(MessageDispatcher):
    """Dispatcher for a service used as SCU: bound to one association and context."""

    def __init__(self, asce, ctx) -> None:
        self.asce = asce
        self.ctx = ctx


class MessageDispatcherSCP(MessageDispatcher):
    """Dispatcher for a service used as SCP: ``self(asce, ctx, msg)`` calls
    ``self.<command>(msg, asce, ctx)``.

    One instance serves every association at once, so the association and context
    travel as arguments, never as attributes.
    """

    sop_classes: list = []
    store_in_file = False

    def __call__(self, asce, ctx, msg) -> None:
        self.dispatch(msg, asce, ctx)
