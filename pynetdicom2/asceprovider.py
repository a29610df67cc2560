"""Associations: the requester and the acceptor over the upper layer (ACSE, PS3.8 7.1).

An ``Association`` negotiates presentation contexts, roles, the maximum PDU length, the
implementation identity and user identity, then carries DIMSE messages: ``send`` splits
a message into P-DATA-TF PDUs within the peer's maximum length, ``receive`` reassembles
the next one. Release, release collision and abort follow PS3.8; every failure reaches
the caller as the ``NetDICOMError`` subclass that says what happened.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

from pynetdicom2 import dimsedumps, negotiation, pdudumps
from pynetdicom2 import context as association_context, pdu, reassembly, userdataitems
from pynetdicom2.dulprovider import DULServiceProvider
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, AssociationReleasedError,
    ClassNotSupportedError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError,
    PDUProcessingError)
from pynetdicom2.fragmentation import PDataFragments
from pynetdicom2.fsm import PContextDef
# Negotiation has its own module; its public names are the association's too.
from pynetdicom2.negotiation import (  # noqa: F401  (re-exported)
    ABSTRACT_SYNTAX_NOT_SUPPORTED, ACCEPTANCE, APPLICATION_CONTEXT_NAME, GET_SOP_CLASSES,
    IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME, MAX_PRESENTATION_CONTEXTS, NO_REASON,
    STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES_NOT_SUPPORTED, USER_REJECTION, PContextDefList,
    RemoteAEConfig, build_pres_context_def_list, number_contexts, syntax_groups)
from pynetdicom2.settings import AssociationSettings, plain_address

logger = logging.getLogger(__name__)
#: DIMSE messages sent and received: one line each at INFO, the command set and the
#: identifier at DEBUG (``pynetdicom2.dimsedumps``).
message_logger = logging.getLogger('pynetdicom2.dimse')


@dataclass
class AETParams:
    """Where an AE listens: ``address``, ``aet`` (AE title) and ``port``.

    Also answers ``params['aet']`` like the dict it replaces.
    """
    address: str
    aet: str
    port: Optional[int] = None

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


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
        """The Implementation Class UID we send (PS3.7 D.3.3.2): this module's
        ``IMPLEMENTATION_UID``, read when the association negotiates."""
        return IMPLEMENTATION_UID

    @property
    def implementation_version_name(self) -> str:
        """The Implementation Version Name we send: this module's constant."""
        return IMPLEMENTATION_VERSION_NAME

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
        while True:
            while self._pending:
                context_id, control, fragment = self._pending.pop()
                msg = self._feed(context_id, control, fragment)
                if msg is not None:
                    return self._received(msg, context_id)
            pdv = self.dul.buffered_pdv() if self.dul is not None else None
            while pdv is not None:  # the PDUs of a data set, already received
                msg = self._feed(*pdv)
                if msg is not None:
                    return self._received(msg, pdv[0])
                pdv = self.dul.buffered_pdv()
            try:
                settings = self._settings
                timeout = (settings.idle_wait if idle and not self._assembler.in_progress
                           else settings.dcm_timeout)
                received = self.dul.receive_pdu(timeout)
            except NetDICOMError as exc:
                self._discard_partial()       # a half-received data set never lands
                self._ended_by(exc)
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
                self.abort_provider(2)
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
            self._discard_partial()
            self.abort_provider(0)
            raise DIMSEProcessingError(f'from {self.dul.peer}: {exc}') from exc

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

    def abort(self, reason: int = 0) -> None:
        """Abort the association as the service user (A-ABORT source 0)."""
        self._abort(0, reason)

    def abort_provider(self, reason: int = 0) -> None:
        """Abort as the service provider (A-ABORT source 2)."""
        self._abort(2, reason)

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
            self, rq, ac, requestor=isinstance(self, AssociationRequester))
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


