"""Application entities: ``ClientAE`` (SCU only) and ``AE`` (a threaded TCP server too).

An AE holds the configuration every association reads: its title, transfer syntaxes,
presentation contexts, the services it runs as SCU and SCP, and the timeouts. Its
``on_*`` methods are the hooks a subclass overrides; they run in the association's
thread. The server gives each incoming connection one thread and keeps serving
whatever a single association does.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import queue
import selectors
import signal
import socket
import socketserver
import threading
import time
from typing import Iterable, Optional

import pydicom
from pydicom.dataset import Dataset

from pynetdicom2 import incoming, statuses, uids, workers as worker_processes
from pynetdicom2.settings import SETTING_NAMES, AssociationSettings, PeerSettings, plain_address
from pynetdicom2.asceprovider import (
    GET_SOP_CLASSES, IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME, MAX_PRESENTATION_CONTEXTS,
    STORAGE_SOP_CLASSES, AETParams, AssociationAcceptor, AssociationRequester, PContextDefList,
    RemoteAEConfig,
    number_contexts, syntax_groups)
from pynetdicom2.exceptions import AssociationRejectedError, EventHandlingError, NetDICOMError
from pynetdicom2.services import storage as storage_service, verification as verification_service

logger = logging.getLogger(__name__)

#: Transfer syntaxes an AE supports unless told otherwise, in order of preference: a
#: list, as 0.9.x had it, of ``uids.DEFAULT_TS``.
default_ts = list(uids.DEFAULT_TS)


class AEBase:
    """What every AE has: configuration, services, hooks and association requests.

    Not used directly: see ``ClientAE`` and ``AE``.
    """

    #: The largest data set gathered in memory, in bytes: C-FIND identifiers,
    #: N-service information and every other data set that does not stream into a
    #: file. Beyond it the association is aborted (A-ABORT), so one peer cannot
    #: exhaust the memory of a server that serves everyone. None: no limit.
    max_memory_data_set: Optional[int] = 16 * 1024 * 1024
    #: The largest C-STORE data set received in memory, for the SOP classes taken out
    #: of ``store_in_file`` (``on_receive_store`` then gets bytes). Beyond it the
    #: store is answered 0xA700 (out of resources) and the association goes on.
    max_memory_store: Optional[int] = 1024 * 1024 * 1024
    #: For a storage SOP class (and a class carried by C-GET sub-operations) with no
    #: entry in ``ts_preferences``, accept the syntax the requester proposed first
    #: among ours: the instance then travels and is kept as its sender has it, with
    #: no conversion on either side (0.9.8 chose so for every class). False: our
    #: order (``supported_ts``) for these classes too, as for all the others.
    prefer_proposed_ts_for_storage = True
    #: Seconds for the TCP connect (and TLS handshake) of our requests; None: ``dcm_timeout``.
    connect_timeout: Optional[float] = None
    #: Seconds for the A-ASSOCIATE exchange of our requests; None: ``dcm_timeout``.
    acse_timeout: Optional[float] = None
    #: Seconds an accepted association may stay idle between requests; None: ``dcm_timeout``.
    network_timeout: Optional[float] = None
    #: Decompress a lossy image for a peer that does not take its syntax (storage SCU).
    decompress_lossy = True

    def __init__(self, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        preference = list(default_ts if supported_ts is None else supported_ts)
        self.supported_ts = frozenset(preference)
        self._ts_preference = tuple(dict.fromkeys(preference))
        #: Transfer syntaxes for some SOP classes instead of ``supported_ts``, most
        #: preferred first: a key is a SOP class UID, or a service (as given to
        #: ``add_scp``/``add_scu``) standing for every class it serves. What we
        #: propose and accept for such a class, chosen in this order.
        self.ts_preferences: dict = {}
        self.max_pdu_length = max_pdu_length
        self.dcm_timeout = 15
        self.artim_timeout = 10
        self.supported_scu: dict = {}
        self.supported_scp: dict = {}
        self.context_def_list: dict = {}
        self.store_in_file: set = set()
        #: Access control for incoming associations: None accepts any title; a set
        #: rejects others (calling: source 1 diagnostic 3; called: diagnostic 7).
        self.allowed_calling_aets: Optional[set] = None
        self.allowed_called_aets: Optional[set] = None
        #: Access control by the peer's IP address: networks or addresses, IPv4 or
        #: IPv6 (``{'10.1.0.0/16', '::1'}``). A peer in ``denied_networks``, or outside
        #: ``allowed_networks`` when that is not None, is rejected (1, 1, 1).
        self.allowed_networks: Optional[set] = None
        self.denied_networks: Optional[set] = None
        #: Overrides for some peers (``add_peer_settings``): ``PeerSettings`` rules.
        self.peer_settings: list = []
        self.lock = threading.Lock()

    @property
    def timeout(self) -> float:
        """Alias of ``dcm_timeout``: both names read and write the same value."""
        return self.dcm_timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self.dcm_timeout = value

    # -- per-association settings ------------------------------------------------------

    def add_peer_settings(self, ae_title: Optional[str] = None, address: Optional[str] = None,
                          **overrides) -> 'AEBase':
        """Settings for some peers only, e.g. a slow modality's longer DIMSE timeout::

            ae.add_peer_settings(ae_title='SLOWMOD', dcm_timeout=120)
            ae.add_peer_settings(address='10.1.0.0/16', max_pdu_length=16384)

        ``ae_title`` is the peer's (the calling AE title of an incoming association,
        the called AE title of ours); ``address`` an IP address or network (IPv4 or
        IPv6); given both, both must match. ``overrides`` are ``AssociationSettings``
        names (unknown ones raise ``TypeError``). Address rules apply first, then AE
        title rules, each in the order added: the later wins. Only associations that
        start afterwards use them. Chainable.
        """
        rule = PeerSettings(dict(overrides), ae_title=ae_title, address=address)
        with self.lock:
            self.peer_settings = self.peer_settings + [rule]
        return self

    def settings_for(self, peer_address: Optional[str] = None,
                     ae_title: Optional[str] = None) -> AssociationSettings:
        """The ``AssociationSettings`` an association with this peer starts with: the
        AE's attributes now (``dcm_timeout``, ``artim_timeout``, ``max_pdu_length``, ...)
        with the matching ``add_peer_settings`` overrides applied. An incoming
        association asks once when the connection is accepted (``ae_title`` None) and
        again when its A-ASSOCIATE-RQ names the calling AE title; ours once, at
        ``request_association``. Override it to decide per peer in code.
        """
        values = {name: getattr(self, name, None) for name in SETTING_NAMES}
        values['supported_ts'] = self.transfer_syntax_preference()
        values['ts_preferences'] = dict(getattr(self, 'ts_preferences', None) or {})
        rules = list(getattr(self, 'peer_settings', ()))
        for rule in [r for r in rules if r.ae_title is None] + \
                [r for r in rules if r.ae_title is not None]:
            if rule.matches(peer_address, ae_title):
                values.update(rule.overrides)
        return AssociationSettings.from_values(values)

    def with_settings(self, settings: AssociationSettings) -> 'AEBase':
        """This AE as an association with ``settings`` negotiates: itself, or, when
        the settings' transfer syntaxes (``supported_ts``, ``ts_preferences``) differ
        from the AE's (a peer override), a view reading those from the settings and
        everything else from the AE. The AE itself is not changed."""
        if (tuple(settings.supported_ts) == self.transfer_syntax_preference()
                and dict(settings.ts_preferences) == dict(self.ts_preferences)):
            return self
        return _negotiating_view(self, settings)

    # -- configuration --------------------------------------------------------------

    def add_scu(self, service, sop_classes: Optional[Iterable[str]] = None) -> 'AEBase':
        """Use ``service`` as SCU for its SOP classes (or ``sop_classes``)."""
        sop_classes = list(service.sop_classes if sop_classes is None else sop_classes)
        with self.lock:
            for uid in sop_classes:
                self.supported_scu[uid] = service
        self.update_context_def_list(sop_classes)
        return self

    def add_scp(self, service) -> 'AEBase':
        """Use ``service`` as SCP for its SOP classes."""
        sop_classes = list(service.sop_classes)
        with self.lock:
            for uid in sop_classes:
                self.supported_scp[uid] = service
        self.update_context_def_list(sop_classes, getattr(service, 'store_in_file', False))
        return self

    def update_context_def_list(self, sop_classes: Iterable[str],
                                store_in_file: bool = False) -> None:
        """Add a presentation context (IDs 1, 3, 5, ...) for each new SOP class."""
        with self.lock:
            known = {ctx.sop_class for ctx in self.context_def_list.values()}
            next_id = 2 * len(self.context_def_list) + 1
            for uid in sop_classes:
                if store_in_file:
                    self.store_in_file.add(uid)
                if uid in known:
                    continue
                self.context_def_list[next_id] = PContextDefList(
                    next_id, uid, self.transfer_syntaxes_for(uid))
                known.add(uid)
                next_id += 2

    def copy_context_def_list(self) -> dict:
        """A copy of the presentation context definitions, safe to edit."""
        with self.lock:
            return dict(self.context_def_list)

    def acceptable_sop_classes(self) -> frozenset:
        """SOP classes this AE accepts when it is the acceptor."""
        with self.lock:
            # Asked once per association; rebuilt only when the contexts change.
            cached = self.__dict__.get('_acceptable')
            if cached is None or cached[0] != len(self.context_def_list):
                cached = (len(self.context_def_list),
                          frozenset(ctx.sop_class for ctx in self.context_def_list.values()))
                self._acceptable = cached
            return cached[1]

    def transfer_syntax_preference(self) -> tuple:
        """Our transfer syntaxes, most preferred first (the acceptor chooses by it)."""
        supported = self.supported_ts
        if isinstance(supported, (list, tuple)):
            # A 0.9.x script may assign a list: its order is the preference.
            return tuple(dict.fromkeys(supported))
        preference = [ts for ts in self._ts_preference if ts in supported]
        return tuple(preference) + tuple(sorted(set(supported) - set(preference)))

    def _explicit_preference(self, sop_class: str) -> Optional[tuple]:
        """``ts_preferences`` for ``sop_class`` (by UID, else by its service), or None."""
        preferences = self.ts_preferences
        if not preferences:
            return None
        found = preferences.get(sop_class)
        if found is None:
            for services in (self.supported_scp, self.supported_scu):
                service = services.get(sop_class)
                if service is not None and service in preferences:
                    found = preferences[service]
                    break
        return None if found is None else tuple(dict.fromkeys(found))

    def transfer_syntaxes_for(self, sop_class: str) -> tuple:
        """The transfer syntaxes we propose and accept for ``sop_class``, most
        preferred first: its ``ts_preferences`` entry, else ``supported_ts``."""
        explicit = self._explicit_preference(sop_class)
        return self.transfer_syntax_preference() if explicit is None else explicit

    def choose_transfer_syntax(self, sop_class: str, proposed, storage: bool = False
                               ) -> Optional[str]:
        """The syntax to accept for a proposed presentation context (PS3.8 9.3.3.2),
        or None to refuse it (result 4, transfer syntaxes not supported).

        ``proposed`` holds the context's syntaxes in the requester's order;
        ``storage`` says that the class's data sets are kept as they arrive (a
        storage SOP class, or one carried by C-GET sub-operations). Among the
        syntaxes of ``transfer_syntaxes_for(sop_class)``: for such a class, unless
        ``ts_preferences`` names it or ``prefer_proposed_ts_for_storage`` is False,
        the one proposed first (what the sender has: nothing is converted); else the
        one we prefer. Override it to decide otherwise.
        """
        explicit = self._explicit_preference(sop_class)
        ours = self.transfer_syntax_preference() if explicit is None else explicit
        if storage and explicit is None and self.prefer_proposed_ts_for_storage:
            accepted = set(ours)
            return next((ts for ts in proposed if ts in accepted), None)
        offered = set(proposed)
        return next((ts for ts in ours if ts in offered), None)

    # -- associations ---------------------------------------------------------------

    @contextlib.contextmanager
    def request_association(self, remote_ae, sop_classes: Optional[Iterable[str]] = None):
        """Associate with ``remote_ae`` and yield the ``AssociationRequester``.

        ``remote_ae`` is a dict (or ``RemoteAEConfig``) with ``aet``, ``address``,
        ``port`` and optional identity keys. ``sop_classes`` proposes only the
        contexts for those SOP classes. A clean exit releases; an exception inside
        the block aborts and propagates.
        """
        remote = RemoteAEConfig.from_value(remote_ae)
        settings = self.settings_for(remote.address, remote.aet)
        assoc = AssociationRequester(
            self, None, remote, self.with_settings(settings).contexts_to_propose(sop_classes),
            settings=settings)
        assoc.request()
        try:
            yield assoc
        except BaseException:
            assoc.abort()
            raise
        assoc.release()

    def contexts_to_propose(self, sop_classes: Optional[Iterable[str]] = None) -> dict:
        """The presentation contexts an association request proposes.

        ``sop_classes`` chooses them explicitly. Otherwise every context is proposed
        when they fit in one A-ASSOCIATE-RQ (128); when they do not, only those the
        association can need: the SOP classes we use as SCU, plus the classes we
        serve as SCP when a C-GET SCU may receive them on the same association.

        A class named in ``ts_preferences`` is proposed with those syntaxes. A
        storage SOP class whose syntaxes mix native and compressed ones is proposed
        twice, the native and the compressed syntaxes apart, so that the peer can
        accept both: compressed data then go as they are, and a peer taking only
        native data still accepts the class (the first classes first, while the
        contexts fit in 128). Otherwise the contexts and their IDs are those of
        ``context_def_list``.
        """
        contexts = self.copy_context_def_list()
        subset = sop_classes is not None or len(contexts) > MAX_PRESENTATION_CONTEXTS
        if not subset:
            chosen = list(contexts.values())
        else:
            if sop_classes is None:
                wanted = set(self.supported_scu)
                if wanted & GET_SOP_CLASSES:
                    wanted |= set(self.supported_scp)
            else:
                wanted = set(sop_classes)
            chosen = [c for c in contexts.values() if c.sop_class in wanted]
            if len(chosen) > MAX_PRESENTATION_CONTEXTS:
                raise NetDICOMError(
                    f'{len(chosen)} presentation contexts would be proposed; one '
                    f'A-ASSOCIATE-RQ carries at most {MAX_PRESENTATION_CONTEXTS} (PS3.8 '
                    '9.3.2.2): pass request_association(remote_ae, sop_classes=[...]) '
                    'with the classes needed')
        proposal = [(ctx.sop_class, self._proposal_groups(ctx)) for ctx in chosen]
        if not subset and all(len(groups) == 1 and groups[0] == list(ctx.supported_ts)
                              for ctx, (_, groups) in zip(chosen, proposal)):
            return contexts
        # Renumbered: the chosen contexts keep their order, with IDs 1, 3, 5, ...
        return number_contexts(proposal)

    def _proposal_groups(self, ctx: PContextDefList) -> list:
        """The syntaxes to propose for ``ctx``'s class, one list per context."""
        explicit = self._explicit_preference(ctx.sop_class)
        syntaxes = ctx.supported_ts if explicit is None else explicit
        if ctx.sop_class in STORAGE_SOP_CLASSES or ctx.sop_class in self.store_in_file:
            return syntax_groups(syntaxes)
        return [list(syntaxes)]

    @incoming.library_default
    def get_file(self, context, command_set):
        """Where an incoming data set of a ``store_in_file`` SOP class is written (0.9.x).

        Returns ``(file, start_offset)``. The default is a temporary file holding the
        Part-10 preamble and file meta information, the data set following it.
        Override it to choose the file yourself: that file stays yours (the library
        writes the data set into it, passes it to ``on_receive_store`` and hands it
        back through ``discard_file``; it never renames or deletes it).
        """
        owner = self.incoming_data_set(
            incoming.clean_uid(command_set.get('AffectedSOPClassUID')),
            incoming.clean_uid(command_set.get('AffectedSOPInstanceUID')),
            context.supported_ts)
        return owner.file, owner.offset

    def incoming_data_set(self, sop_class_uid: str, sop_instance_uid: str,
                          transfer_syntax: str) -> incoming.IncomingDataSet:
        """The owner of a data set about to arrive (the factory the storage service uses).

        Given the request's Affected SOP Class and Instance UIDs and the transfer
        syntax, returns an ``incoming.IncomingDataSet``: the default, an anonymous
        temporary file, keeps nothing; ``FolderStorageMixin`` keeps it in a folder.
        """
        return incoming.TemporaryDataSet(sop_class_uid, sop_instance_uid, transfer_syntax)

    # -- hooks ----------------------------------------------------------------------

    def on_association_request(self, asce, assoc) -> None:
        """An A-ASSOCIATE-RQ arrived (``assoc``); raise ``AssociationRejectedError``
        to reject it with exactly its values. Default: accept."""

    def on_user_identity(self, asce, identity) -> Optional[bytes]:
        """The requester presented ``identity`` (a ``UserIdentityNegotiationSubItem``:
        ``user_identity_type``, ``primary_field``, ``secondary_field``).

        Raise ``AssociationRejectedError`` to refuse it; return bytes to send as the
        server response when the requester asked for one. Default: accept, empty
        response.
        """
        return None

    def on_extended_negotiation(self, asce, sop_class_uid: str,
                                app_info: bytes) -> Optional[bytes]:
        """The requester proposed SOP Class Extended Negotiation (PS3.7 D.3.3.5) for
        ``sop_class_uid``, an accepted class, with ``app_info`` (the service-class
        application information, e.g. PS3.4 C.3.1 for Q/R: byte 0 relational queries,
        1 combined date-time matching, 2 fuzzy semantic matching, 3 timezone
        adjustment). Return the bytes to answer with, or None to send no answer,
        which tells the requester none of the options is supported.

        Default: None. The library's Q/R services do none of these (as DCMTK,
        which leaves the item out too).
        """
        return None

    def on_role_selection(self, asce, sop_class_uid: str, scu_role: int,
                          scp_role: int) -> Optional[tuple]:
        """Our answer to the requester's SCP/SCU Role Selection for ``sop_class_uid``
        (PS3.7 D.3.3.4): ``scu_role`` (the requester may act as SCU) and ``scp_role``
        (it may act as SCP) are what the library would answer, the roles it proposed
        that this AE can act opposite. Return ``(scu_role, scp_role)`` to answer
        instead (a role it did not propose stays refused), or None to keep them.
        """
        return None

    def discard_file(self, fp) -> None:
        """Hand back ``fp`` (from ``get_file``) once its data set has been dealt with,
        or when it will not complete. A file of the library's is dropped unless it was
        kept; any other file is closed."""
        owner = getattr(fp, 'incoming_data_set', None)
        if isinstance(owner, incoming.IncomingDataSet):
            owner.release()
        else:
            fp.close()

    def on_association_response(self, response) -> None:
        """Our request was accepted: ``response`` is the A-ASSOCIATE-AC PDU."""

    def on_abort(self, asce, exc) -> None:
        """An incoming association was aborted: ``exc`` is an ``AssociationAbortedError``
        with the A-ABORT's source and reason; when this end aborted it (a failing
        handler, a protocol error), the failure is its ``__cause__``."""

    def on_dcm_timeout(self, asce, exc) -> None:
        """An incoming association timed out waiting for the peer."""

    # Lifecycle hooks (both sides: associations this AE accepts and those it
    # requests). Each gets the association's ``AssociationInfo`` (pynetdicom2.context),
    # the object every other hook reads as ``context.association``. An association
    # that is established gets ``on_association_established`` and then exactly one
    # of released / aborted / timed out. They run in the association's thread; an
    # exception they raise is logged and changes nothing (the association is ended
    # and cleaned up as it would be). The 0.9.8 hooks above keep their behaviour.

    def on_association_established(self, info) -> None:
        """An association is established: A-ASSOCIATE-AC sent (acceptor) or
        received and accepted by ``on_association_response`` (requester)."""

    def on_association_released(self, info) -> None:
        """The association ended by A-RELEASE, asked by either end."""

    def on_association_aborted(self, info, source, reason, by_peer: bool) -> None:
        """The association ended by an abort.

        ``by_peer`` True: the peer sent A-ABORT (``source``, ``reason`` as on the
        wire, PS3.8 9.3.8) or dropped the connection (``source`` 2, ``reason`` 0).
        False: this end sent the A-ABORT with ``source`` and ``reason`` (0 service
        user: ``abort()``, a failing handler; 2 service provider: a protocol error),
        or closed the connection without one (``kill()``, ``AE.quit()``: both None).
        A timeout is told by ``on_association_timed_out`` instead.
        """

    def on_association_timed_out(self, info) -> None:
        """Nothing came from the peer within the timeout (``dcm_timeout``, or the
        ARTIM timer while releasing): the association was aborted."""

    def on_receive_echo(self, context):
        """A C-ECHO arrived; return its status (default success)."""
        return statuses.SUCCESS

    @incoming.library_default
    def on_receive_store(self, context, ds):
        """A C-STORE data set arrived; return its status. Default: 0xB006."""
        return statuses.C_STORE_ELEMENTS_DISCARDED

    def on_receive_find(self, context, ds):
        """C-FIND: yield ``(Dataset, Status)`` pairs. Default: no matches."""
        return iter(())

    def on_receive_move(self, context, ds, destination):
        """C-MOVE: return ``(remote_ae, number_of_sub_ops, iterator of data sets)``."""
        raise NotImplementedError('on_receive_move is not implemented by this AE')

    def on_receive_get(self, context, ds):
        """C-GET: return ``(number_of_sub_ops, iterator of data sets)``."""
        raise NotImplementedError('on_receive_get is not implemented by this AE')

    def on_commitment_request(self, remote_aet, uids):
        """Storage commitment request: return ``(remote_ae, success, failure)``."""
        raise NotImplementedError('on_commitment_request is not implemented by this AE')

    def on_commitment_response(self, transaction_uid, success, failure) -> None:
        """A storage commitment result (N-EVENT-REPORT) arrived."""

    # N-services. Each returns ``(Status, Dataset or None)`` (or a bare status); the
    # defaults raise NotImplementedError, answered 0x0211 "unrecognized operation".

    def on_mpps_create(self, context, sop_instance_uid, ds):
        """MPPS N-CREATE (a procedure step begins, IN PROGRESS)."""
        raise NotImplementedError('on_mpps_create is not implemented by this AE')

    def on_mpps_set(self, context, sop_instance_uid, ds):
        """MPPS N-SET (the step is updated, COMPLETED or DISCONTINUED)."""
        raise NotImplementedError('on_mpps_set is not implemented by this AE')

    def on_receive_n_get(self, context, msg, ds):
        """Generic N-GET for ``msg.requested_sop_instance_uid`` (``ds`` is None)."""
        raise NotImplementedError('on_receive_n_get is not implemented by this AE')

    def on_receive_n_set(self, context, msg, ds):
        """Generic N-SET with the modification list ``ds``."""
        raise NotImplementedError('on_receive_n_set is not implemented by this AE')

    def on_receive_n_action(self, context, msg, ds):
        """Generic N-ACTION (``msg.action_type_id``) with its action information."""
        raise NotImplementedError('on_receive_n_action is not implemented by this AE')

    def on_receive_n_create(self, context, msg, ds):
        """Generic N-CREATE of ``msg.affected_sop_instance_uid`` with ``ds``."""
        raise NotImplementedError('on_receive_n_create is not implemented by this AE')

    def on_receive_n_delete(self, context, msg, ds):
        """Generic N-DELETE of ``msg.requested_sop_instance_uid`` (``ds`` is None)."""
        raise NotImplementedError('on_receive_n_delete is not implemented by this AE')

    def on_receive_n_event_report(self, context, msg, ds):
        """Generic N-EVENT-REPORT (``msg.event_type_id``) with its event information."""
        raise NotImplementedError('on_receive_n_event_report is not implemented by this AE')


