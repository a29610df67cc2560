"""Association negotiation (PS3.8 9.3.2-9.3.3, PS3.7 D.3.3): the A-ASSOCIATE-RQ a
requester sends and what it reads from the A-ASSOCIATE-AC, and the A-ASSOCIATE-AC an
acceptor answers with.

A requester proposes presentation contexts numbered 1, 3, 5, ... (native and
compressed syntaxes apart), role selection for the classes it serves on its own
association, our implementation identity and the user identity. An acceptor takes a
transfer syntax per context by its own preference, answers only the roles it can act
opposite, extended negotiation through the AE's hook, and a user identity response
when one was asked for. No I/O on the wire: functions over PDUs and an association's public
attributes (``ae``, ``settings``, ``accepted_contexts``, ``roles``, ...); the
association layer (``asceprovider``) sends and receives.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pynetdicom2 import context as association_context, pdu, transcode, uids, userdataitems
from pynetdicom2._version import __version_info__
from pynetdicom2.exceptions import NetDICOMError
from pynetdicom2.fsm import PContextDef
from pynetdicom2.settings import plain_address

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


def _user_data(assoc_pdu) -> list:
    """The user-information sub-items of an A-ASSOCIATE-RQ or -AC, in their order."""
    info = assoc_pdu.user_information
    return info.user_data if info else []


def sub_items(assoc_pdu, cls) -> list:
    """The user-information sub-items of class ``cls`` in an A-ASSOCIATE-RQ or -AC."""
    info = assoc_pdu.user_information
    return [item for item in (info.user_data if info else []) if isinstance(item, cls)]


class _SubItems:
    """The user-information sub-items of one A-ASSOCIATE PDU, sorted by class in one
    pass: negotiation asks for several classes of the same PDU."""

    __slots__ = ('_all', '_by_class')

    def __init__(self, assoc_pdu) -> None:
        info = assoc_pdu.user_information
        self._all = info.user_data if info else []
        self._by_class: dict = {}
        for item in self._all:
            self._by_class.setdefault(type(item), []).append(item)

    def __call__(self, cls) -> list:
        """As ``sub_items(assoc_pdu, cls)`` (the list is shared: read it only)."""
        if not cls.__subclasses__():            # every sub-item class we decode
            return self._by_class.get(cls, [])
        # Subclasses of ``cls`` too: in their order in the PDU.
        return [item for item in self._all if isinstance(item, cls)]


# -- the requester ---------------------------------------------------------------------

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


def _implementation(assoc) -> tuple:
    """Our Implementation Class UID and Version Name as the association states them
    (``asceprovider`` reads its module constants, which 0.9.x scripts may set)."""
    return (getattr(assoc, 'implementation_uid', IMPLEMENTATION_UID),
            getattr(assoc, 'implementation_version_name', IMPLEMENTATION_VERSION_NAME))


def build_rq(assoc) -> pdu.AAssociateRqPDU:
    """The A-ASSOCIATE-RQ of a requester: its ``context_def_list``, our maximum length
    (``max_pdu_length``) and implementation, role selection, and the user identity
    and extra sub-items of its ``remote_ae``."""
    return _build_rq(assoc, _role_items(assoc))


def prepared_rq(assoc) -> Tuple[pdu.AAssociateRqPDU, Optional[bytes]]:
    """``build_rq(assoc)`` and, when the request is one made before, its encoding.

    An AE associating again and again with the same peer sends the same request: the
    same values make the same PDU and the same bytes, kept (at most
    ``_RQ_CACHE_SIZE``) under a key of every value the request is made of. A request
    carrying a user identity or extra sub-items (values of the caller's own types) is
    made afresh each time, and its bytes are None (the PDU encodes itself).
    """
    roles = _role_items(assoc)
    key = _rq_key(assoc, roles)
    if key is None:
        return _build_rq(assoc, roles), None
    found = _RQ_CACHE.get(key)
    if found is None:
        rq = _build_rq(assoc, roles)
        found = (rq, rq.encode())
        if len(_RQ_CACHE) >= _RQ_CACHE_SIZE:
            _RQ_CACHE.clear()
        _RQ_CACHE[key] = found
    return found


# Requests made before: key (``_rq_key``) -> (PDU, its bytes). The PDU is only read
# (logged, and what ``association_info`` reports), never changed, so it is shared.
_RQ_CACHE: Dict[tuple, Tuple[pdu.AAssociateRqPDU, bytes]] = {}
_RQ_CACHE_SIZE = 64


def _role_items(assoc) -> list:
    # The requester may name its own items (the commitment report's association does).
    own_items = getattr(assoc, 'role_selection_items', None)
    return (own_items() if own_items is not None
            else role_selection_items(assoc.ae, assoc.context_def_list))


def _rq_key(assoc, roles: list) -> Optional[tuple]:
    """Every value ``_build_rq`` reads, or None when one is not a plain value. Numbers
    carry their type (True == 1, but only an int encodes)."""
    remote = assoc.remote_ae
    if (remote.user_data or remote.username is not None or remote.kerberos is not None
            or remote.saml is not None or remote.jwt is not None):
        return None
    role_key = []
    for item in roles:
        if type(item) is not userdataitems.ScpScuRoleSelectionSubItem:
            return None
        role_key.append((item.sop_class_uid, type(item.scu_role), item.scu_role,
                         type(item.scp_role), item.scp_role))
    contexts = tuple((type(ctx.id), ctx.id, ctx.sop_class, tuple(ctx.supported_ts))
                     for ctx in assoc.context_def_list.values())
    max_length = assoc.max_pdu_length
    key = (remote.aet, assoc.ae.local_ae.aet, type(max_length), max_length,
           _implementation(assoc), tuple(role_key), contexts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _build_rq(assoc, roles: list) -> pdu.AAssociateRqPDU:
    remote = assoc.remote_ae
    uid, version = _implementation(assoc)
    user_data = [userdataitems.MaximumLengthSubItem(assoc.max_pdu_length),
                 userdataitems.ImplementationClassUIDSubItem(uid),
                 userdataitems.ImplementationVersionNameSubItem(version)]
    user_data.extend(roles)
    identity = remote.user_identity()
    if identity is not None:
        user_data.append(identity)
    user_data.extend(remote.user_data)
    items = ([pdu.ApplicationContextItem(APPLICATION_CONTEXT_NAME)]
             + build_pres_context_def_list(assoc.context_def_list)
             + [pdu.UserInformationItem(user_data)])
    return pdu.AAssociateRqPDU(remote.aet, assoc.ae.local_ae.aet, items)


def role_selection_items(ae, context_def_list: Dict[int, PContextDefList]) -> list:
    """SCP/SCU role selection (PS3.7 D.3.3.4) for the classes we serve on our own
    association: those we use both ways and, when a C-GET is proposed, the classes
    whose C-STOREs we will receive. A service whose ``propose_scp_role`` is false
    (``StorageCommitment`` unless asked to take its report here) gets none."""
    proposed = {ctx.sop_class for ctx in context_def_list.values()}
    getting = bool(proposed & GET_SOP_CLASSES)
    items = []
    for sop_class in sorted(proposed & set(ae.supported_scp)):
        if not getattr(ae.supported_scp[sop_class], 'propose_scp_role', True):
            continue
        both_ways = sop_class in ae.supported_scu
        if both_ways or getting:
            items.append(userdataitems.ScpScuRoleSelectionSubItem(
                sop_class, 1 if both_ways else 0, 1))
    return items


def read_ac(assoc, ac: pdu.AAssociateAcPDU) -> None:
    """Record in the requester ``assoc`` what the A-ASSOCIATE-AC accepted: contexts
    (with their one transfer syntax), the peer's maximum length, roles, extended
    negotiation answers and the user identity response."""
    proposed = assoc.context_def_list
    for item in ac.presentation_context_items:
        ctx = proposed.get(item.context_id)
        if item.result_reason != ACCEPTANCE or ctx is None or item.ts_sub_item is None:
            continue
        assoc.accepted_contexts[item.context_id] = PContextDef(
            item.context_id, ctx.sop_class, item.ts_sub_item.name)
    # One pass over the sub-items: the last maximum length and answer per class
    # count, the first user identity answer.
    answer = None
    for item in _user_data(ac):
        if isinstance(item, userdataitems.MaximumLengthSubItem):
            assoc.peer_max_pdu_length = item.maximum_length_received
        elif isinstance(item, userdataitems.ScpScuRoleSelectionSubItem):
            assoc.roles[item.sop_class_uid] = (item.scu_role, item.scp_role)
        elif isinstance(item, userdataitems.SOPClassExtendedNegotiationSubItem):
            assoc.extended_negotiation[item.sop_class_uid] = bytes(item.app_info)
        elif answer is None and isinstance(
                item, userdataitems.UserIdentityNegotiationSubItemAc):
            answer = item
    assoc.user_identity_response = answer.server_response if answer is not None else None


# -- the acceptor ----------------------------------------------------------------------

def build_ac(assoc, rq: pdu.AAssociateRqPDU) -> pdu.AAssociateAcPDU:
    """The A-ASSOCIATE-AC the acceptor ``assoc`` answers ``rq`` with, from our own
    configuration (never an echo of the requester's); records in ``assoc`` what it
    accepts. The AE's ``on_extended_negotiation`` and ``on_role_selection`` hooks are
    called with ``assoc``, its accepted contexts already recorded."""
    items = [pdu.ApplicationContextItem(APPLICATION_CONTEXT_NAME)]
    found = _SubItems(rq)               # its sub-items, sorted once
    retrieved = _retrieved_classes(assoc.ae, rq, found)
    chooser = _Chooser(assoc, retrieved)
    for item in rq.presentation_context_items:
        result, ts = chooser.choose(item)
        if result == ACCEPTANCE:
            assoc.accepted_contexts[item.context_id] = PContextDef(
                item.context_id, item.abs_sub_item.name, ts)
        items.append(pdu.PresentationContextItemAC(
            item.context_id, result, pdu.TransferSyntaxSubItem(ts) if ts else None))
    for sub in found(userdataitems.MaximumLengthSubItem):
        assoc.peer_max_pdu_length = sub.maximum_length_received
    implementation_uid, version_name = _implementation(assoc)
    user_data = [userdataitems.MaximumLengthSubItem(assoc.settings.max_pdu_length),
                 userdataitems.ImplementationClassUIDSubItem(implementation_uid)]
    if found(userdataitems.AsynchronousOperationsWindowSubItem):
        # We perform one operation at a time, and say so (PS3.7 D.3.3.3).
        user_data.append(userdataitems.AsynchronousOperationsWindowSubItem(1, 1))
    accepted_classes = {ctx.sop_class for ctx in assoc.accepted_contexts.values()}
    for sub in found(userdataitems.ScpScuRoleSelectionSubItem):
        if sub.sop_class_uid in accepted_classes:
            scu, scp = _answer_roles(assoc, sub, retrieved)
            assoc.roles[sub.sop_class_uid] = (scu, scp)
            user_data.append(
                userdataitems.ScpScuRoleSelectionSubItem(sub.sop_class_uid, scu, scp))
    for sub in found(userdataitems.SOPClassExtendedNegotiationSubItem):
        if sub.sop_class_uid not in accepted_classes:
            continue
        hook = getattr(assoc.ae, 'on_extended_negotiation', None)
        answer = None if hook is None else hook(assoc, sub.sop_class_uid,
                                                bytes(sub.app_info))
        if answer is not None:
            # PS3.7 D.3.3.5: the acceptor answers with its own application information.
            assoc.extended_negotiation[sub.sop_class_uid] = bytes(answer)
            user_data.append(userdataitems.SOPClassExtendedNegotiationSubItem(
                sub.sop_class_uid, bytes(answer)))
    for sub in found(userdataitems.SOPClassCommonExtendedNegotiationSubItem):
        # PS3.7 D.3.3.6: informative for the acceptor, never answered.
        assoc.common_extended_negotiation[sub.sop_class_uid] = (
            sub.service_class_uid, tuple(sub.related_general_sop_class_uids))
    user_data.append(userdataitems.ImplementationVersionNameSubItem(version_name))
    if assoc.user_identity is not None and assoc.user_identity.positive_response_req:
        user_data.append(
            userdataitems.UserIdentityNegotiationSubItemAc(assoc.user_identity_response))
    items.append(pdu.UserInformationItem(user_data))
    return pdu.AAssociateAcPDU(rq.called_ae_title, rq.calling_ae_title, items)


def prepared_ac(assoc, rq: pdu.AAssociateRqPDU
                ) -> Tuple[pdu.AAssociateAcPDU, Optional[bytes]]:
    """``build_ac(assoc, rq)`` and, when the answer is one made before, its encoding.

    A peer associating again and again sends the same request and gets the same
    answer: while nothing the answer is made of changes (the request's titles,
    contexts and sub-items; the AE's classes, syntaxes and settings), the AC, its
    bytes and what it records in ``assoc`` are kept (at most ``_AC_CACHE_SIZE``).
    A request with sub-items that call the AE's hooks or carry an identity (role
    selection, extended negotiation, user identity), or an AE that chooses through
    methods of its own, is answered afresh, and its bytes are None.
    """
    key = _ac_key(assoc, rq)
    try:
        found = None if key is None else _AC_CACHE.get(key)
    except TypeError:                   # a value that is no plain value: made afresh
        key = None
    if key is None:
        return build_ac(assoc, rq), None
    if found is None:
        ac = build_ac(assoc, rq)
        found = (ac, ac.encode(), tuple(assoc.accepted_contexts.items()))
        if len(_AC_CACHE) >= _AC_CACHE_SIZE:
            _AC_CACHE.clear()
        _AC_CACHE[key] = found
        return ac, found[1]
    # What build_ac records in ``assoc``, as it records it.
    assoc.accepted_contexts.update(found[2])
    if key[1] is not None:
        assoc.peer_max_pdu_length = key[1]
    return found[0], found[1]


# Answers made before: key (``_ac_key``) -> (AC, its bytes, accepted contexts). The AC
# is only read (sent, logged, read by ``association_info``), so it is shared.
_AC_CACHE: Dict[tuple, tuple] = {}
_AC_CACHE_SIZE = 64

#: The AE methods ``build_ac`` chooses through; an AE whose class has other ones
#: (overrides) gets an answer made afresh for each request (``prepared_ac``).
AC_CHOICE_METHODS = ('acceptable_sop_classes', 'transfer_syntax_preference',
                     'transfer_syntaxes_for', '_explicit_preference',
                     'choose_transfer_syntax', 'with_settings')
# The sub-items of a request whose answer depends on nothing but their values.
_PLAIN_SUB_ITEMS = frozenset({
    userdataitems.MaximumLengthSubItem, userdataitems.ImplementationClassUIDSubItem,
    userdataitems.ImplementationVersionNameSubItem,
    userdataitems.AsynchronousOperationsWindowSubItem})


def _ac_key(assoc, rq: pdu.AAssociateRqPDU) -> Optional[tuple]:
    """Every value ``build_ac`` reads for ``rq``, or None when it would call a hook,
    answer an identity or choose through an AE method not marked as the library's
    (a key that cannot be hashed is refused where it is looked up)."""
    ae = assoc.ae
    cls = type(ae)
    own = getattr(ae, '__dict__', {})
    for name in AC_CHOICE_METHODS:
        # Overridden by the class, or set on the AE itself: its own way, every time.
        if name in own or not getattr(getattr(cls, name, None), 'plain_negotiation', False):
            return None
    if assoc.user_identity is not None or getattr(ae, 'ts_preferences', None):
        return None
    settings = assoc.settings
    preference = ae.transfer_syntax_preference()
    if settings.ts_preferences or settings.supported_ts != preference:
        return None                     # a peer's own syntaxes: with_settings' view
    max_length = None
    asynchronous = False
    info = rq.user_information
    for sub in (info.user_data if info else ()):
        kind = type(sub)
        if kind not in _PLAIN_SUB_ITEMS:
            return None
        if kind is userdataitems.MaximumLengthSubItem:
            max_length = sub.maximum_length_received
        elif kind is userdataitems.AsynchronousOperationsWindowSubItem:
            asynchronous = True
    store_in_file = ae.store_in_file
    contexts = []
    for item in rq.presentation_context_items:
        abstract = item.abs_sub_item
        sop_class = abstract.name if abstract else None
        contexts.append((item.context_id, sop_class,
                         tuple([ts.name for ts in item.ts_sub_items]),
                         sop_class in store_in_file))
    key = (rq.called_ae_title, max_length, rq.calling_ae_title, asynchronous,
           tuple(contexts), ae.acceptable_sop_classes(), preference,
           ae.prefer_proposed_ts_for_storage, settings.max_pdu_length,
           _implementation(assoc))
    return key


def _answer_roles(assoc, sub, retrieved: frozenset) -> Tuple[int, int]:
    """Our answer to one SCP/SCU Role Selection item (PS3.7 D.3.3.4): each role
    the requester proposed, kept only when this end can act opposite it, then as
    ``ae.on_role_selection`` decides; never a role it did not propose.

    The requester's SCU role needs us as SCP: a service we serve for the class.
    Its SCP role needs us as SCU: C-GET sub-operations (the class was accepted to
    carry them), an SCU service of the AE, or a service that sends on the
    association it serves (the storage commitment report, PS3.4 J.3.3.1.2)."""
    ae = assoc.ae
    sop_class = sub.sop_class_uid
    served = sop_class in ae.acceptable_sop_classes()
    sends = (sop_class in retrieved or sop_class in ae.supported_scu
             or sop_class in _SCP_SERVICES_THAT_SEND)
    scu = 1 if sub.scu_role and served else 0
    scp = 1 if sub.scp_role and sends else 0
    hook = getattr(ae, 'on_role_selection', None)
    if hook is not None:
        answer = hook(assoc, sop_class, scu, scp)
        if answer is not None:
            scu = 1 if answer[0] and sub.scu_role else 0
            scp = 1 if answer[1] and sub.scp_role else 0
    return scu, scp


def _retrieved_classes(ae, rq: pdu.AAssociateRqPDU, found=None) -> frozenset:
    """SOP classes accepted only to carry C-GET sub-operations (PS3.4 C.4.3.3): those
    the requester proposes taking the SCP role for, when it also proposes a C-GET
    class we serve. The AE need not list them (0.9.x AEs serving C-GET did not)."""
    served = ae.supported_scp
    if not any(uid in served for uid in GET_SOP_CLASSES):
        return frozenset()              # no C-GET served: nothing to carry
    proposed = {item.abs_sub_item.name for item in rq.presentation_context_items
                if item.abs_sub_item}
    if not proposed & GET_SOP_CLASSES & set(served):
        return frozenset()
    roles = (found or _SubItems(rq))(userdataitems.ScpScuRoleSelectionSubItem)
    return frozenset(sub.sop_class_uid for sub in roles if sub.scp_role)


def choose_context(assoc, item: pdu.PresentationContextItemRQ,
                   retrieved: frozenset = frozenset()) -> Tuple[int, Optional[str]]:
    """Result and transfer syntax for one proposed context (PS3.8 9.3.3.2), as the
    acceptor ``assoc``'s AE and settings choose."""
    return _Chooser(assoc, retrieved).choose(item)


class _Chooser:
    """What choosing every context of one A-ASSOCIATE-RQ reads from the AE, read once:
    the classes it accepts and the AE as the association's settings see it."""

    __slots__ = ('acceptable', 'retrieved', 'store_in_file', 'negotiator')

    def __init__(self, assoc, retrieved: frozenset) -> None:
        ae = assoc.ae
        self.acceptable = ae.acceptable_sop_classes()
        self.retrieved = retrieved
        self.store_in_file = ae.store_in_file
        # Per-peer transfer syntaxes, when the settings have their own (PS3.8 9.3.3.2).
        with_settings = getattr(ae, 'with_settings', None)
        self.negotiator = ae if with_settings is None else with_settings(assoc.settings)

    def choose(self, item: pdu.PresentationContextItemRQ) -> Tuple[int, Optional[str]]:
        sop_class = item.abs_sub_item.name if item.abs_sub_item else None
        retrieved = self.retrieved
        if sop_class not in self.acceptable and sop_class not in retrieved:
            return ABSTRACT_SYNTAX_NOT_SUPPORTED, None
        proposed = [ts.name for ts in item.ts_sub_items]
        # Data sets kept as they arrive: the AE may take the requester's first choice.
        storage = (sop_class in retrieved or sop_class in STORAGE_SOP_CLASSES
                   or sop_class in self.store_in_file)
        ts = self.negotiator.choose_transfer_syntax(sop_class, proposed, storage)
        if ts is None:
            return TRANSFER_SYNTAXES_NOT_SUPPORTED, None
        return ACCEPTANCE, ts


# -- both ends -------------------------------------------------------------------------

def _implementation_items(assoc_pdu) -> tuple:
    """The first Implementation Class UID and Version Name sub-items of a PDU (or None)."""
    uid_item = name_item = None
    for sub in _user_data(assoc_pdu):
        if uid_item is None and isinstance(sub, userdataitems.ImplementationClassUIDSubItem):
            uid_item = sub
        elif name_item is None and isinstance(
                sub, userdataitems.ImplementationVersionNameSubItem):
            name_item = sub
    return uid_item, name_item


# The empty read-only mapping every association without roles or extended
# negotiation shares (nothing can reach the dict behind it).
_NOTHING = MappingProxyType({})


def association_info(assoc, rq: pdu.AAssociateRqPDU, ac: pdu.AAssociateAcPDU,
                     requestor: bool) -> association_context.AssociationInfo:
    """The ``AssociationInfo`` of ``assoc``, just established by ``rq`` and ``ac``
    (``requestor``: this end sent ``rq``): what was negotiated, with the peer's
    address and TLS certificate read from the association's socket."""
    sock = assoc.dul.sock if assoc.dul is not None else None
    # The acceptor knows its peer from the accepted connection: no system call.
    # The requester knows it too when it connected to an IPv4 address (the DUL's).
    address, port = (getattr(assoc, '_peer_endpoint', None)
                     or getattr(assoc.dul, 'peer_endpoint', None) or (None, None))
    if address is None:
        try:
            address, port = sock.getpeername()[:2]
            address = plain_address(address)
        except (AttributeError, OSError, TypeError, ValueError):
            if requestor:
                address, port = assoc.remote_ae.address, assoc.remote_ae.port
    cert = der = None
    # A plain socket has no certificate (the look-up of a missing attribute costs).
    if type(sock) is not socket.socket and hasattr(sock, 'getpeercert'):
        try:
            der = sock.getpeercert(binary_form=True)
            if der is not None:
                cert = sock.getpeercert()
        except (OSError, ValueError):
            cert = der = None
    identity = assoc.remote_ae.user_identity() if requestor else assoc.user_identity
    # The first identity answer and implementation items count, the last of a
    # class's answers; the peer's implementation is in the PDU it sent.
    answer = None
    extended = {}
    for sub in _user_data(ac):
        if type(sub) in _PLAIN_SUB_ITEMS:
            continue                    # most of an AC: nothing to read here
        if isinstance(sub, userdataitems.UserIdentityNegotiationSubItemAc):
            if answer is None:
                answer = sub
        elif isinstance(sub, userdataitems.SOPClassExtendedNegotiationSubItem):
            extended[sub.sop_class_uid] = bytes(sub.app_info)
    common = {}
    for sub in _user_data(rq):
        if type(sub) not in _PLAIN_SUB_ITEMS and isinstance(
                sub, userdataitems.SOPClassCommonExtendedNegotiationSubItem):
            common[sub.sop_class_uid] = (sub.service_class_uid,
                                         tuple(sub.related_general_sop_class_uids))
    uid_item, name_item = _implementation_items(ac if requestor else rq)
    contexts = assoc.accepted_contexts
    roles = assoc.roles
    # Read-only views of dicts made here (AssociationInfo would copy a dict again).
    return association_context.AssociationInfo(
        calling_ae_title=str(rq.calling_ae_title).strip(),
        called_ae_title=str(rq.called_ae_title).strip(),
        is_requestor=requestor, peer_address=address, peer_port=port,
        presentation_contexts=tuple([contexts[pc_id] for pc_id in sorted(contexts)]),
        roles=MappingProxyType(dict(roles)) if roles else _NOTHING,
        extended_negotiation=MappingProxyType(extended) if extended else _NOTHING,
        common_extended_negotiation=MappingProxyType(common) if common else _NOTHING,
        user_identity=association_context.UserIdentity.from_sub_item(identity),
        user_identity_response=answer.server_response if answer is not None else None,
        peer_max_pdu_length=assoc.peer_max_pdu_length,
        peer_implementation_class_uid=(
            uid_item.implementation_class_uid if uid_item is not None else None),
        peer_implementation_version_name=(
            name_item.implementation_version_name if name_item is not None else None),
        peer_certificate=cert, peer_certificate_der=der, settings=assoc.settings)


__all__ = [
    'APPLICATION_CONTEXT_NAME', 'IMPLEMENTATION_UID', 'IMPLEMENTATION_VERSION_NAME',
    'MAX_PRESENTATION_CONTEXTS', 'GET_SOP_CLASSES', 'STORAGE_SOP_CLASSES',
    'PContextDefList', 'RemoteAEConfig', 'sub_items', 'build_pres_context_def_list', 'syntax_groups',
    'number_contexts', 'role_selection_items', 'build_rq', 'read_ac', 'build_ac', 'choose_context',
    'association_info',
]
