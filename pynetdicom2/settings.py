"""Per-association settings: the timeouts, limits and rules one association runs by.

An association captures an ``AssociationSettings`` once, when it starts, from its AE
(``AEBase.settings_for``: the AE's attributes with the overrides for that peer), and
reads only it while it runs. Changing the AE afterwards changes the associations that
start afterwards, never one that is running; two associations at once never see each
other's values. ``PeerSettings`` is one override rule: a peer by AE title or network.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
from dataclasses import dataclass
from typing import Any, FrozenSet, Mapping, Optional, Tuple

@dataclass(frozen=True)
class AssociationSettings:
    """What one association runs by, fixed for its life.

    Timeouts are in seconds; None in ``connect_timeout``, ``acse_timeout`` or
    ``network_timeout`` means ``dcm_timeout``'s value, as 0.9.8 used it for every wait.

    - ``dcm_timeout``: each wait for a PDU while a DIMSE exchange is under way (a
      response, the next fragment, the release answer) and each send.
    - ``connect_timeout``: the TCP connection (and TLS handshake) of a request.
    - ``acse_timeout``: the requester's wait for A-ASSOCIATE-AC/RJ, and the sending
      of the A-ASSOCIATE PDUs.
    - ``artim_timeout``: the ARTIM timer (PS3.8 9.1.5): the acceptor's wait for the
      A-ASSOCIATE-RQ and the wait for the connection to close after A-RELEASE-RP or
      A-ABORT.
    - ``network_timeout``: how long an accepted association may stay idle between
      the peer's requests before it is aborted (``DCMTimeoutError``).
    - ``max_pdu_length``: the Maximum Length Received we offer (0: unlimited).
    - ``supported_ts`` (most preferred first), ``ts_preferences``: the transfer
      syntaxes and the per-class preferences the association negotiates with: what
      an acceptor accepts and how it chooses, the per-class syntaxes a requester
      proposes (its other contexts keep the AE's ``context_def_list``).
    - ``allowed_calling_aets``, ``allowed_called_aets``: access rules of an acceptor
      (None: any title).
    - ``allowed_networks``, ``denied_networks``: access rules of an acceptor by the
      peer's IP address: networks or addresses, IPv4 or IPv6 (``'10.1.0.0/16'``,
      ``'::1'``); an IPv4-mapped IPv6 peer (``::ffff:a.b.c.d``) matches IPv4
      networks. A peer in a denied network, or outside every allowed one when
      ``allowed_networks`` is not None, is rejected (1, 1, 1). None/empty: no rule.
    - ``max_memory_data_set``, ``max_memory_store``, ``decompress_lossy``: as the AE
      attributes of those names.
    """

    dcm_timeout: Optional[float] = 15
    connect_timeout: Optional[float] = None
    acse_timeout: Optional[float] = None
    artim_timeout: Optional[float] = 10
    network_timeout: Optional[float] = None
    max_pdu_length: int = 65536
    supported_ts: Tuple[str, ...] = ()
    ts_preferences: Mapping[Any, Tuple[str, ...]] = dataclasses.field(
        default_factory=dict, hash=False, compare=False)
    allowed_calling_aets: Optional[FrozenSet[str]] = None
    allowed_called_aets: Optional[FrozenSet[str]] = None
    allowed_networks: Optional[FrozenSet[str]] = None
    denied_networks: FrozenSet[str] = frozenset()
    max_memory_data_set: Optional[int] = 16 * 1024 * 1024
    max_memory_store: Optional[int] = 1024 * 1024 * 1024
    decompress_lossy: bool = True

    @property
    def connect_wait(self) -> Optional[float]:
        """The TCP connect (and TLS handshake) timeout in effect."""
        return self.dcm_timeout if self.connect_timeout is None else self.connect_timeout

    @property
    def acse_wait(self) -> Optional[float]:
        """The A-ASSOCIATE exchange timeout in effect."""
        return self.dcm_timeout if self.acse_timeout is None else self.acse_timeout

    @property
    def idle_wait(self) -> Optional[float]:
        """The idle timeout between an acceptor's requests in effect."""
        return self.dcm_timeout if self.network_timeout is None else self.network_timeout

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> 'AssociationSettings':
        """Settings from ``values`` (names as the fields), normalised: the sets become
        frozensets and ``ts_preferences`` a read-only copy."""
        values = dict(values)
        if values.get('supported_ts') is not None:
            values['supported_ts'] = tuple(dict.fromkeys(values['supported_ts']))
        for name in ('allowed_calling_aets', 'allowed_called_aets'):
            if values.get(name) is not None:
                values[name] = frozenset(values[name])
        for name in ('allowed_networks', 'denied_networks'):
            if values.get(name) is not None:
                values[name] = networks(values[name])
        if values.get('denied_networks') is None:
            values.pop('denied_networks', None)
        if values.get('ts_preferences') is not None:
            values['ts_preferences'] = types.MappingProxyType(
                {key: tuple(value) for key, value in dict(values['ts_preferences']).items()})
        return cls(**values)

    def address_allowed(self, peer_address: Optional[str]) -> bool:
        """Whether ``peer_address`` passes ``denied_networks`` and ``allowed_networks``
        (a peer with no IP address passes only when neither is set)."""
        if any(_in_network(peer_address, net) for net in self.denied_networks):
            return False
        if self.allowed_networks is None:
            return True
        return any(_in_network(peer_address, net) for net in self.allowed_networks)

    def replace(self, **changes) -> 'AssociationSettings':
        """A copy with ``changes`` (unknown names raise ``TypeError``)."""
        check_names(changes)
        return type(self).from_values({**self.as_dict(), **changes})

    def __reduce__(self):
        # A mappingproxy does not pickle: ``ts_preferences`` travels as a dict.
        values = self.as_dict()
        values['ts_preferences'] = dict(self.ts_preferences)
        return (type(self).from_values, (values,))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The names of the settings: the AE attributes an association's settings copy.
