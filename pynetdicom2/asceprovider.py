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
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from pynetdicom2 import dimsedumps, pdudumps
from pynetdicom2 import context as association_context, pdu, reassembly, transcode, uids, userdataitems
from pynetdicom2._version import __version_info__
from pynetdicom2.dulprovider import DULServiceProvider
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, AssociationReleasedError,
    ClassNotSupportedError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError,
    PDUProcessingError)
from pynetdicom2.fragmentation import PDataFragments
from pynetdicom2.fsm import PContextDef
from pynetdicom2.settings import AssociationSettings, plain_address

logger = logging.getLogger(__name__)
#: DIMSE messages sent and received: one line each at INFO, the command set and the
#: identifier at DEBUG (``pynetdicom2.dimsedumps``).
message_logger = logging.getLogger('pynetdicom2.dimse')

#: The DICOM Application Context Name (PS3.7 A.2.1), as ``uids`` states it.
APPLICATION_CONTEXT_NAME = uids.APPLICATION_CONTEXT_NAME
#: Our Implementation Class UID: a UUID-derived UID (PS3.5 B.2), ours alone.
IMPLEMENTATION_UID = '2.25.149430270217588509430352667648591798782'
#: Our Implementation Version Name (at most 16 characters, PS3.7 D.3.3.2).
IMPLEMENTATION_VERSION_NAME = ('PYNETDICOM2_' + ''.join(
    str(part) for part in __version_info__[:3]))[:16]
#: PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255, so at most 128.
MAX_PRESENTATION_CONTEXTS = 128

# Presentation context results (PS3.8 9.3.3.2) are pdu's; the names stay here too.
ACCEPTANCE = pdu.ACCEPTANCE
USER_REJECTION = pdu.USER_REJECTION
NO_REASON = pdu.NO_REASON
ABSTRACT_SYNTAX_NOT_SUPPORTED = pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED
TRANSFER_SYNTAXES_NOT_SUPPORTED = pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED

#: Retrieve SOP classes whose C-STORE sub-operations come back on the same association.
GET_SOP_CLASSES = frozenset(uids.GET_SOP_CLASSES)

#: Storage SOP classes (PS3.4 B.5): their data sets are kept as they arrive, so a
#: requester proposes their native and compressed syntaxes apart and an acceptor takes
#: the syntax proposed first (``AEBase.choose_transfer_syntax``).
STORAGE_SOP_CLASSES = frozenset(uids.STORAGE_SOP_CLASSES)

# SOP classes whose SCP service sends requests on the association it serves: the
# storage commitment report may come back on the request's association (PS3.4
# J.3.3.1.2), so the requester's SCP role for it is one we can act opposite.
_SCP_SERVICES_THAT_SEND = frozenset({'1.2.840.10008.1.20.1'})

# Identity keys of a remote AE and the User Identity Type each gives (PS3.7 D.3.3.7).
_IDENTITY_TYPES = {'username': 1, 'kerberos': 3, 'saml': 4, 'jwt': 5}


#: A presentation context we propose: the same fields as a negotiated one (ID, SOP
#: class, transfer syntaxes), so the same class under its 0.9.x name.
PContextDefList = PContextDef


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


@dataclass
class RemoteAEConfig:
    """The peer to associate with, and the user identity to present to it.

    ``username`` with ``password`` is identity type 2, ``username`` alone type 1,
    ``kerberos`` 3, ``saml`` 4, ``jwt`` 5. ``positive_response``: ask the acceptor
    to answer the identity with a server response (PS3.7 D.3.3.7.1); read it as
    ``assoc.user_identity_response``. ``user_data`` holds extra user information
    sub-items to propose (e.g. ``SOPClassExtendedNegotiationSubItem``).
    """
    aet: str
    address: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None
    kerberos: Optional[bytes] = None
    saml: Optional[str] = None
    jwt: Optional[str] = None
    user_data: list = field(default_factory=list)
    positive_response: bool = True

    def __post_init__(self) -> None:
        # '[::1]' (an IPv6 address written as in a URL) is the address ::1.
        if isinstance(self.address, str) and self.address.startswith('[') \
                and self.address.endswith(']'):
            self.address = self.address[1:-1]

    @classmethod
    def from_value(cls, remote_ae) -> 'RemoteAEConfig':
        """Accept a ``RemoteAEConfig`` or a dict; an unknown key raises ``TypeError``."""
        if isinstance(remote_ae, cls):
            return remote_ae
        return cls(**remote_ae)

    def user_identity(self) -> Optional[userdataitems.UserIdentityNegotiationSubItem]:
        """The User Identity sub-item these settings ask for, or None."""
        if self.username is not None and self.password is not None:
            return userdataitems.UserIdentityNegotiationSubItem(
                self.username, self.password, user_identity_type=2,
                positive_response_req=int(bool(self.positive_response)))
        for key, identity_type in _IDENTITY_TYPES.items():
            value = getattr(self, key)
            if value is not None:
                return userdataitems.UserIdentityNegotiationSubItem(
                    value, user_identity_type=identity_type,
                    positive_response_req=int(bool(self.positive_response)))
        return None


