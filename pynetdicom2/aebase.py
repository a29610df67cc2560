"""The application entity a script configures: ``AEBase`` and ``ClientAE`` (SCU only).

An AE holds what every association reads when it starts: its title, transfer
syntaxes, presentation contexts, the services it runs as SCU and SCP, timeouts,
access rules and per-peer settings. It chooses what its associations propose and
accept, requests associations, and has the ``on_*`` hooks a subclass overrides; they
run in the association's thread. The server (``AE``) is ``pynetdicom2.aeserver``.
"""

from __future__ import annotations

import contextlib
import operator
import socket
import threading
from typing import Iterable, Optional

from pynetdicom2 import incoming, statuses, uids
from pynetdicom2.asceprovider import AETParams, AssociationRequester, PContextDefList
from pynetdicom2.exceptions import NetDICOMError
from pynetdicom2.negotiation import (
    AC_CHOICE_METHODS, GET_SOP_CLASSES, MAX_PRESENTATION_CONTEXTS, STORAGE_SOP_CLASSES,
    RemoteAEConfig, number_contexts, syntax_groups)
from pynetdicom2.settings import SETTING_NAMES, AssociationSettings, PeerSettings

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
        rules = getattr(self, 'peer_settings', ())
        matched = [rule for rule in rules if rule.ae_title is None
                   and rule.matches(peer_address, ae_title)] + \
            [rule for rule in rules if rule.ae_title is not None
             and rule.matches(peer_address, ae_title)] if rules else ()
        if not matched:
            return self._own_settings()
        values = self._own_settings().as_dict()
        for rule in matched:
            values.update(rule.overrides)
        return AssociationSettings.from_values(values)

    def _own_settings(self) -> AssociationSettings:
        """The settings of the AE's attributes now, before any peer rule. Built again
        only when one of them differs from the last time (asked twice per incoming
        association): a snapshot of the values, containers copied, says so."""
        preference = self.transfer_syntax_preference()
        preferences = getattr(self, 'ts_preferences', None) or {}
        try:
            values = _read_plain_settings(self)
        except AttributeError:          # an attribute deleted: None, as getattr's default
            values = tuple(getattr(self, name, None) for name in _PLAIN_SETTING_NAMES)
        if not _IMMUTABLE.issuperset(map(type, values)):
            values = tuple(map(_frozen, values))
        key = (preference,
               tuple((k, _frozen(v)) for k, v in preferences.items()) if preferences else (),
               values)
        cached = self.__dict__.get('_settings_cache')
        if cached is not None and cached[0] == key:
            return cached[1]
        values = {name: getattr(self, name, None) for name in _PLAIN_SETTING_NAMES}
        values['supported_ts'] = preference
        values['ts_preferences'] = dict(preferences)
        settings = AssociationSettings.from_values(values)
        self._settings_cache = (key, settings)
        return settings

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
        order = self._ts_preference
        cached = self.__dict__.get('_preference_cache')
        if cached is not None and cached[0] is supported and cached[1] is order \
                and isinstance(supported, frozenset):
            return cached[2]            # asked several times per association
        preference = [ts for ts in order if ts in supported]
        result = tuple(preference) + tuple(sorted(set(supported) - set(preference)))
        self._preference_cache = (supported, order, result)
        return result

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


# The library's own ways of choosing an A-ASSOCIATE-AC: while an AE's class keeps them
# all, the same request gets the answer made before (negotiation.prepared_ac).
for _name in AC_CHOICE_METHODS:
    getattr(AEBase, _name).plain_negotiation = True
del _name


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


#: The settings read as the AE's attributes of the same names.
_PLAIN_SETTING_NAMES = tuple(name for name in SETTING_NAMES
                             if name not in ('supported_ts', 'ts_preferences'))
_read_plain_settings = operator.attrgetter(*_PLAIN_SETTING_NAMES)
_IMMUTABLE = frozenset({type(None), bool, int, float, str, bytes})


def _frozen(value):
    """``value`` as a snapshot equal to it by content that later changes to a
    mutable original (a set, a list, a dict) do not reach."""
    if type(value) in _IMMUTABLE:
        return value
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return _Unequal()


class _Unequal:
    """A snapshot of what cannot be copied: equal to nothing, so never cached."""

    def __eq__(self, other) -> bool:
        return False

    __hash__ = None


class ClientAE(AEBase):
    """An AE that only requests associations (SCU role)."""

    def __init__(self, ae_title: str, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        super().__init__(supported_ts, max_pdu_length)
        self.local_ae = AETParams(socket.gethostname(), ae_title, None)



__all__ = ['AEBase', 'ClientAE', 'default_ts']
