"""What a handler knows about its association: ``AssociationInfo`` (who, from where,
what was negotiated, who the user is, the TLS certificate) and ``HandlerContext``, the
presentation context every ``on_*`` hook receives, carrying that information.

Both are immutable and built once when the association is established (PS3.8 7.1);
``HandlerContext`` is a ``PContextDef``, so a hook written for 0.9.8 reads
``context.supported_ts`` and unpacks ``id, sop_class, ts = context`` as before.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional, Tuple, Union

from pynetdicom2.fsm import PContextDef


@dataclass(frozen=True)
class UserIdentity:
    """The user identity the requester presented (PS3.7 D.3.3.7.1).

    ``user_identity_type``: 1 username, 2 username and passcode, 3 Kerberos ticket,
    4 SAML assertion, 5 JSON web token; ``primary_field`` the user name (or the
    ticket, assertion or token); ``secondary_field`` the passcode of type 2 (left
    out of ``repr``).
    """
    user_identity_type: int
    primary_field: Union[str, bytes]
    secondary_field: Union[str, bytes] = field(default='', repr=False)
    positive_response_requested: bool = False

    @classmethod
    def from_sub_item(cls, item) -> Optional['UserIdentity']:
        """From a ``UserIdentityNegotiationSubItem`` (or None)."""
        if item is None:
            return None
        return cls(item.user_identity_type, item.primary_field, item.secondary_field,
                   bool(item.positive_response_req))


@dataclass(frozen=True)
class AssociationInfo:
    """One established association, seen from this end. Immutable.

    - ``calling_ae_title``, ``called_ae_title``: the titles of the A-ASSOCIATE-RQ,
      stripped (the requester's and the acceptor's, whichever end we are).
    - ``is_requestor``: True when this end requested the association.
    - ``peer_address``, ``peer_port``: the other end of the TCP connection.
    - ``presentation_contexts``: the accepted contexts (``PContextDef`` with the
      accepted transfer syntax as ``supported_ts``), by ID order.
    - ``roles``: SOP class UID -> ``(scu_role, scp_role)`` as negotiated by SCP/SCU
      role selection (PS3.7 D.3.3.4); classes without role selection are absent.
    - ``extended_negotiation``: SOP class UID -> the service-class application
      information the acceptor answered by SOP Class Extended Negotiation (PS3.7
      D.3.3.5), sent (acceptor) or received (requester); e.g. for Q/R FIND byte 0 is
      relational queries (PS3.4 C.3.1). Classes not answered are absent.
    - ``common_extended_negotiation``: SOP class UID -> ``(service_class_uid,
      related_general_sop_class_uids)`` the requester proposed by SOP Class Common
      Extended Negotiation (PS3.7 D.3.3.6).
    - ``user_identity``: the ``UserIdentity`` the requester presented, or None.
    - ``user_identity_response``: the server response of the A-ASSOCIATE-AC (PS3.7
      D.3.3.7.2) sent (acceptor) or received (requester), or None when there was none.
    - ``peer_max_pdu_length``: the peer's Maximum Length Received (0: unlimited);
      ``peer_implementation_class_uid``, ``peer_implementation_version_name``.
    - ``peer_certificate``: with TLS, the peer's certificate as
      ``ssl.SSLSocket.getpeercert()`` gives it (a dict, empty when it was not
      verified), and ``peer_certificate_der`` its DER bytes; None without TLS or
      when the peer sent none.
    - ``settings``: the ``AssociationSettings`` the association runs by (timeouts,
      maximum PDU, access rules, ...), as captured when it started.
    """
    calling_ae_title: str
    called_ae_title: str
    is_requestor: bool
    peer_address: Optional[str] = None
    peer_port: Optional[int] = None
    presentation_contexts: Tuple[PContextDef, ...] = ()
    roles: Mapping[str, Tuple[int, int]] = field(
        default_factory=lambda: types.MappingProxyType({}), hash=False, compare=False)
    extended_negotiation: Mapping[str, bytes] = field(
        default_factory=lambda: types.MappingProxyType({}), hash=False, compare=False)
    common_extended_negotiation: Mapping[str, Tuple[str, Tuple[str, ...]]] = field(
        default_factory=lambda: types.MappingProxyType({}), hash=False, compare=False)
    user_identity: Optional[UserIdentity] = None
    user_identity_response: Optional[Union[str, bytes]] = None
    peer_max_pdu_length: int = 0
    peer_implementation_class_uid: Optional[str] = None
    peer_implementation_version_name: Optional[str] = None
    peer_certificate: Optional[Mapping[str, Any]] = field(
        default=None, hash=False, compare=False, repr=False)
    peer_certificate_der: Optional[bytes] = field(default=None, repr=False)
    settings: Optional[Any] = field(default=None, hash=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Frozen means frozen: a dict given for a mapping becomes a read-only view.
        for name in _MAPPINGS:
            value = getattr(self, name)
            if not isinstance(value, types.MappingProxyType):
                object.__setattr__(self, name, types.MappingProxyType(dict(value)))

    def __reduce__(self):
        # A mappingproxy does not pickle: the mappings travel as dicts.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _MAPPINGS:
            values[name] = dict(values[name])
        return (_rebuild_info, (values,))

    @property
    def peer_ae_title(self) -> str:
        """The other end's AE title (the called title when we requested)."""
        return self.called_ae_title if self.is_requestor else self.calling_ae_title

    @property
    def local_ae_title(self) -> str:
        """Our AE title in this association."""
        return self.calling_ae_title if self.is_requestor else self.called_ae_title


