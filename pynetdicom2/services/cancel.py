"""C-CANCEL-RQ (PS3.7 9.3.2.3) for Query/Retrieve: noticing a peer's cancel while we
serve, cancelling our own request and reading its remaining responses, and watching
for a cancel while a C-GET's C-STORE sub-operation waits for its response."""

from __future__ import annotations

import logging
import time
from typing import Optional

from pynetdicom2 import dimse, statuses
from pynetdicom2.exceptions import DCMTimeoutError, DIMSEProcessingError
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services.identifiers import status_of

# The Query/Retrieve services log under one name, whichever module of theirs speaks.
logger = logging.getLogger('pynetdicom2.services.queryretrieve')

# C-CANCEL-RQs for the running C-GET that one wait for a C-STORE-RSP will skip.
MAX_CANCELS_SKIPPED = 16

def cancel_requested(asce, msg_id: int) -> bool:
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


def cancel_and_drain(asce, ctx: PContextDef, msg_id: int, response_class,
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
        status = status_of(asce, msg, response_class)
        if not status.is_pending:
            logger.debug('cancelled request %s ended with %s', msg_id, status)
            return status


class CancelWatch:
    """The association as a C-STORE sub-operation of a C-GET uses it, with a watch
    for the C-GET's cancel.

    It offers what ``storage.storage_scu`` reads of an association, each named here
    and read from ``asce``: the AE and its settings, the accepted and proposed
    contexts, the A-ASSOCIATE-AC, the DUL (for the peer's name), ``send`` and
    ``abort``. Its own ``receive`` notes a C-CANCEL-RQ for the C-GET that arrives while
    the C-STORE waits for its response (``cancelled``) instead of taking it for the
    response.
    """

    def __init__(self, asce, msg_id: int) -> None:
        self._asce = asce
        self._msg_id = msg_id
        self.cancelled = False

    @property
    def ae(self):
        return self._asce.ae

    @property
    def settings(self):
        return getattr(self._asce, 'settings', self._asce.ae)

    @property
    def accepted_contexts(self) -> dict:
        return self._asce.accepted_contexts

    @property
    def context_def_list(self):
        return getattr(self._asce, 'context_def_list', None)

    @property
    def ac(self):
        return getattr(self._asce, 'ac', None)

    @property
    def dul(self):
        return getattr(self._asce, 'dul', None)

    def send(self, msg, pc_id: int) -> None:
        self._asce.send(msg, pc_id)

    def abort(self) -> None:
        self._asce.abort()

    def receive(self):
        for _ in range(MAX_CANCELS_SKIPPED):
            msg, pc_id = self._asce.receive()
            if not (isinstance(msg, dimse.CCancelRQMessage)
                    and msg.message_id_being_responded_to == self._msg_id):
                return msg, pc_id
            logger.info('%s cancelled C-GET %s', self._asce.dul.peer, self._msg_id)
            self.cancelled = True
        self._asce.abort()
        raise DIMSEProcessingError(f'{self._asce.dul.peer} sent C-CANCEL-RQ again and again')


__all__ = ['cancel_requested', 'cancel_and_drain', 'CancelWatch', 'MAX_CANCELS_SKIPPED']