def build_pres_context_def_list(context_def_list: Dict[int, PContextDefList]) -> list:
    """The presentation context items of an A-ASSOCIATE-RQ for ``context_def_list``."""
    return [
        pdu.PresentationContextItemRQ(
            ctx.id, pdu.AbstractSyntaxSubItem(ctx.sop_class),
            [pdu.TransferSyntaxSubItem(ts) for ts in ctx.supported_ts])
        for ctx in context_def_list.values()
    ]


def syntax_groups(syntaxes: Iterable[str]) -> List[List[str]]:
    """``syntaxes`` as the contexts to propose them in: the native (uncompressed or
    deflated) ones and the compressed ones apart, each in its order, the kind met
    first first; one list when all are of one kind."""
    native: List[str] = []
    compressed: List[str] = []
    order = []
    for ts in dict.fromkeys(syntaxes):
        group = native if ts in transcode.UNCOMPRESSED_TS else compressed
        if not group:
            order.append(group)
        group.append(ts)
    return order


def number_contexts(wanted: Iterable[Tuple[str, Sequence[Sequence[str]]]]
                    ) -> Dict[int, PContextDefList]:
    """The presentation contexts to propose, with IDs 1, 3, 5, ... in order.

    ``wanted`` holds ``(SOP class, syntax groups)``: each group gets a context of
    its own, so the acceptor accepts a syntax from each (PS3.8 9.3.3.2: one per
    context). When that would pass the 128 contexts of one A-ASSOCIATE-RQ (PS3.8
    9.3.2.2), the groups of the classes that no longer fit share one context each,
    in order; ``NetDICOMError`` when even one context per class is too many.
    """
    wanted = [(sop_class, [list(group) for group in groups if group])
              for sop_class, groups in wanted]
    spare = MAX_PRESENTATION_CONTEXTS - len(wanted)
    if spare < 0:
        raise NetDICOMError(
            f'{len(wanted)} presentation contexts would be proposed; one A-ASSOCIATE-RQ '
            f'carries at most {MAX_PRESENTATION_CONTEXTS} (PS3.8 9.3.2.2)')
    contexts: Dict[int, PContextDefList] = {}
    for sop_class, groups in wanted:
        if len(groups) - 1 <= spare:
            spare -= max(len(groups) - 1, 0)
        else:
            groups = [list(dict.fromkeys(ts for group in groups for ts in group))]
        for group in groups or [[]]:
            pc_id = 2 * len(contexts) + 1
            contexts[pc_id] = PContextDefList(pc_id, sop_class, group)
    return contexts