_MAPPINGS = ('roles', 'extended_negotiation', 'common_extended_negotiation')


def _rebuild_info(values: dict) -> AssociationInfo:
    return AssociationInfo(**values)


class HandlerContext(PContextDef):
    """The presentation context a hook receives, with its association.

    A ``PContextDef`` (``id``, ``sop_class``, ``supported_ts``: the accepted
    transfer syntax), equal to the plain one and unpacked the same way, plus:

    - ``association``: the ``AssociationInfo`` of the association the message came on;
    - ``move_originator_aet``, ``move_originator_message_id``: for a C-STORE that is
      a C-MOVE sub-operation, the Move Originator AE title and Message ID of the
      request (PS3.7 9.1.1.1); None otherwise.

    Immutable, like the tuple it is.
    """
    # A tuple subclass cannot have non-empty __slots__; the extra values live in
    # the instance dict, and __setattr__ refuses to change them.

    def __new__(cls, base: PContextDef, association: Optional[AssociationInfo] = None,
                move_originator_aet: Optional[str] = None,
                move_originator_message_id: Optional[int] = None) -> 'HandlerContext':
        self = super().__new__(cls, *base)
        set_value = object.__setattr__
        set_value(self, 'association', association)
        set_value(self, 'move_originator_aet', move_originator_aet)
        set_value(self, 'move_originator_message_id', move_originator_message_id)
        return self

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f'HandlerContext is immutable: cannot set {name!r}')

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f'HandlerContext is immutable: cannot delete {name!r}')

    def __reduce__(self):
        return (HandlerContext, (PContextDef(*self), self.association,
                                 self.move_originator_aet, self.move_originator_message_id))

    def __copy__(self) -> 'HandlerContext':
        return self

    def __deepcopy__(self, memo) -> 'HandlerContext':
        return self

    def _replace(self, **changes) -> 'HandlerContext':
        return HandlerContext(PContextDef(*self)._replace(**changes), self.association,
                              self.move_originator_aet, self.move_originator_message_id)

    def for_message(self, msg) -> 'HandlerContext':
        """This context for one request: a C-STORE-RQ's Move Originator fields added
        (``self`` when it has none)."""
        aet = getattr(msg, 'move_originator_aet', None)
        message_id = getattr(msg, 'move_originator_message_id', None)
        if aet is None and message_id is None:
            return self
        if isinstance(aet, bytes):
            aet = aet.decode('ascii', 'replace')
        if isinstance(aet, str):
            aet = aet.strip(' \0') or None
        return HandlerContext(PContextDef(*self), self.association, aet,
                              None if message_id is None else int(message_id))


def for_message(context: PContextDef, msg) -> PContextDef:
    """The context a hook gets for ``msg``: ``context`` with a C-STORE-RQ's Move
    Originator fields when it has them (a plain ``PContextDef`` becomes a
    ``HandlerContext`` without association then)."""
    if not isinstance(context, HandlerContext):
        if getattr(msg, 'move_originator_aet', None) is None:
            return context
        context = HandlerContext(context)
    return context.for_message(msg)


def with_association(context: PContextDef, association: Optional[AssociationInfo]
                     ) -> HandlerContext:
    """``context`` as a ``HandlerContext`` of ``association``."""
    return HandlerContext(PContextDef(*context), association)


__all__ = ['AssociationInfo', 'HandlerContext', 'UserIdentity', 'for_message',
           'with_association']
