"""Associations: the requester and the acceptor over the upper layer (ACSE, PS3.8 7.1).

``AssociationRequester`` connects and proposes; ``AssociationAcceptor`` receives the
A-ASSOCIATE-RQ, checks, accepts or rejects it and serves the association. What they
propose and answer is made in ``negotiation``; once established, both are an
``Association`` (``association``: DIMSE transfer, release, abort), re-exported here.
Every failure reaches the caller as the ``NetDICOMError`` subclass that says what
happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from pynetdicom2 import negotiation, pdu, pdudumps, userdataitems
# The part common to both ends has its own module; the association's names stay here.
from pynetdicom2.association import (  # noqa: F401  (re-exported)
    Association, _log_accepted, _pdu_name, _settings_of)
from pynetdicom2.dulprovider import DULServiceProvider
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, AssociationReleasedError,
    ClassNotSupportedError, DCMTimeoutError, NetDICOMError, PDUProcessingError)
from pynetdicom2.fsm import PContextDef
# Negotiation has its own module; its public names are the association's too.
from pynetdicom2.negotiation import (  # noqa: F401  (re-exported)
    ABSTRACT_SYNTAX_NOT_SUPPORTED, ACCEPTANCE, APPLICATION_CONTEXT_NAME, GET_SOP_CLASSES,
    IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME, MAX_PRESENTATION_CONTEXTS, NO_REASON,
    STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES_NOT_SUPPORTED, USER_REJECTION, PContextDefList,
    RemoteAEConfig, build_pres_context_def_list, number_contexts, syntax_groups)
from pynetdicom2.settings import AssociationSettings, plain_address

logger = logging.getLogger(__name__)


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


class _Implementation:
    """The implementation identity the two ends send (PS3.7 D.3.3.2, D.3.3.2.3): this
    module's ``IMPLEMENTATION_UID`` and ``IMPLEMENTATION_VERSION_NAME``, read when the
    association negotiates (so a 0.9.x script setting them still changes the wire)."""

    @property
    def implementation_uid(self) -> str:
        """The Implementation Class UID we send: ``asceprovider.IMPLEMENTATION_UID``."""
        return IMPLEMENTATION_UID

    @property
    def implementation_version_name(self) -> str:
        """The Implementation Version Name we send: this module's constant."""
        return IMPLEMENTATION_VERSION_NAME


class AssociationRequester(_Implementation, Association):
    """The side that sends A-ASSOCIATE-RQ.

    :param local_ae: the AE (its title, contexts, services and timeouts)
    :param max_pdu_length: the Maximum Length Received we offer; None: the settings'
    :param remote_ae: a dict or ``RemoteAEConfig`` naming the peer

    The settings are captured here, from ``local_ae.settings_for(address, aet)``,
    unless ``settings`` gives them.
    """

    is_requestor = True
    # The peer as an accepted connection knows it: none here (``association_info``
    # asks the DUL, or the socket).
    _peer_endpoint = None

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

    def role_selection_items(self) -> list:
        """The SCP/SCU Role Selection sub-items this request proposes (PS3.7 D.3.3.4);
        a subclass may name others."""
        return negotiation.role_selection_items(self.ae, self.context_def_list)

    def request(self) -> None:
        """Connect, send A-ASSOCIATE-RQ and wait for the answer.

        Raises ``AssociationRejectedError`` with the peer's values when rejected.
        """
        if len(self.context_def_list) > MAX_PRESENTATION_CONTEXTS:
            raise NetDICOMError(
                f'{len(self.context_def_list)} presentation contexts requested; one '
                f'A-ASSOCIATE-RQ carries at most {MAX_PRESENTATION_CONTEXTS} (PS3.8 9.3.2.2)')
        remote = self.remote_ae
        rq, encoded = negotiation.prepared_rq(self)
        logger.info('Requesting Association')
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug('%s', pdudumps.associate_rq(rq, sent=True))
        settings = self._settings
        self.dul = DULServiceProvider.connect(
            remote.address, remote.port, settings.connect_wait,
            max_pdu_length=self.max_pdu_length, artim_timeout=settings.artim_timeout,
            wrap=getattr(self.ae, 'wrap_client_socket', None))
        self.dul.peer = f'{remote.aet}@{remote.address}:{remote.port}'
        self.dul.send_associate_rq(rq, settings.acse_wait, encoded)
        received = self.dul.receive_pdu(settings.acse_wait)
        if not isinstance(received, pdu.AAssociateAcPDU):
            self.abort_as_provider(2)
            raise PDUProcessingError(
                f'{self.dul.peer} answered A-ASSOCIATE-RQ with {_pdu_name(received)}')
        self.ac = received
        negotiation.read_ac(self, received)
        self.association_established = True
        _log_accepted(self, 'Association Accepted', rq, received, sent=False)
        try:
            self.ae.on_association_response(received)
        except BaseException:
            self.abort_as_user()         # the hook refused the association we got
            raise
        self._establish(rq, received)

class AssociationAcceptor(_Implementation, Association):
    """The side that answers an A-ASSOCIATE-RQ; built by the AE for each connection.

    ``remote_ae`` is the calling AE title; ``user_identity`` the requester's User
    Identity sub-item (or None). A handler may set ``user_identity_response`` (bytes)
    to send back when the requester asked for a positive response.
    """

    def __init__(self, ae, sock, client_address=None) -> None:
        # ::ffff:a.b.c.d (an IPv4 peer of a dual-stack socket) reads as a.b.c.d.
        self._peer_address = plain_address(str(client_address[0])) if client_address else None
        peer = f'{self._peer_address}:{client_address[1]}' if client_address else ''
        # The peer as the connection was accepted (``association_info`` reads it).
        self._peer_endpoint = ((self._peer_address, client_address[1])
                               if client_address else None)
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
            self.abort_as_provider(2)
            raise PDUProcessingError(f'{self.dul.peer} sent {_pdu_name(received)} '
                                     'instead of A-ASSOCIATE-RQ')
        self.rq = received
        self.remote_ae = received.calling_ae_title
        settings = _settings_of(self.ae, self._peer_address,
                                str(received.calling_ae_title).strip())
        if settings is not self._settings:      # the same object: nothing changed
            self._capture(settings)
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
        ac, encoded = negotiation.prepared_ac(self, rq)
        self.dul.send_associate_ac(ac, self._settings.acse_wait, encoded)
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
        """This end's abort, as in 0.9.8: ``abort_as_provider`` (A-ABORT source 2)."""
        self.abort_as_provider(reason)

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
                self.abort_as_provider()
                raise ClassNotSupportedError(
                    f'{self.dul.peer} sent {type(msg).__name__} for SOP class {ctx.sop_class},'
                    ' for which no SCP service is registered')
            service(self, ctx, msg)

    def _notify(self, hook: str, exc: Exception) -> None:
        try:
            getattr(self.ae, hook)(self, exc)
        except Exception:
            logger.exception('%s handler raised', hook)


__all__ = [
    'APPLICATION_CONTEXT_NAME', 'IMPLEMENTATION_UID', 'IMPLEMENTATION_VERSION_NAME',
    'AETParams', 'Association', 'AssociationAcceptor', 'AssociationRequester',
    'PContextDef', 'PContextDefList', 'RemoteAEConfig', 'build_pres_context_def_list',
    'number_contexts', 'syntax_groups',
]