def _negotiating_view(ae: AEBase, settings: AssociationSettings) -> AEBase:
    """``ae`` seen through one association's settings (``AEBase.with_settings``): an
    object of the AE's class sharing its attributes, but with the transfer syntaxes
    and ``ts_preferences`` of the settings; the AE's methods, overridden ones too,
    run on it. What changes the configuration still changes the AE itself."""
    view = object.__new__(type(ae))
    view.__dict__.update(ae.__dict__)
    view.supported_ts = frozenset(settings.supported_ts)
    view._ts_preference = tuple(settings.supported_ts)
    view.ts_preferences = dict(settings.ts_preferences)
    for name in ('add_scu', 'add_scp', 'update_context_def_list', 'add_peer_settings'):
        setattr(view, name, getattr(ae, name))
    return view


class ClientAE(AEBase):
    """An AE that only requests associations (SCU role)."""

    def __init__(self, ae_title: str, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        super().__init__(supported_ts, max_pdu_length)
        self.local_ae = AETParams(socket.gethostname(), ae_title, None)


_dual_stack_probe: Optional[bool] = None


def dual_stack_available() -> bool:
    """Whether this system can listen on IPv6 and IPv4 with one socket (AF_INET6,
    IPV6_V6ONLY off, bound to '::'); asked once. ``AE.server_bind`` still falls back
    to IPv4 if the bind itself fails."""
    global _dual_stack_probe
    if _dual_stack_probe is None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            _dual_stack_probe = socket.has_ipv6
        except (AttributeError, OSError):      # no IPv6, or no IPV6_V6ONLY
            _dual_stack_probe = False
    return _dual_stack_probe


class _PendingConnection:
    """A connection whose A-ASSOCIATE-RQ has not arrived yet.

    It holds a duplicate of the socket's descriptor so that another thread can cut
    the connection (``shutdown`` acts on the connection, not on one descriptor)
    whatever the serving thread is doing with its own: a TLS handshake, a read. The
    duplicate is closed by ``cut`` or ``release``, whichever comes; the AE calls
    exactly one of them, by whoever takes the connection out of its table.
    """

    __slots__ = ('peer', 'since', '_control')

    def __init__(self, sock, client_address) -> None:
        self.peer = ('%s:%s' % (plain_address(client_address[0]), client_address[1])
                     if client_address else '?')
        self.since = time.monotonic()
        try:
            self._control: Optional[socket.socket] = sock.dup()
        except OSError:  # out of descriptors: this one just cannot be cut early
            self._control = None

    def waited(self) -> float:
        return time.monotonic() - self.since

    def cut(self) -> None:
        """End the connection now; the serving thread sees it closed."""
        control, self._control = self._control, None
        if control is not None:
            try:
                control.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            control.close()

    def release(self) -> None:
        """The connection no longer waits: drop the duplicate only."""
        control, self._control = self._control, None
        if control is not None:
            control.close()


class _AssociationHandler(socketserver.BaseRequestHandler):
    """One thread per connection: run one association to its end."""

    def handle(self) -> None:
        self.server.serve_association(self.request, self.client_address)


class AE(socketserver.ThreadingTCPServer, AEBase):
    """An AE that is also a threaded TCP server: SCU and SCP.

    ``with ae:`` starts serving in a background thread; leaving the block calls
    ``quit()``. Port 0 picks a free port, readable as ``ae.local_ae.port``.

    ``max_associations`` (default None: no limit, as 0.9.8) bounds the associations
    served at once; beyond it the AE answers A-ASSOCIATE-RJ (2, 3, 2:
    rejected-transient, local-limit-exceeded). Only a connection whose
    A-ASSOCIATE-RQ has arrived counts. Connections still waiting for theirs are
    bounded apart by ``max_pending_connections`` (default 64): a new one beyond it
    closes the one that has waited longest. Each waits at most ``artim_timeout``
    (PS3.8 9.1.5), so silent sockets never lock real peers out.

    ``workers`` (default 1) > 1 serves with that many worker processes sharing the
    listening socket, each running this thread-per-association server, so the
    handlers use every core (``pynetdicom2.workers``; needs ``fork``, else one
    process and a warning). The AE is copied into each worker when serving starts:
    configure it before. ``max_associations`` counts over all workers,
    ``max_pending_connections`` per worker; a worker that dies is replaced, and
    ``quit()`` ends every worker.
    """

    # socketserver.BaseServer has a ``timeout`` of its own; ours is dcm_timeout's alias.
    timeout = AEBase.timeout
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs in a burst of connections.
    request_queue_size = socket.SOMAXCONN
    allow_reuse_address = True
    #: Associations served at once (None: no limit); beyond it A-ASSOCIATE-RJ (2, 3, 2).
    max_associations: Optional[int] = None
    #: Connections waiting for their A-ASSOCIATE-RQ (None: no bound); beyond it the
    #: one that has waited longest is closed. Each waits at most ``artim_timeout``.
    max_pending_connections: Optional[int] = 64
    #: Seconds a finished association's thread waits for the next connection before
    #: it ends: back-to-back associations skip a thread start (about 70 µs each).
    idle_thread_timeout = 1.0
    #: Processes serving the listening socket: 1, this one; N > 1, N forked workers.
    workers: int = 1
    #: Seconds ``quit()`` gives the workers to end their associations; then SIGKILL.
    worker_stop_timeout: float = 5.0
    #: In a worker process, its number (0 .. workers - 1); None elsewhere.
    worker_number: Optional[int] = None
    #: True when the default bind ('') listens on IPv6 and IPv4 with one socket.
    _dual_stack = False

    def __init__(self, ae_title: str, port: int, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536, bind_and_activate: bool = True,
                 bind_address: str = '', *, workers: Optional[int] = None) -> None:
        AEBase.__init__(self, supported_ts, max_pdu_length)
        if workers is not None:
            worker_processes.process_count(workers)   # a bad value fails here, not later
            self.workers = workers
        # The worker processes and their shared counters, while serving with them.
        self._pool: Optional[worker_processes.WorkerPool] = None
        self._counts: Optional[worker_processes.SharedCounts] = None
        self._supervising = False
        self._workers_started = threading.Event()
        self._workers_stop = threading.Event()
        self._workers_done = threading.Event()
        if bind_address.startswith('[') and bind_address.endswith(']'):
            bind_address = bind_address[1:-1]          # '[::1]' as in a URL
        if ':' in bind_address:
            self.address_family = socket.AF_INET6
        elif not bind_address and dual_stack_available():
            # Every interface, IPv6 and IPv4: '::' with IPV6_V6ONLY off (server_bind).
            # Without IPv6 (or a dual-stack socket) '' binds IPv4 only, as 0.9.8.
            self.address_family = socket.AF_INET6
            self._dual_stack = True
        self._active: set = set()
        # Connections waiting for their A-ASSOCIATE-RQ, oldest first (under ``lock``).
        self._pending: dict = {}
        self._serving_thread: Optional[threading.Thread] = None
        # Association threads waiting for a connection, and the hand-over to them.
        self._idle_threads = 0
        self._idle_lock = threading.Lock()
        self._handover: queue.SimpleQueue = queue.SimpleQueue()
        self._bound = False
        self.local_ae = AETParams(bind_address or socket.gethostname(), ae_title, port)
        socketserver.ThreadingTCPServer.__init__(
            self, ('::' if self._dual_stack else bind_address, port), _AssociationHandler,
            bind_and_activate=False)
        if bind_and_activate:
            self._bind()

    @property
    def server(self) -> 'AE':
        """The ``socketserver`` serving this AE: the AE itself (0.9.8 kept one in
        ``ae.server``; scripts read ``ae.server.server_address`` from it)."""
        return self

    @property
    def activated(self) -> bool:
        """True once the listening socket is bound (0.9.8's attribute)."""
        return self._bound

    def server_bind(self) -> None:
        if self._dual_stack:
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                super().server_bind()
                return
            except OSError as exc:
                if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL,
                                     errno.EPROTONOSUPPORT, errno.ENOPROTOOPT):
                    raise
            # IPv6 unusable after all: every IPv4 interface, as 0.9.8 bound it.
            self.socket.close()
            self._dual_stack = False
            self.address_family = socket.AF_INET
            self.server_address = ('', self.server_address[1])
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()

    def _bind(self) -> None:
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise
        self._bound = True
        self.local_ae.port = self.server_address[1]

    def wrap_server_socket(self, sock):
        """The socket an accepted connection uses; the TLS AE wraps it here, in the
        association's own thread."""
        return sock

    def serve_association(self, sock, client_address) -> None:
        """Run one incoming association in the calling thread."""
        pending = self._connection_pending(sock, client_address)
        acceptor = None
        try:
            try:
                sock = self.wrap_server_socket(sock)
            except Exception as exc:  # a failed TLS handshake ends this connection only
                logger.warning('connection from %s refused: %s', pending.peer, exc)
                return
            acceptor = AssociationAcceptor(self, sock, client_address)
            acceptor.run(admit=lambda acceptor: self._admit(pending, acceptor))
        finally:
            self._connection_no_longer_pending(pending)
            with self.lock:
                if acceptor is not None and acceptor in self._active:
                    self._active.discard(acceptor)
                    if self._counts is not None:
                        self._counts.leave(self.worker_number)
                if self._counts is not None:
                    self._counts.hold(self.worker_number, -1)

    def _connection_pending(self, sock, client_address) -> '_PendingConnection':
        """Count a new connection as pending; close the longest-waiting ones beyond
        ``max_pending_connections``, so a flood of silent sockets cannot keep a real
        peer's A-ASSOCIATE-RQ from being read."""
        pending = _PendingConnection(sock, client_address)
        oldest = []
        with self.lock:
            self._pending[pending] = None        # a dict keeps the order of arrival
            limit = self.max_pending_connections
            while limit is not None and len(self._pending) > max(limit, 1):
                connection = next(iter(self._pending))
                del self._pending[connection]
                oldest.append(connection)
            waiting = len(self._pending)
        for connection in oldest:
            logger.warning('closing the connection from %s: no A-ASSOCIATE-RQ after %.1f s '
                           'and %d newer connections are waiting for theirs '
                           '(max_pending_connections %d)', connection.peer,
                           connection.waited(), waiting, limit)
            connection.cut()
        return pending

    def _connection_no_longer_pending(self, pending: '_PendingConnection') -> None:
        with self.lock:
            ours = pending in self._pending
            if ours:
                del self._pending[pending]
        if ours:  # else whoever took it out of the table cuts it
            pending.release()

    def _admit(self, pending: '_PendingConnection', acceptor: AssociationAcceptor) -> None:
        """The A-ASSOCIATE-RQ has arrived: from now on the connection counts toward
        ``max_associations``, or is rejected (2, 3, 2) when that limit is reached."""
        self._connection_no_longer_pending(pending)
        with self.lock:
            limit = self.max_associations
            over_limit = limit is not None and len(self._active) >= limit
            if not over_limit and self._counts is not None:
                # Worker processes: the limit holds over all of them.
                over_limit = not self._counts.admit(self.worker_number, limit)
            if not over_limit:
                self._active.add(acceptor)
        if over_limit:
            logger.warning('rejecting %s: %d associations already active%s (max_associations)',
                           acceptor.dul.peer, limit,
                           '' if self._counts is None else ' over all worker processes')
            raise AssociationRejectedError(
                2, 3, 2, f'{limit} associations already active (max_associations)')

    @property
    def active_associations(self) -> int:
        """How many associations this process serves now: what ``max_associations`` counts."""
        return len(self._active)

    @property
    def pending_connections(self) -> int:
        """How many accepted connections still wait for their A-ASSOCIATE-RQ: what
        ``max_pending_connections`` bounds."""
        return len(self._pending)

    @property
    def idle_threads(self) -> int:
        """How many association threads wait, up to ``idle_thread_timeout``, to serve the
        next connection."""
        return self._idle_threads

    def process_request(self, request, client_address) -> None:
        """Serve a new connection in an idle association thread, else in a new one."""
        with self._idle_lock:
            if self._idle_threads:
                self._idle_threads -= 1
                self._handover.put((request, client_address))
                return
        threading.Thread(target=self._association_thread, args=(request, client_address),
                         name=f'{self.local_ae.aet} association', daemon=True).start()

    def _association_thread(self, request, client_address) -> None:
        while request is not None:
            self.process_request_thread(request, client_address)  # closes the socket
            request, client_address = self._next_connection()

    def _next_connection(self) -> tuple:
        """Wait ``idle_thread_timeout`` for a connection; ``(None, None)``: end."""
        with self._idle_lock:
            self._idle_threads += 1
        try:
            return self._handover.get(timeout=self.idle_thread_timeout)
        except queue.Empty:
            with self._idle_lock:
                # A connection handed over just as the wait ended is still ours: the
                # hand-over happens under this lock, so it is in the queue by now.
                try:
                    return self._handover.get_nowait()
                except queue.Empty:
                    self._idle_threads -= 1
                    return None, None

    def _end_idle_threads(self) -> None:
        with self._idle_lock:
            for _ in range(self._idle_threads):
                self._handover.put((None, None))
            self._idle_threads = 0

    def __enter__(self) -> 'AE':
        if not self._bound:
            if self.socket.fileno() < 0:
                # Served before and quit: a new listening socket, same address.
                self.socket = socket.socket(self.address_family, self.socket_type)
            self._bind()
        if self._serving_thread is None:
            self._workers_started.clear()
            thread = threading.Thread(
                target=self.serve_forever, name=f'AE {self.local_ae.aet}', daemon=True)
            self._serving_thread = thread
            thread.start()
            if worker_processes.process_count(self.workers) > 1:
                # Return once the workers exist: what follows may count on them.
                while not self._workers_started.wait(0.05):
                    if not thread.is_alive():
                        self._serving_thread = None
                        self.server_close()
                        self._bound = False
                        raise NetDICOMError(f'{self.local_ae.aet}: the worker processes '
                                            'did not start (see the log)')
        return self

    def __exit__(self, *exc_info) -> bool:
        self.quit()
        return False

    def quit(self) -> None:
        """Stop serving and close every active association; returns at once when the
        server was never started. With worker processes, every worker has ended
        (stopped, else killed after ``worker_stop_timeout``) when it returns."""
        thread, self._serving_thread = self._serving_thread, None
        if thread is not None or self._supervising:
            self.shutdown()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.server_close()
        self._bound = False
        self._close_connections()

    def _close_connections(self) -> None:
        """End the idle association threads, every pending connection and every
        active association (killed: nothing more is sent)."""
        self._end_idle_threads()
        with self.lock:
            active = list(self._active)
            pending = list(self._pending)
            self._pending.clear()
        for connection in pending:
            connection.cut()
        for acceptor in active:
            acceptor.kill()

    def handle_error(self, request, client_address) -> None:
        logger.exception('unexpected error serving %s', client_address)

    # -- worker processes ------------------------------------------------------------

    @property
    def worker_pids(self) -> list:
        """The process IDs of the live worker processes (empty when serving in one)."""
        pool = self._pool
        return sorted(pool.pids.values()) if pool is not None else []

    def on_worker_start(self) -> None:
        """Runs in each worker process as it starts, before it serves (``worker_number``
        says which). Reopen here what must not cross a fork, such as a database
        connection. Default: nothing."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()`` / ``quit()``: in this process, or, with
        ``workers`` > 1, in that many worker processes this thread forks and watches
        (a worker that dies is replaced). Workers end with this thread."""
        count = worker_processes.process_count(self.workers)
        if count <= 1 or self.worker_number is not None:
            socketserver.ThreadingTCPServer.serve_forever(self, poll_interval)
            return
        self._supervising = True
        self._workers_stop.clear()
        self._workers_done.clear()
        try:
            self._counts = worker_processes.SharedCounts(count)
            self._pool = worker_processes.WorkerPool(count, self._run_worker, self._counts,
                                                     f'AE {self.local_ae.aet}')
            try:
                self._pool.start()
                # Return from ``with`` once every worker accepts (bounded: a worker
                # that fails to start is replaced by ``watch``).
                deadline = time.monotonic() + 10
                while not self._counts.all_started() and time.monotonic() < deadline \
                        and not self._pool.reap():
                    time.sleep(0.005)
                self._workers_started.set()
                logger.info('%s serving on port %s with %d worker processes: %s',
                            self.local_ae.aet, self.local_ae.port, count, self.worker_pids)
                self._pool.watch(self._workers_stop)
            finally:
                self._pool.stop(self.worker_stop_timeout)
        finally:
            counts = self._counts
            self._pool = self._counts = None
            if counts is not None:
                counts.close()
            self._supervising = False
            self._workers_done.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait for it (with worker processes: for all of
        them to end)."""
        if self._supervising:
            self._workers_stop.set()
            self._workers_done.wait()
            return
        socketserver.ThreadingTCPServer.shutdown(self)

    def _run_worker(self, number: int, stop_fd: int) -> int:
        """The life of worker process ``number`` (in the child of a fork): serve the
        shared socket until ``stop_fd`` says stop, then end every association."""
        self.worker_number = number
        # Only the forking thread exists here: nothing held by the parent's threads.
        self.lock = threading.Lock()
        self._idle_lock = threading.Lock()
        self._handover = queue.SimpleQueue()
        self._idle_threads = 0
        self._active = set()
        self._pending = {}
        self._serving_thread = None
        self._pool = None
        self._supervising = False
        try:
            self.on_worker_start()
            # Counted as a worker to leave connections to only once it accepts them.
            self._counts.started(number)
            self._accept_until(stop_fd)
        finally:
            self._end_worker()
        return 0

    def _accept_until(self, stop_fd: int) -> None:
        """Accept connections on the shared socket until ``stop_fd`` is readable.

        Every worker wakes for a new connection; one wins the ``accept`` (the
        socket is non-blocking: the others go back to waiting). A worker holding
        more connections than another leaves the new one to it for up to
        ``_defer_accept`` seconds, so a burst of peers spreads over the workers.
        """
        counts, number = self._counts, self.worker_number
        self.socket.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ, 'connection')
            selector.register(stop_fd, selectors.EVENT_READ, 'stop')
            while True:
                if any(key.data == 'stop' for key, _ in selector.select()):
                    return
                deadline = time.monotonic() + self._defer_accept
                while not counts.least_loaded(number) and time.monotonic() < deadline:
                    time.sleep(0.001)
                try:
                    request, client_address = self.socket.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue  # another worker took it, or the peer gave up
                except OSError as exc:
                    # Out of file descriptors, say: the connection stays queued; do
                    # not spin on it.
                    logger.warning('worker %d cannot accept a connection: %s', number, exc)
                    time.sleep(0.1)
                    continue
                # On some systems an accepted socket inherits the listener's
                # non-blocking mode; an association reads with timeouts of its own.
                request.setblocking(True)
                with self.lock:
                    counts.hold(number, +1)
                try:
                    self.process_request(request, client_address)
                except Exception:
                    with self.lock:
                        counts.hold(number, -1)
                    self.handle_error(request, client_address)
                    self.shutdown_request(request)

    #: Seconds a worker leaves a new connection to a less loaded worker.
    _defer_accept = 0.02

    def _end_worker(self) -> None:
        """Stop accepting, end every association of this worker (as ``quit``) and wait
        a moment for their threads to discard partial data sets."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # stopping already
        with contextlib.suppress(OSError):
            self.socket.close()
        self._close_connections()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with self.lock:
                if not self._active:
                    break
            time.sleep(0.01)