class AssociationRequester(Association):
    """The side that sends A-ASSOCIATE-RQ.

    :param local_ae: the AE (its title, contexts, services and timeouts)
    :param max_pdu_length: the Maximum Length Received we offer; None: the settings'
    :param remote_ae: a dict or ``RemoteAEConfig`` naming the peer

    The settings are captured here, from ``local_ae.settings_for(address, aet)``,
    unless ``settings`` gives them.
    """

    def __init__(self, local_ae, max_pdu_length: Optional[int], remote_ae,
                 context_def_list: Optional[Dict[int, PContextDefList]] = None, *,
                 settings: Optional[AssociationSettings] = None) -> None:
        remote = RemoteAEConfig.from_value(remote_ae)
        if settings is None:
            settings = _settings_of(local_ae, remote.address, remote.aet)
        if max_pdu_length is not None and max_pdu_length != settings.max_pdu_length:
            settings = settings.replace(max_pdu_length=max_pdu_length)
        super().__init__(local_ae, settings=settings)
        self.max_pdu_length = settings.max_pdu_length
        self.remote_ae = remote
        self.context_def_list = (local_ae.context_def_list if context_def_list is None
                                 else context_def_list)
        self.ac: Optional[pdu.AAssociateAcPDU] = None

    def request(self) -> None:
        """Connect, send A-ASSOCIATE-RQ and wait for the answer.

        Raises ``AssociationRejectedError`` with the peer's values when rejected.
        """
        if len(self.context_def_list) > MAX_PRESENTATION_CONTEXTS:
            raise NetDICOMError(
                f'{len(self.context_def_list)} presentation contexts requested; one '
                f'A-ASSOCIATE-RQ carries at most {MAX_PRESENTATION_CONTEXTS} (PS3.8 9.3.2.2)')
        remote = self.remote_ae
        rq = negotiation.build_rq(self)
        logger.info('Requesting Association')
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug('%s', pdudumps.associate_rq(rq, sent=True))
        settings = self._settings
        self.dul = DULServiceProvider.connect(
            remote.address, remote.port, settings.connect_wait,
            max_pdu_length=self.max_pdu_length, artim_timeout=settings.artim_timeout,
            wrap=getattr(self.ae, 'wrap_client_socket', None))
        self.dul.peer = f'{remote.aet}@{remote.address}:{remote.port}'
        self.dul.send_associate_rq(rq, settings.acse_wait)
        received = self.dul.receive_pdu(settings.acse_wait)
        if not isinstance(received, pdu.AAssociateAcPDU):
            self.abort_provider(2)
            raise PDUProcessingError(
                f'{self.dul.peer} answered A-ASSOCIATE-RQ with {_pdu_name(received)}')
        self.ac = received
        negotiation.read_ac(self, received)
        self.association_established = True
        _log_accepted(self, 'Association Accepted', rq, received, sent=False)
        try:
            self.ae.on_association_response(received)
        except BaseException:
            self.abort()                 # the hook refused the association we got
            raise
        self._establish(rq, received)

