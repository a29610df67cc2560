"""An association's life after negotiation, common to both ends (PS3.7, PS3.8 7.1-7.3).

``Association`` carries DIMSE messages over its upper layer (``send`` frames a message
into P-DATA-TF PDUs within the peer's maximum length, ``receive`` reassembles the next
one), answers release and release collision, aborts, and tells the AE's lifecycle
hooks how it ended. The two ends that negotiate it, ``AssociationRequester`` and
``AssociationAcceptor``, live in ``asceprovider``, which re-exports this class.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Union

from pynetdicom2 import dimsedumps, negotiation, pdudumps
from pynetdicom2 import context as association_context, pdu, reassembly
from pynetdicom2.dulprovider import DULServiceProvider
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationReleasedError, ClassNotSupportedError,
    DCMTimeoutError, DIMSEProcessingError, NetDICOMError, PDUProcessingError)
from pynetdicom2.fragmentation import PDataFragments
from pynetdicom2.fsm import PContextDef
from pynetdicom2.settings import AssociationSettings

__all__ = ['Association']

# The association's log stays where it was before the split.
logger = logging.getLogger('pynetdicom2.asceprovider')
#: DIMSE messages sent and received: one line each at INFO, the command set and the
#: identifier at DEBUG (``pynetdicom2.dimsedumps``).
message_logger = logging.getLogger('pynetdicom2.dimse')


def _pdu_name(received) -> str:
    return 'P-DATA-TF' if isinstance(received, PDataFragments) else type(received).__name__


class _Lookahead:
    """The PDVs of the last P-DATA-TF not yet consumed, with one read ahead so that
    "is anything left?" never blocks."""

    def __init__(self) -> None:
        self._items = iter(())
        self._next = None

    def load(self, items) -> None:
        self._items = iter(items)
        self._next = next(self._items, None)

    def __bool__(self) -> bool:
        return self._next is not None

    def pop(self):
        item, self._next = self._next, next(self._items, None)
        return item


class Association:
    """The part common to both ends: DIMSE transfer, release and abort.

    ``accepted_contexts`` maps each accepted presentation context ID to a
    ``PContextDef`` whose ``supported_ts`` is the accepted transfer syntax.
    ``settings`` holds the timeouts and limits it runs by, captured from the AE
    when it starts (``AEBase.settings_for``); it never reads the AE's attributes
    for them while it runs.
    """

    #: True on the side that sent A-ASSOCIATE-RQ (``AssociationRequester``).
    is_requestor: ClassVar[bool] = False

    def __init__(self, ae, dul: Optional[DULServiceProvider] = None,
                 settings: Optional[AssociationSettings] = None) -> None:
        self.ae = ae
        self.dul = dul
        self._settings = settings if settings is not None else _settings_of(ae)
        self.accepted_contexts: Dict[int, PContextDef] = {}
        #: The peer's Maximum Length Received (0 = unlimited): caps what we send.
        self.peer_max_pdu_length = 0
        self.association_established = False
        #: Negotiated SCP/SCU role selection: SOP class -> (scu_role, scp_role).
        self.roles: Dict[str, Tuple[int, int]] = {}
        #: SOP Class Extended Negotiation answers of the A-ASSOCIATE-AC (PS3.7
        #: D.3.3.5): SOP class -> service-class application information bytes,
        #: received (requester) or sent (acceptor). Classes not answered are absent.
        self.extended_negotiation: Dict[str, bytes] = {}
        #: The user identity server response (PS3.7 D.3.3.7.2) received (requester)
        #: or sent (acceptor); None when the A-ASSOCIATE-AC had none.
        self.user_identity_response: Optional[Union[str, bytes]] = None
        #: The ``AssociationInfo`` built when the association was established (None
        #: before): what every hook's context carries as ``context.association``.
        self.info: Optional[association_context.AssociationInfo] = None
        self._ended = False
        self._end_lock = threading.Lock()
        self._pending = _Lookahead()
        self._assembler = reassembly.MessageAssembler(
            self._data_sink, self._discard_sink,
            max_memory_data_set=self._settings.max_memory_data_set)

    @property
    def implementation_uid(self) -> str:
        """The Implementation Class UID we send (PS3.7 D.3.3.2); the requester and
        the acceptor read ``asceprovider.IMPLEMENTATION_UID`` instead."""
        return negotiation.IMPLEMENTATION_UID

    @property
    def implementation_version_name(self) -> str:
        """The Implementation Version Name we send (PS3.7 D.3.3.2.3)."""
        return negotiation.IMPLEMENTATION_VERSION_NAME

    @property
    def settings(self) -> AssociationSettings:
        """The ``AssociationSettings`` this association runs by (read-only)."""
        return self._settings

    def _capture(self, settings: AssociationSettings) -> None:
        """Run by ``settings`` from now on: only before the association is
        established (the acceptor learns the calling AE title from the RQ)."""
        self._settings = settings
        self._assembler.max_memory_data_set = settings.max_memory_data_set
        if self.dul is not None:
            self.dul.max_pdu_length = settings.max_pdu_length
            self.dul.artim_timeout = settings.artim_timeout

    # -- DIMSE transfer -------------------------------------------------------------

    def send(self, dimse_msg, pc_id: int) -> None:
        """Send one DIMSE message on presentation context ``pc_id``."""
        timeout = self._settings.dcm_timeout
        try:
            if message_logger.isEnabledFor(logging.INFO):
                dimsedumps.log_message(message_logger, 'Sending', dimse_msg, self._ts_of(pc_id))
            for buffers in dimse_msg.iter_pdu_batches(pc_id, self.peer_max_pdu_length):
                self.dul.send_pdata(buffers, timeout)
        except NetDICOMError as exc:
            self._ended_by(exc)
            raise

    def receive(self, idle: bool = False) -> Tuple[Any, int]:
        """Wait for the next DIMSE message; returns ``(message, presentation context ID)``.

        A-RELEASE-RQ from the peer is answered and raises ``AssociationReleasedError``;
        A-ABORT raises ``AssociationAbortedError``; nothing within ``dcm_timeout``
        raises ``DCMTimeoutError``; a message that does not assemble raises
        ``DIMSEProcessingError`` after aborting the association. ``idle``: waiting
        for the peer's next request, so until a message begins the wait is the
        settings' ``network_timeout`` instead.
        """
        pending = self._pending
        dul = self.dul
        while True:
            while pending:
                context_id, control, fragment = pending.pop()
                msg = self._feed(context_id, control, fragment)
                if msg is not None:
                    return self._received(msg, context_id)
            if dul is not None:
                # The PDUs already received: a data set's go to its sink by runs.
                pdv = self._feed_run(dul)
                while pdv is not None:
                    msg = self._feed(*pdv)
                    if msg is not None:
                        return self._received(msg, pdv[0])
                    pdv = self._feed_run(dul)
            settings = self._settings
            assembler = self._assembler
            timeout = (settings.idle_wait if idle and not assembler.in_progress
                       else settings.dcm_timeout)
            streaming = assembler.streaming_context
            if streaming is not None and self._receive_run(dul, streaming, timeout):
                continue
            try:
                received = dul.receive_pdu(timeout)
            except NetDICOMError as exc:
                self._read_failed(exc)
                raise
            if isinstance(received, PDataFragments):
                single = received.single
                if single is None:
                    self._pending.load(received)
                    continue
                # One PDV, nothing pending (the loop above emptied it): feed it now.
                msg = self._feed(*single)
                if msg is not None:
                    return self._received(msg, single[0])
            elif isinstance(received, pdu.AReleaseRqPDU):
                self._peer_released()
            else:
                self.abort_as_provider(2)
                raise PDUProcessingError(f'unexpected {_pdu_name(received)} '
                                         f'from {self.dul.peer}')

    def _received(self, msg, context_id: int) -> Tuple[Any, int]:
        if message_logger.isEnabledFor(logging.INFO):
            dimsedumps.log_message(message_logger, 'Received', msg, self._ts_of(context_id))
        return msg, context_id

    def message_waiting(self) -> bool:
        """True when (part of) a message from the peer is ready: ``receive`` will not
        wait for the network. Services use it to notice a C-CANCEL between responses."""
        return bool(self._pending) or (self.dul is not None and self.dul.data_waiting())

    def _feed(self, context_id: int, control: int, fragment: memoryview):
        try:
            if context_id not in self.accepted_contexts:
                raise DIMSEProcessingError(
                    f'P-DATA for presentation context {context_id}, which was not accepted')
            return self._assembler.feed(context_id, control, fragment)
        except DIMSEProcessingError as exc:
            raise self._unassembled(exc) from exc

    def _feed_run(self, dul):
        """Write the data fragments ``dul`` has already received that continue the data
        set streaming into its sink; the next PDV it has is returned, for ``_feed``
        (None: none)."""
        streaming = self._assembler.streaming_context
        if streaming is not None:
            run = dul.buffered_data_run(streaming)
            if run:
                self._write_run(run)
        return dul.buffered_pdv()

    def _write_run(self, run) -> None:
        try:
            self._assembler.write_data_run(run)
        except DIMSEProcessingError as exc:
            raise self._unassembled(exc) from exc

    def _receive_run(self, dul, context_id: int, timeout: float) -> bool:
        """Wait for the next PDUs when they continue the data set streaming into its
        sink on ``context_id`` and write them there (``dul.receive_data_run``); False
        when the next PDU is anything else, for ``receive_pdu``."""
        try:
            run = dul.receive_data_run(context_id, timeout)
        except NetDICOMError as exc:
            self._read_failed(exc)
            raise
        if not run:
            return False
        self._write_run(run)
        return True

    def _read_failed(self, exc: NetDICOMError) -> None:
        """Reading from the peer failed (``exc``, raised next): the association is over."""
        self._discard_partial()       # a half-received data set never lands
        self._ended_by(exc)

    def _unassembled(self, exc: DIMSEProcessingError) -> DIMSEProcessingError:
        """A message that does not assemble: drop what it wrote, abort the association,
        and give the error to raise, naming the peer."""
        self._discard_partial()
        self.abort_as_provider(0)
        return DIMSEProcessingError(f'from {self.dul.peer}: {exc}')

    def _data_sink(self, msg):
        """Where an incoming data set goes: the sink the SCP service registered for its
        context's SOP class names (``service.data_sink(asce, ctx, msg)``), if any;
        otherwise it is gathered in memory, at most ``settings.max_memory_data_set`` bytes."""
        ctx = self.accepted_contexts.get(msg.context_id)
        service = self.ae.supported_scp.get(ctx.sop_class) if ctx is not None else None
        open_sink = getattr(service, 'data_sink', None)
        return open_sink(self, ctx, msg) if open_sink is not None else None

    def _discard_sink(self, sink) -> None:
        discard = getattr(sink, 'discard', None)
        (discard or sink.close)()

    def _discard_partial(self) -> None:
        partial = self._assembler.abort()
        if partial is not None:
            try:
                self._discard_sink(partial)
            except OSError:
                logger.warning('discarding a partial data set failed', exc_info=True)

    def _ts_of(self, pc_id: int) -> Optional[str]:
        ctx = self.accepted_contexts.get(pc_id)
        return ctx.supported_ts if ctx is not None else None

    def _peer_released(self):
        logger.info('Received Association Release Request')
        self._discard_partial()
        try:
            self.dul.send_release_rp(self._settings.dcm_timeout)
        except NetDICOMError as exc:
            self._ended_by(exc)
            raise
        finally:
            self.association_established = False
        self._end('released')
        raise AssociationReleasedError(f'{self.dul.peer} released the association')

    # -- release and abort ----------------------------------------------------------

    def release(self) -> None:
        """Release the association (A-RELEASE), answering a release collision."""
        if self.dul is None or self.dul.sock is None:
            return
        timeout = self._settings.dcm_timeout
        logger.info('Releasing Association')
        self.dul.send_release_rq(timeout)
        try:
            while self.dul.state != 'Sta1':
                received = self.dul.receive_pdu(timeout)
                if isinstance(received, pdu.AReleaseRqPDU):
                    # Release collision, PS3.8 9.2.2: the requestor answers first.
                    if self.dul.is_requestor:
                        self.dul.send_release_rp(timeout)
                    continue
                if isinstance(received, pdu.AReleaseRpPDU) and self.dul.state == 'Sta12':
                    self.dul.send_release_rp(timeout)
                # P-DATA still in flight while we wait (AR-6) is dropped.
        except NetDICOMError as exc:
            self._ended_by(exc)
            raise
        finally:
            self.association_established = False
            self._discard_partial()
            self.dul.close()
        self._end('released')

    def abort_as_user(self, reason: int = 0) -> None:
        """Abort the association as the service user (A-ABORT source 0, PS3.8 9.3.8)."""
        self._abort(0, reason)

    def abort_as_provider(self, reason: int = 0) -> None:
        """Abort as the service provider (A-ABORT source 2, ``reason`` its
        reason/diag., PS3.8 9.3.8): the upper layer found something wrong."""
        self._abort(2, reason)

    def abort(self, reason: int = 0) -> None:
        """This end's abort, as in 0.9.8: ``abort_as_user`` here and on the requester;
        the acceptor's is ``abort_as_provider``."""
        self.abort_as_user(reason)

    #: The 0.9.x name of ``abort_as_provider``.
    abort_provider = abort_as_provider

    def _abort(self, source: int, reason: int) -> None:
        logger.info('Aborting Association')
        self.association_established = False
        self._discard_partial()
        if self.dul is not None:
            self.dul.abort(source, reason)
        self._end('aborted', source, reason, False)

    def kill(self) -> None:
        """Close the connection at once, sending nothing."""
        self.association_established = False
        self._discard_partial()
        if self.dul is not None:
            self.dul.close()
        self._end('aborted', None, None, False)

    # -- lifecycle ------------------------------------------------------------------

    def _establish(self, rq: pdu.AAssociateRqPDU, ac: pdu.AAssociateAcPDU) -> None:
        """Build ``info`` from the negotiation, give every accepted context its
        association, and tell ``ae.on_association_established``."""
        self.info = negotiation.association_info(
            self, rq, ac, requestor=self.is_requestor)
        self.accepted_contexts = {
            pc_id: association_context.with_association(ctx, self.info)
            for pc_id, ctx in self.accepted_contexts.items()}
        self._call_hook('on_association_established', self.info)

    def _ended_by(self, exc: BaseException) -> None:
        """Tell the lifecycle hook how ``exc`` (from the upper layer) ended us."""
        sent = getattr(self.dul, 'abort_sent', None)
        if isinstance(exc, DCMTimeoutError):
            self._end('timed_out')
        elif sent is not None:
            self._end('aborted', sent[0], sent[1], False)
        elif isinstance(exc, AssociationAbortedError):
            self._end('aborted', exc.source, exc.reason_diag, True)

    def _end(self, how: str, *args) -> None:
        """Call the lifecycle hook of the end (``released``, ``aborted`` or
        ``timed_out``): once, and only for an association that was established."""
        with self._end_lock:
            if self._ended or self.info is None:
                return
            self._ended = True
        self._call_hook('on_association_' + how, self.info, *args)

    def _call_hook(self, name: str, *args) -> None:
        # A lifecycle hook is a notification: its failure is logged, and never
        # changes what happens to the association (nor its cleanup).
        hook = getattr(self.ae, name, None)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            logger.exception('%s handler raised (association with %s)', name,
                             getattr(self.dul, 'peer', None) or 'the peer')

    # -- services -------------------------------------------------------------------

    def get_scu(self, sop_class: str) -> Callable:
        """The SCU service for ``sop_class`` bound to this association and its context.

        Raises ``ClassNotSupportedError`` when no context for the SOP class was
        accepted or no SCU service is registered for it.
        """
        service = self.ae.supported_scu.get(sop_class)
        if service is None:
            raise ClassNotSupportedError(f'no SCU service is registered for SOP class {sop_class}')
        ctx = self.context_for(sop_class)
        return functools.partial(service, self, ctx)

    def context_for(self, sop_class: str, transfer_syntax: Optional[str] = None) -> PContextDef:
        """An accepted context for ``sop_class`` (preferring ``transfer_syntax``)."""
        matches = [ctx for ctx in self.accepted_contexts.values() if ctx.sop_class == sop_class]
        if not matches:
            raise ClassNotSupportedError(
                f'SOP class {sop_class} was not accepted by {self.dul.peer if self.dul else "the peer"}')
        for ctx in matches:
            if ctx.supported_ts == transfer_syntax:
                return ctx
        return matches[0]

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.release()
        else:
            self.abort()
        return False