class FolderStorageMixin:
    """Store each received data set as ``<storage_dir>/<SOPInstanceUID>.dcm``.

    Mixed in before an AE class; needs ``storage_dir``. The one folder storage of the
    library: ``StorageAE``, ``ClientStorageAE`` and the command-line tools use it.

    A data set streams into a temporary ``.tmp-<random>.part`` file inside the
    directory (``incoming_folder`` and ``temporary_prefix`` say where) and gets its
    final name only when complete, checked (it parses to its end and names the
    request's UIDs) and accepted by ``on_receive_store`` with a Success or Warning
    status, before the response leaves. The hook only decides the status: whether or
    not it calls this class's version, the file is kept on Success or Warning, and
    nothing is kept on a Failure or ``EventHandlingError``. A name already taken gets
    ``_1`` ... ``_<max_iterations>``; beyond that the store fails with ``OSError``
    (answered 0xA700, out of resources). A SOP Instance UID that is not a valid UID is
    refused with 0xC000 (cannot understand) and an Error Comment saying why.

    The steps of keeping an instance are hooks: ``read_attributes`` (``read_tags``),
    ``final_path``, ``place_instance`` and ``instance_stored``. ``discard`` receives
    and answers, but keeps nothing.
    """

    #: How many ``_<n>`` suffixes to try when ``<uid>.dcm`` is taken.
    max_iterations = 10
    #: A second copy of an instance replaces the first instead of taking a suffix.
    replace_existing = False
    #: Where transfers in progress live, under ``storage_dir`` ('' : in it), and the
    #: prefix of their ``<prefix><random>.part`` names.
    incoming_folder = ''
    temporary_prefix = '.tmp-'
    #: The attributes ``read_attributes`` reads from a complete file for the later
    #: steps: ``()`` none (the default: nothing is parsed), None all but pixel data.
    read_tags: Optional[Iterable] = ()
    #: Receive and answer, keep nothing.
    discard = False

    def incoming_data_set(self, sop_class_uid: str, sop_instance_uid: str,
                          transfer_syntax: str) -> incoming.IncomingDataSet:
        """A temporary file in the storage directory, given its final name when kept."""
        problem = incoming.uid_problem(sop_instance_uid, 'SOP Instance UID')
        if problem is not None:
            # Never a file name: the bytes are dropped and the store refused.
            return incoming.NullDataSet(sop_class_uid, sop_instance_uid, transfer_syntax,
                                        incoming.Refusal(incoming.CANNOT_UNDERSTAND, problem))
        if self.discard:
            return incoming.NullDataSet(sop_class_uid, sop_instance_uid, transfer_syntax)
        owner = incoming.FolderDataSet(self, sop_class_uid, sop_instance_uid, transfer_syntax)
        owner.create()  # now: a full disk is known before the data
        return owner

    def create_temporary_file(self):
        """A new ``<prefix><random>.part`` file, open for reading and writing, and its path."""
        folder = os.path.join(self.storage_dir, self.incoming_folder)
        if self.incoming_folder:
            os.makedirs(folder, exist_ok=True)
        for _ in range(100):
            path = os.path.join(folder, f'{self.temporary_prefix}{os.urandom(8).hex()}.part')
            try:
                # 'x': created here or not at all; 0o666 minus the umask, as any other
                # file the user's programs write. ``fp.name`` is the path, which a
                # 0.9.x hook may read (``pydicom.dcmread(ds.name)``). Unbuffered: the
                # owner gathers what arrives and writes it in whole pages.
                return io.FileIO(path, 'x+'), path
            except FileExistsError:
                continue
        raise OSError(f'no free temporary file name in {folder}')

    def on_receive_store(self, context, ds):
        """Decide the status of a received data set: SUCCESS (it is then kept).

        Override it to decide otherwise; calling this version is not needed."""
        return statuses.SUCCESS

    # -- the steps of keeping an instance ---------------------------------------------

    def read_attributes(self, path: str) -> Dataset:
        """The attributes named by ``read_tags`` of the complete file ``path``."""
        if self.read_tags is not None and not self.read_tags:
            return Dataset()
        try:
            return pydicom.dcmread(path, stop_before_pixels=True,
                                   specific_tags=self.read_tags)
        except Exception as exc:  # pydicom raises many kinds on a malformed data set
            raise EventHandlingError(f'the data set does not decode: {exc}') from exc

    def final_path(self, command_uid: str, attrs: Dataset) -> str:
        """Where the instance goes: ``<storage_dir>/<SOPInstanceUID>.dcm``.

        ``command_uid`` is the request's (validated) SOP Instance UID, ``attrs`` what
        ``read_attributes`` read. Raise ``EventHandlingError`` to refuse (0xC000).
        """
        problem = incoming.uid_problem(command_uid, 'SOP Instance UID')
        if problem:
            raise EventHandlingError(problem)
        return os.path.join(self.storage_dir, f'{command_uid}.dcm')

    def place_instance(self, temp_path: str, final_path: str, attrs: Dataset, context) -> str:
        """Move the complete, checked file ``temp_path`` to ``final_path``; returns the
        name it got, after ``instance_stored`` has run.

        A name already taken gets a ``_<n>`` suffix (or is replaced, with
        ``replace_existing``). Raise ``EventHandlingError`` (or
        ``incoming.InstanceRefused`` for a status of your own) to refuse the instance,
        ``OSError`` when the disk fails; either way nothing may remain under a final
        name. ``temp_path`` is deleted afterwards when it still exists.
        """
        folder = os.path.dirname(final_path)
        if folder and folder != self.storage_dir:  # the storage directory exists
            os.makedirs(folder, exist_ok=True)
        if self.replace_existing:
            os.replace(temp_path, final_path)
            placed = final_path
        else:
            placed = self._link_numbered(temp_path, final_path)
        try:
            self.instance_stored(placed, attrs, context)
        except BaseException:
            try:
                os.unlink(placed)
            except OSError:
                logger.warning('cannot delete %s', placed, exc_info=True)
            raise
        return placed

    def instance_stored(self, path: str, attrs: Dataset, context) -> None:
        """Called when an instance has reached its final name ``path``; default: nothing."""

    def _link_numbered(self, temp_path: str, final_path: str) -> str:
        """Give ``temp_path`` the name ``final_path``, or its first free ``_<n>`` variant.

        ``os.link`` fails when the name exists, so two associations storing the
        same UID never overwrite each other; where hard links are not supported,
        a check and ``os.replace`` under a lock do the same within this process.
        """
        base, ext = os.path.splitext(final_path)
        for n in range(self.max_iterations + 1):
            final = final_path if n == 0 else f'{base}_{n}{ext}'
            try:
                os.link(temp_path, final)
            except FileExistsError:
                continue
            except (OSError, AttributeError, NotImplementedError) as exc:
                if isinstance(exc, OSError) and exc.errno not in _NO_LINK_ERRNOS:
                    raise
                with _replace_lock:
                    if os.path.lexists(final):
                        continue
                    os.replace(temp_path, final)
                return final
            try:
                os.unlink(temp_path)
            except FileNotFoundError:
                pass
            return final
        raise OSError(errno.EEXIST, f'{os.path.basename(final_path)} and its '
                      f'{self.max_iterations} numbered variants already exist in '
                      f'{os.path.dirname(final_path) or "."}')