class AssociationAcceptor(Association):
    """The side that answers an A-ASSOCIATE-RQ; built by the AE for each connection.

    ``remote_ae`` is the calling AE title; ``user_identity`` the requester's User
    Identity sub-item (or None). A handler may set ``user_identity_response`` (bytes)
    to send back when the requester asked for a positive response.
    """

    def __init__(self, ae, sock, client_address=None) -> None:
        # ::ffff:a.b.c.d (an IPv4 peer of a dual-stack socket) reads as a.b.c.d.
        self._peer_address = plain_address(str(client_address[0])) if client_address else None
        peer = f'{self._peer_address}:{client_address[1]}' if client_address else ''
        # Captured when the connection is accepted; again, with the calling AE
        # title, when the A-ASSOCIATE-RQ arrives (``receive_request``).
        settings = _settings_of(ae, self._peer_address)
        super().__init__(ae, DULServiceProvider(
            sock, is_requestor=False, max_pdu_length=settings.max_pdu_length,
            artim_timeout=settings.artim_timeout, peer=peer), settings=settings)
        self.remote_ae = ''
        self.rq: Optional[pdu.AAssociateRqPDU] = None
        self.user_identity = None
        self.user_identity_response = b''
        #: SOP Class Common Extended Negotiation received (PS3.7 D.3.3.6): SOP class
        #: -> ``(service_class_uid, related_general_sop_class_uids)``.
        self.common_extended_negotiation: Dict[str, Tuple[str, Tuple[str, ...]]] = {}

    def receive_request(self) -> pdu.AAssociateRqPDU:
        """Wait (ARTIM) for the A-ASSOCIATE-RQ that opens the association."""
        received = self.dul.receive_pdu(self._settings.artim_timeout)
        if not isinstance(received, pdu.AAssociateRqPDU):
            self.abort_provider(2)
            raise PDUProcessingError(f'{self.dul.peer} sent {_pdu_name(received)} '
                                     'instead of A-ASSOCIATE-RQ')
        self.rq = received
        self.remote_ae = received.calling_ae_title
        self._capture(_settings_of(self.ae, self._peer_address,
                                   str(received.calling_ae_title).strip()))
        logger.info('Association Received %s: %s -> %s', self.dul.peer,
                    received.calling_ae_title, received.called_ae_title)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug('%s', pdudumps.associate_rq(received, sent=False))
        self.dul.peer = f'{received.calling_ae_title}@{self.dul.peer}'
        identities = negotiation.sub_items(received,
                                           userdataitems.UserIdentityNegotiationSubItem)
        self.user_identity = identities[0] if identities else None
        return received

    def check_request(self, rq: pdu.AAssociateRqPDU) -> None:
        """Reject (raise ``AssociationRejectedError``) what the provider cannot serve."""
        if not self._settings.address_allowed(self._peer_address):
            # PS3.8 9.3.4 has no "address refused" diagnostic: rejected-permanent,
            # service-user, no-reason-given is the honest answer.
            logger.warning('refusing %s: its address %s is not allowed (allowed_networks, '
                           'denied_networks)', self.dul.peer, self._peer_address)
            raise AssociationRejectedError(
                1, 1, 1, f'address {self._peer_address} is not allowed')
        if rq.application_context_name != APPLICATION_CONTEXT_NAME:
            raise AssociationRejectedError(
                1, 1, 2, f'application context {rq.application_context_name} not supported')
        if not rq.calling_ae_title:
            raise AssociationRejectedError(1, 1, 3, 'the calling AE title is empty')
        if not rq.called_ae_title:
            raise AssociationRejectedError(1, 1, 7, 'the called AE title is empty')
        allowed = self._settings.allowed_calling_aets
        if allowed is not None and rq.calling_ae_title not in allowed:
            raise AssociationRejectedError(
                1, 1, 3, f'calling AE title {rq.calling_ae_title!r} is not allowed')
        allowed = self._settings.allowed_called_aets
        if allowed is not None and rq.called_ae_title not in allowed:
            raise AssociationRejectedError(
                1, 1, 7, f'called AE title {rq.called_ae_title!r} is not ours')
        if not rq.protocol_version & 1:
            raise AssociationRejectedError(
                1, 2, 2, f'protocol version {rq.protocol_version} not supported')

    def accept(self, rq: pdu.AAssociateRqPDU) -> None:
        """Send A-ASSOCIATE-AC built from our own configuration."""
        ac = negotiation.build_ac(self, rq)
        self.dul.send_associate_ac(ac, self._settings.acse_wait)
        _log_accepted(self, 'Association Acknowledged', rq, ac, sent=True)
        self.association_established = True
        self._establish(rq, ac)

    def reject(self, result: int, source: int, diag: int) -> None:
        """Send A-ASSOCIATE-RJ with exactly these values, then close."""
        logger.info('Association Rejected')
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug('%s', pdudumps.associate_rj(pdu.AAssociateRjPDU(result, source, diag)))
        self.dul.send_associate_rj(pdu.AAssociateRjPDU(result, source, diag),
                                   self._settings.acse_wait)

    def abort(self, reason: int = 0) -> None:
        """Abort as the service provider (A-ABORT source 2)."""
        self._abort(2, reason)

    # -- serving --------------------------------------------------------------------

    def run(self, admit: Optional[Callable[['AssociationAcceptor'], None]] = None) -> None:
        """Serve one association from A-ASSOCIATE-RQ to release or abort.

        ``admit``, when given, is called as soon as the A-ASSOCIATE-RQ has arrived,
        before any check or hook; it may raise ``AssociationRejectedError`` (the AE
        counts its associations there). ``EventHandlingError`` is handled inside the
        services; any other exception from a handler is logged with its traceback
        and aborts this association only.
        """
        try:
            rq = self.receive_request()
            try:
                if admit is not None:
                    admit(self)
                self.check_request(rq)
                if self.user_identity is not None:
                    response = self.ae.on_user_identity(self, self.user_identity)
                    if response is not None:
                        self.user_identity_response = response
                self.ae.on_association_request(self, rq)
            except AssociationRejectedError as exc:
                logger.info('rejecting %s: %s', self.dul.peer, exc.describe())
                self.reject(exc.result, exc.source, exc.diagnostic)
                return
            self.accept(rq)
            self._serve()
        except AssociationReleasedError:
            logger.debug('%s released the association', self.dul.peer)
        except AssociationAbortedError as exc:
            logger.info('association with %s aborted: %s', self.dul.peer, exc)
            self._notify('on_abort', exc)
        except NetDICOMError as exc:
            logger.warning('association with %s failed: %s', self.dul.peer, exc)
            self.abort_as_user()          # nothing more to send if the DUL is closed
            if isinstance(exc, DCMTimeoutError):
                self._notify('on_dcm_timeout', exc)
            else:
                self._notify('on_abort', self._aborted_by_us(exc, source=2))
        except Exception as exc:
            logger.exception('association with %s aborted: a handler raised', self.dul.peer)
            self.abort_as_user()
            self._notify('on_abort', self._aborted_by_us(exc, source=0))
        finally:
            if self.dul.sock is not None:
                self.dul.close()
            # Whatever ended it, an established association's end is told once.
            self._end('aborted', None, None, False)

    def _aborted_by_us(self, cause: BaseException, source: int) -> AssociationAbortedError:
        """What ``on_abort`` gets when this end aborted: an ``AssociationAbortedError``
        (the type 0.9.8 documents for the hook) with the A-ABORT's source (0 for a
        failing handler, 2 for a protocol error) and the failure that caused it chained."""
        error = AssociationAbortedError(
            source, 0, f'association with {self.dul.peer} aborted: {cause}')
        error.__cause__ = cause
        return error

    def _serve(self) -> None:
        while True:
            msg, pc_id = self.receive(idle=True)
            ctx = self.accepted_contexts[pc_id]
            service = self.ae.supported_scp.get(ctx.sop_class)
            if service is None:
                self.abort()
                raise ClassNotSupportedError(
                    f'{self.dul.peer} sent {type(msg).__name__} for SOP class {ctx.sop_class},'
                    ' for which no SCP service is registered')
            service(self, ctx, msg)

    def abort_as_user(self) -> None:
        """Abort with source 0 (service user): a handler failed."""
        self._abort(0, 0)

    def _notify(self, hook: str, exc: Exception) -> None:
        try:
            getattr(self.ae, hook)(self, exc)
        except Exception:
            logger.exception('%s handler raised', hook)


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


__all__ = [
    'APPLICATION_CONTEXT_NAME', 'IMPLEMENTATION_UID', 'IMPLEMENTATION_VERSION_NAME',
    'AETParams', 'Association', 'AssociationAcceptor', 'AssociationRequester',
    'PContextDef', 'PContextDefList', 'RemoteAEConfig', 'build_pres_context_def_list',
    'number_contexts', 'syntax_groups',
]