def _sub_items(assoc_pdu, cls) -> list:
    info = assoc_pdu.user_information
    return [item for item in (info.user_data if info else []) if isinstance(item, cls)]


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
                    if message_logger.isEnabledFor(logging.INFO):
                        dimsedumps.log_message(message_logger, 'Received', msg,
                                          self._ts_of(context_id))
                    return msg, context_id
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
                self._pending.load(received)
            elif isinstance(received, pdu.AReleaseRqPDU):
                self._peer_released()
            else:
                self.abort_provider(2)
                raise PDUProcessingError(f'unexpected {_pdu_name(received)} '
                                         f'from {self.dul.peer}')

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
        self.info = _association_info(self, rq, ac)
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
        rq = self._build_rq()
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
        self._negotiated(received)
        _log_accepted(self, 'Association Accepted', rq, received, sent=False)
        try:
            self.ae.on_association_response(received)
        except BaseException:
            self.abort()                 # the hook refused the association we got
            raise
        self._establish(rq, received)

    def _build_rq(self) -> pdu.AAssociateRqPDU:
        user_data = [userdataitems.MaximumLengthSubItem(self.max_pdu_length),
                     userdataitems.ImplementationClassUIDSubItem(IMPLEMENTATION_UID),
                     userdataitems.ImplementationVersionNameSubItem(IMPLEMENTATION_VERSION_NAME)]
        user_data.extend(self._role_selection_items())
        identity = self.remote_ae.user_identity()
        if identity is not None:
            user_data.append(identity)
        user_data.extend(self.remote_ae.user_data)
        items = ([pdu.ApplicationContextItem(APPLICATION_CONTEXT_NAME)]
                 + build_pres_context_def_list(self.context_def_list)
                 + [pdu.UserInformationItem(user_data)])
        return pdu.AAssociateRqPDU(self.remote_ae.aet, self.ae.local_ae.aet, items)

    def _role_selection_items(self) -> list:
        """SCP/SCU role selection (PS3.7 D.3.3.4) for the classes we serve on our own
        association: those we use both ways and, when a C-GET is proposed, the classes
        whose C-STOREs we will receive. A service whose ``propose_scp_role`` is false
        (``StorageCommitment`` unless asked to take its report here) gets none."""
        proposed = {ctx.sop_class for ctx in self.context_def_list.values()}
        getting = bool(proposed & GET_SOP_CLASSES)
        items = []
        for sop_class in sorted(proposed & set(self.ae.supported_scp)):
            if not getattr(self.ae.supported_scp[sop_class], 'propose_scp_role', True):
                continue
            both_ways = sop_class in self.ae.supported_scu
            if both_ways or getting:
                items.append(userdataitems.ScpScuRoleSelectionSubItem(
                    sop_class, 1 if both_ways else 0, 1))
        return items

    def _negotiated(self, ac: pdu.AAssociateAcPDU) -> None:
        self.ac = ac
        proposed = self.context_def_list
        for item in ac.presentation_context_items:
            ctx = proposed.get(item.context_id)
            if item.result_reason != ACCEPTANCE or ctx is None or item.ts_sub_item is None:
                continue
            self.accepted_contexts[item.context_id] = PContextDef(
                item.context_id, ctx.sop_class, item.ts_sub_item.name)
        for item in _sub_items(ac, userdataitems.MaximumLengthSubItem):
            self.peer_max_pdu_length = item.maximum_length_received
        for item in _sub_items(ac, userdataitems.ScpScuRoleSelectionSubItem):
            self.roles[item.sop_class_uid] = (item.scu_role, item.scp_role)
        for item in _sub_items(ac, userdataitems.SOPClassExtendedNegotiationSubItem):
            self.extended_negotiation[item.sop_class_uid] = bytes(item.app_info)
        answers = _sub_items(ac, userdataitems.UserIdentityNegotiationSubItemAc)
        self.user_identity_response = answers[0].server_response if answers else None
        self.association_established = True


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
        identities = _sub_items(received, userdataitems.UserIdentityNegotiationSubItem)
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
        ac = self._build_ac(rq)
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

    def _build_ac(self, rq: pdu.AAssociateRqPDU) -> pdu.AAssociateAcPDU:
        items = [pdu.ApplicationContextItem(APPLICATION_CONTEXT_NAME)]
        retrieved = self._retrieved_classes(rq)
        for item in rq.presentation_context_items:
            result, ts = self._choose(item, retrieved)
            if result == ACCEPTANCE:
                self.accepted_contexts[item.context_id] = PContextDef(
                    item.context_id, item.abs_sub_item.name, ts)
            items.append(pdu.PresentationContextItemAC(
                item.context_id, result, pdu.TransferSyntaxSubItem(ts) if ts else None))
        for sub in _sub_items(rq, userdataitems.MaximumLengthSubItem):
            self.peer_max_pdu_length = sub.maximum_length_received
        user_data = [userdataitems.MaximumLengthSubItem(self._settings.max_pdu_length),
                     userdataitems.ImplementationClassUIDSubItem(IMPLEMENTATION_UID)]
        if _sub_items(rq, userdataitems.AsynchronousOperationsWindowSubItem):
            # We perform one operation at a time, and say so (PS3.7 D.3.3.3).
            user_data.append(userdataitems.AsynchronousOperationsWindowSubItem(1, 1))
        accepted_classes = {ctx.sop_class for ctx in self.accepted_contexts.values()}
        for sub in _sub_items(rq, userdataitems.ScpScuRoleSelectionSubItem):
            if sub.sop_class_uid in accepted_classes:
                scu, scp = self._answer_roles(sub, retrieved)
                self.roles[sub.sop_class_uid] = (scu, scp)
                user_data.append(
                    userdataitems.ScpScuRoleSelectionSubItem(sub.sop_class_uid, scu, scp))
        for sub in _sub_items(rq, userdataitems.SOPClassExtendedNegotiationSubItem):
            if sub.sop_class_uid not in accepted_classes:
                continue
            hook = getattr(self.ae, 'on_extended_negotiation', None)
            answer = None if hook is None else hook(self, sub.sop_class_uid,
                                                    bytes(sub.app_info))
            if answer is not None:
                # PS3.7 D.3.3.5: the acceptor answers with its own application information.
                self.extended_negotiation[sub.sop_class_uid] = bytes(answer)
                user_data.append(userdataitems.SOPClassExtendedNegotiationSubItem(
                    sub.sop_class_uid, bytes(answer)))
        for sub in _sub_items(rq, userdataitems.SOPClassCommonExtendedNegotiationSubItem):
            # PS3.7 D.3.3.6: informative for the acceptor, never answered.
            self.common_extended_negotiation[sub.sop_class_uid] = (
                sub.service_class_uid, tuple(sub.related_general_sop_class_uids))
        user_data.append(
            userdataitems.ImplementationVersionNameSubItem(IMPLEMENTATION_VERSION_NAME))
        if self.user_identity is not None and self.user_identity.positive_response_req:
            user_data.append(
                userdataitems.UserIdentityNegotiationSubItemAc(self.user_identity_response))
        items.append(pdu.UserInformationItem(user_data))
        return pdu.AAssociateAcPDU(rq.called_ae_title, rq.calling_ae_title, items)

    def _answer_roles(self, sub, retrieved: frozenset) -> Tuple[int, int]:
        """Our answer to one SCP/SCU Role Selection item (PS3.7 D.3.3.4): each role
        the requester proposed, kept only when this end can act opposite it, then as
        ``ae.on_role_selection`` decides; never a role it did not propose.

        The requester's SCU role needs us as SCP: a service we serve for the class.
        Its SCP role needs us as SCU: C-GET sub-operations (the class was accepted to
        carry them), an SCU service of the AE, or a service that sends on the
        association it serves (the storage commitment report, PS3.4 J.3.3.1.2)."""
        sop_class = sub.sop_class_uid
        served = sop_class in self.ae.acceptable_sop_classes()
        sends = (sop_class in retrieved or sop_class in self.ae.supported_scu
                 or sop_class in _SCP_SERVICES_THAT_SEND)
        scu = 1 if sub.scu_role and served else 0
        scp = 1 if sub.scp_role and sends else 0
        hook = getattr(self.ae, 'on_role_selection', None)
        if hook is not None:
            answer = hook(self, sop_class, scu, scp)
            if answer is not None:
                scu = 1 if answer[0] and sub.scu_role else 0
                scp = 1 if answer[1] and sub.scp_role else 0
        return scu, scp

    def _retrieved_classes(self, rq: pdu.AAssociateRqPDU) -> frozenset:
        """SOP classes accepted only to carry C-GET sub-operations (PS3.4 C.4.3.3): those
        the requester proposes taking the SCP role for, when it also proposes a C-GET
        class we serve. The AE need not list them (0.9.x AEs serving C-GET did not)."""
        proposed = {item.abs_sub_item.name for item in rq.presentation_context_items
                    if item.abs_sub_item}
        if not proposed & GET_SOP_CLASSES & set(self.ae.supported_scp):
            return frozenset()
        return frozenset(sub.sop_class_uid for sub in
                         _sub_items(rq, userdataitems.ScpScuRoleSelectionSubItem)
                         if sub.scp_role)

    def _choose(self, item, retrieved: frozenset = frozenset()) -> Tuple[int, Optional[str]]:
        """Result and transfer syntax for one proposed context (PS3.8 9.3.3.2)."""
        sop_class = item.abs_sub_item.name if item.abs_sub_item else None
        if sop_class not in self.ae.acceptable_sop_classes() and sop_class not in retrieved:
            return ABSTRACT_SYNTAX_NOT_SUPPORTED, None
        proposed = [ts.name for ts in item.ts_sub_items]
        # Data sets kept as they arrive: the AE may take the requester's first choice.
        storage = (sop_class in retrieved or sop_class in STORAGE_SOP_CLASSES
                   or sop_class in self.ae.store_in_file)
        # Per-peer transfer syntaxes, when the settings have their own (PS3.8 9.3.3.2).
        with_settings = getattr(self.ae, 'with_settings', None)
        negotiator = self.ae if with_settings is None else with_settings(self._settings)
        ts = negotiator.choose_transfer_syntax(sop_class, proposed, storage)
        if ts is None:
            return TRANSFER_SYNTAXES_NOT_SUPPORTED, None
        return ACCEPTANCE, ts

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