# Errors of os.link that mean "no hard links here" (FAT, some network shares).
_NO_LINK_ERRNOS = frozenset(e for e in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV,
                                        getattr(errno, 'ENOTSUP', None), errno.EMLINK)
                            if e is not None)
_replace_lock = threading.Lock()


class StorageAE(FolderStorageMixin, AE):
    """An AE (server) storing every received instance in ``storage_dir``.

    Serves verification and every storage SOP class. ``storage_dir`` is created when
    missing. Extra keywords (``bind_address``) go to ``AE``.
    """

    def __init__(self, storage_dir, ae_title: str, port: int,
                 supported_ts: Optional[Iterable[str]] = None, max_pdu_length: int = 65536,
                 bind_and_activate: bool = True, **kwargs) -> None:
        self.storage_dir = os.fspath(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)
        AE.__init__(self, ae_title, port, supported_ts, max_pdu_length, bind_and_activate,
                    **kwargs)
        self.add_scp(verification_service.verification_scp)
        self.add_scp(storage_service.storage_scp)


class ClientStorageAE(FolderStorageMixin, ClientAE):
    """A client AE storing the instances it receives (C-GET, storage commitment
    peers that push) in ``storage_dir``."""

    def __init__(self, storage_dir, ae_title: str, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        self.storage_dir = os.fspath(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)
        ClientAE.__init__(self, ae_title, supported_ts, max_pdu_length)
        # The storage SCP of every storage SOP class, received into files. Their
        # presentation contexts are not added here: some 140 classes do not fit in one
        # A-ASSOCIATE-RQ (128, PS3.8 9.3.2.2). A script lists those it needs, with
        # update_context_def_list (0.9.x) or request_association(sop_classes=...).
        service = storage_service.storage_scp
        with self.lock:
            for uid in service.sop_classes:
                self.supported_scp[uid] = service
            self.store_in_file.update(service.sop_classes)

    def contexts_to_propose(self, sop_classes: Optional[Iterable[str]] = None) -> dict:
        """As ``AEBase``; a storage SOP class named in ``sop_classes`` gets its
        presentation context first, when it has none yet."""
        if sop_classes is not None:
            sop_classes = list(sop_classes)
            known = {ctx.sop_class for ctx in self.copy_context_def_list().values()}
            missing = [uid for uid in sop_classes if uid not in known
                       and uid in self.supported_scp]
            if missing:
                self.update_context_def_list(missing, store_in_file=True)
        return super().contexts_to_propose(sop_classes)


write_meta = incoming.write_meta


__all__ = ['AEBase', 'ClientAE', 'AE', 'FolderStorageMixin', 'StorageAE', 'ClientStorageAE',
           'write_meta', 'default_ts', 'AETParams']