SETTING_NAMES: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AssociationSettings))


def check_names(overrides: Mapping[str, Any]) -> None:
    """``TypeError`` naming the first key of ``overrides`` that is not a setting."""
    for name in overrides:
        if name not in SETTING_NAMES:
            raise TypeError(f'{name!r} is not an association setting; the settings are '
                            f'{", ".join(SETTING_NAMES)}')


@dataclass(frozen=True)
class PeerSettings:
    """Overrides for the peers it matches: by AE title (the peer's: calling AE title
    of an incoming association, called AE title of ours), by address or network
    (``'10.0.0.7'``, ``'10.1.0.0/16'``, ``'::1'``), or both (both must match)."""

    overrides: Mapping[str, Any]
    ae_title: Optional[str] = None
    address: Optional[str] = None

    def __post_init__(self) -> None:
        if self.ae_title is None and self.address is None:
            raise TypeError('peer settings need an ae_title, an address or both')
        check_names(self.overrides)
        if self.address is not None:
            ipaddress.ip_network(self.address, strict=False)   # a typo fails here

    def matches(self, peer_address: Optional[str], ae_title: Optional[str]) -> bool:
        if self.ae_title is not None:
            if ae_title is None or ae_title.strip() != self.ae_title.strip():
                return False
        if self.address is not None:
            return _in_network(peer_address, self.address)
        return True


def networks(values) -> FrozenSet[str]:
    """``values`` (one string or several) as a frozenset of networks in canonical
    form (``'10.1.2.3/16'`` -> ``'10.1.0.0/16'``); a bad one raises ``ValueError``."""
    if isinstance(values, str):
        values = [values]
    return frozenset(str(ipaddress.ip_network(str(value).strip(), strict=False))
                     for value in values)


def plain_address(address):
    """A peer address as users expect to read it: an IPv4-mapped IPv6 address
    (``::ffff:127.0.0.1``, what a dual-stack socket reports for an IPv4 peer) as
    plain IPv4; anything else unchanged."""
    if not isinstance(address, str) or not address.lower().startswith('::ffff:'):
        return address
    try:
        mapped = ipaddress.IPv6Address(address).ipv4_mapped
    except ValueError:
        return address
    return str(mapped) if mapped is not None else address


def _in_network(address: Optional[str], network: str) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split('%')[0])
    except ValueError:
        return False                            # not an IP address: no network holds it
    net = ipaddress.ip_network(network, strict=False) if isinstance(network, str) else network
    if ip.version != net.version and getattr(ip, 'ipv4_mapped', None) is not None:
        ip = ip.ipv4_mapped                     # ::ffff:a.b.c.d from a dual-stack bind
    return ip.version == net.version and ip in net


__all__ = ['AssociationSettings', 'PeerSettings', 'SETTING_NAMES', 'check_names', 'networks',
           'plain_address']