def _settings_of(ae, peer_address: Optional[str] = None,
                 ae_title: Optional[str] = None) -> AssociationSettings:
    """``ae.settings_for(...)``; an AE-like object without it (a test double, a 0.9
    subclass of something else) gives its attributes as they are."""
    settings_for = getattr(ae, 'settings_for', None)
    if settings_for is not None:
        return settings_for(peer_address, ae_title)
    values = {name: getattr(ae, name) for name in
              ('dcm_timeout', 'artim_timeout', 'max_pdu_length', 'max_memory_data_set',
               'max_memory_store', 'decompress_lossy', 'allowed_calling_aets',
               'allowed_called_aets') if getattr(ae, name, None) is not None}
    return AssociationSettings.from_values(values)


def _log_accepted(assoc: Association, what: str, rq: pdu.AAssociateRqPDU,
                  ac: pdu.AAssociateAcPDU, sent: bool) -> None:
    """INFO: ``what (Max Send PDV: N)`` and the accepted contexts (DCMTK's ``-v``);
    DEBUG: the A-ASSOCIATE-AC as a block."""
    if not logger.isEnabledFor(logging.INFO):
        return
    lines = [f'{what} (Max Send PDV: {pdudumps.max_send_pdv(assoc.peer_max_pdu_length)})']
    lines.extend(pdudumps.accepted_contexts(assoc.accepted_contexts))
    logger.info('%s', '\n'.join(lines))
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug('%s', pdudumps.associate_ac(ac, rq, sent=sent))