def _association_info(assoc: Association, rq: pdu.AAssociateRqPDU,
                      ac: pdu.AAssociateAcPDU) -> association_context.AssociationInfo:
    """The ``AssociationInfo`` of ``assoc``, just established by ``rq`` and ``ac``."""
    requestor = isinstance(assoc, AssociationRequester)
    theirs = ac if requestor else rq
    sock = assoc.dul.sock if assoc.dul is not None else None
    address = port = None
    try:
        address, port = sock.getpeername()[:2]
        address = plain_address(address)
    except (AttributeError, OSError, TypeError, ValueError):
        if requestor:
            address, port = assoc.remote_ae.address, assoc.remote_ae.port
    cert = der = None
    if hasattr(sock, 'getpeercert'):
        try:
            der = sock.getpeercert(binary_form=True)
            if der is not None:
                cert = sock.getpeercert()
        except (OSError, ValueError):
            cert = der = None
    identity = assoc.remote_ae.user_identity() if requestor else assoc.user_identity
    answers = _sub_items(ac, userdataitems.UserIdentityNegotiationSubItemAc)
    response = answers[0].server_response if answers else None
    common = {sub.sop_class_uid: (sub.service_class_uid,
                                  tuple(sub.related_general_sop_class_uids))
              for sub in _sub_items(rq, userdataitems.SOPClassCommonExtendedNegotiationSubItem)}
    uids_ = _sub_items(theirs, userdataitems.ImplementationClassUIDSubItem)
    names = _sub_items(theirs, userdataitems.ImplementationVersionNameSubItem)
    return association_context.AssociationInfo(
        calling_ae_title=str(rq.calling_ae_title).strip(),
        called_ae_title=str(rq.called_ae_title).strip(),
        is_requestor=requestor, peer_address=address, peer_port=port,
        presentation_contexts=tuple(
            assoc.accepted_contexts[pc_id] for pc_id in sorted(assoc.accepted_contexts)),
        roles=dict(assoc.roles),
        extended_negotiation={
            sub.sop_class_uid: bytes(sub.app_info)
            for sub in _sub_items(ac, userdataitems.SOPClassExtendedNegotiationSubItem)},
        common_extended_negotiation=common,
        user_identity=association_context.UserIdentity.from_sub_item(identity),
        user_identity_response=response,
        peer_max_pdu_length=assoc.peer_max_pdu_length,
        peer_implementation_class_uid=uids_[0].implementation_class_uid if uids_ else None,
        peer_implementation_version_name=(
            names[0].implementation_version_name if names else None),
        peer_certificate=cert, peer_certificate_der=der, settings=assoc.settings)


__all__ = [
    'APPLICATION_CONTEXT_NAME', 'IMPLEMENTATION_UID', 'IMPLEMENTATION_VERSION_NAME',
    'AETParams', 'Association', 'AssociationAcceptor', 'AssociationRequester',
    'PContextDef', 'PContextDefList', 'RemoteAEConfig', 'build_pres_context_def_list',
    'number_contexts', 'syntax_groups',
]
