"""The command line the tools share: value types for their flags (AE titles, ports,
timeouts, PDU lengths, networks), a DCMTK-style parser that names an unknown option with
the nearest known one, and the flag groups every SCU or SCP tool offers.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import re
import sys
from typing import Iterable, List, Optional, Sequence

from pynetdicom2._version import __version__
from pynetdicom2.apps.exits import EXIT_USAGE, ToolError
from pynetdicom2.apps.verbosity import LOG_LEVELS

#: AE titles are at most 16 characters of the default repertoire (PS3.5 6.2, AE).
MAX_AE_TITLE = 16


# -- argument types ------------------------------------------------------------------

def ae_title(value: str) -> str:
    """An AE title from the command line: 1-16 printable characters, no backslash."""
    stripped = value.strip()
    if not stripped or len(stripped) > MAX_AE_TITLE or '\\' in stripped or not all(
            32 <= ord(c) < 127 for c in stripped):
        raise argparse.ArgumentTypeError(
            f'{value!r} is not an AE title (1 to {MAX_AE_TITLE} printable ASCII characters, '
            'no backslash)')
    return stripped


def network(value: str) -> str:
    """An IPv4 or IPv6 network or address (``10.1.0.0/16``, ``::1``), canonical."""
    try:
        return str(ipaddress.ip_network(value.strip().strip('[]'), strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{value!r} is not an IP address or network (10.1.0.0/16, ::1)') from None


def _number(value: str, kind, what: str):
    """``kind(value)`` (``int`` or ``float``), or a usage error saying ``value`` is
    not ``what``."""
    try:
        return kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not {what}') from None


def port_number(value: str) -> int:
    """A TCP port, 0 (any free port, for listeners) to 65535."""
    port = _number(value, int, 'a port number')
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f'port {port} is not within 0..65535')
    return port


def seconds(value: str) -> float:
    """A timeout in seconds, greater than zero."""
    number = _number(value, float, 'a number of seconds')
    if not number > 0:
        raise argparse.ArgumentTypeError(f'a timeout must be above 0 s, not {value}')
    return number


def pdu_length(value: str) -> int:
    """The Maximum Length Received we offer: 4096 .. 2^32-1 bytes, or 0 (unlimited)."""
    length = _number(value, int, 'a number of bytes')
    if length != 0 and not 4096 <= length <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(
            f'max PDU length {length} is not 0 (unlimited) or within 4096..4294967295')
    return length


def counted(value: str, what: str, minimum: int, advice: str) -> int:
    """A whole number of ``what``, at least ``minimum`` (``advice`` says so)."""
    count = _number(value, int, what)
    if count < minimum:
        raise argparse.ArgumentTypeError(f'{count}{advice}')
    return count


def association_count(value: str) -> int:
    """A number of simultaneous associations: 0 (no limit) or more."""
    return counted(value, 'a number of associations', 0,
                   ' associations: give 0 (no limit) or more')


def positive_count(value: str) -> int:
    """A number of times or of responses: 1 or more."""
    return counted(value, 'a whole number', 1, ': give 1 or more')


def send_pdu_length(value: str) -> int:
    """``--max-send-pdu``: 4096 .. 2^32-1 bytes (the smallest PDU DCMTK sends)."""
    length = pdu_length(value)
    if length == 0:
        raise argparse.ArgumentTypeError('give the largest PDU to send, 4096 or more')
    return length


def host_port(value: str):
    """``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) as ``(host, port)``."""
    host, sep, port = value.rpartition(':')
    if not sep or not host:
        raise argparse.ArgumentTypeError(f'{value!r} is not HOST:PORT')
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    return host, port_number(port)


# -- parsers -------------------------------------------------------------------------

_NEGATIVE_NUMBER = re.compile(r'^-\d+$|^-\d*\.\d+$')


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """"; did you mean X?" (or "X or Y" when they are as close) for a typo, else ""."""
    scored = sorted((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in set(choices))
    scored = [(score, c) for score, c in scored if score >= 0.7]
    if not scored:
        return ''
    best = scored[-1][0]
    close = sorted(c for score, c in scored if score == best)[:3]
    return f'; did you mean {" or ".join(close)}?'


class ToolParser(argparse.ArgumentParser):
    """argparse as the tools want it: an option it does not know is named as unknown,
    with the nearest known one, before anything else is judged (argparse would first
    complain about the positional arguments it shifted: ``-aex TITLE host port`` made
    "host" the port); every error is one line, exit code 2 (``EXIT_USAGE``)."""

    def parse_known_args(self, args: Optional[Sequence[str]] = None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        for token in self.unknown_options(args):
            name = token.split('=', 1)[0]
            known = self._option_string_actions
            self.error(f'unknown option {name!r}' + did_you_mean(name, known))
        return super().parse_known_args(args, namespace)

    def unknown_options(self, args: Sequence[str]) -> List[str]:
        """The tokens of ``args`` that look like options but name none of ours.

        The tests follow argparse's own (``_parse_optional``): ``--`` ends the options,
        ``-`` and negative numbers are values, ``--opt=value`` and ``-kvalue`` name
        ``--opt`` and ``-k``, flags may be joined (``-vd``); a token with a space is a
        value. ``+rn`` is not ``+r`` followed by a stray "n": it is unknown.
        """
        found = []
        for token in args:
            if token == '--':
                break
            if (len(token) < 2 or token[0] not in self.prefix_chars or ' ' in token
                    or _NEGATIVE_NUMBER.match(token) or self._names_option(token)):
                continue
            found.append(token)
        return found

    def _names_option(self, token: str) -> bool:
        known = self._option_string_actions
        if token in known or token.split('=', 1)[0] in known:
            return True
        if token[1] in self.prefix_chars:
            return False  # a long option is only ever whole
        # Joined one-letter options: every letter a flag, except that the last one
        # named may take the rest of the token as its value.
        prefix, rest = token[0], token[1:]
        while rest:
            action = known.get(prefix + rest[0])
            if action is None:
                return False
            if action.nargs != 0:
                return True
            rest = rest[1:]
        return True

    def error(self, message: str):
        if message.startswith(('the following arguments are required',
                               'unrecognized arguments')):
            message += f' (usage: {self.synopsis()})'
        self.exit(EXIT_USAGE, f'{self.prog}: error: {message}\n')

    def synopsis(self) -> str:
        """``prog [options] peer port file-or-dir [file-or-dir ...]``."""
        words = [self.prog, '[options]']
        for action in self._get_positional_actions():
            name = action.metavar or action.dest
            words.append({'?': f'[{name}]', '*': f'[{name} ...]',
                          '+': f'{name} [{name} ...]'}.get(action.nargs, name))
        return ' '.join(words)


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser taking DCMTK's single-dash long flags and ``+`` flags (``-aet``, ``+tls``)."""
    parser = ToolParser(prog=prog, description=description, prefix_chars='-+',
                        allow_abbrev=False)
    parser.add_argument('--version', action='version', version=f'pynetdicom2 {__version__}')
    group = parser.add_argument_group('output')
    group.add_argument('-q', '--quiet', action='store_true', help='print errors only')
    group.add_argument('-v', '--verbose', action='store_true',
                       help='print processing details')
    group.add_argument('-d', '--debug', action='store_true',
                       help='print debug information (the PDUs and messages exchanged)')
    group.add_argument('-ll', '--log-level', choices=list(LOG_LEVELS), metavar='LEVEL',
                       help='print messages of this level and above: fatal, error, warn, '
                       'info (as -v), debug (as -d) or trace')
    return parser


def add_peer_arguments(parser: argparse.ArgumentParser, calling: str) -> None:
    """``peer port``, ``-aet``, ``-aec`` and user identity, for the SCU tools."""
    parser.add_argument('peer', help='host name or address of the DICOM peer (IPv6 as '
                        '::1 or [::1])')
    parser.add_argument('port', type=port_number, help='TCP port of the peer')
    group = parser.add_argument_group('application entity titles')
    group.add_argument('-aet', '--aetitle', dest='calling_aet', type=ae_title, default=calling,
                       metavar='AET', help=f'our (calling) AE title (default: {calling})')
    group.add_argument('-aec', '--call', dest='called_aet', type=ae_title, default='ANY-SCP',
                       metavar='AET', help='called AE title of the peer (default: ANY-SCP)')
    group = parser.add_argument_group('user identity (PS3.7 D.3.3.7)')
    group.add_argument('-usr', '--user', dest='username', metavar='NAME',
                       help='user name to present to the peer')
    group.add_argument('-pwd', '--password', dest='password', metavar='PASSWORD',
                       help='password (with -usr)')
    group.add_argument('-kt', '--kerberos', metavar='FILE',
                       help='present the Kerberos ticket in FILE (identity type 3)')
    group.add_argument('--saml', metavar='FILE',
                       help='present the SAML assertion in FILE (identity type 4)')
    group.add_argument('--jwt', metavar='FILE',
                       help='present the JSON web token in FILE (identity type 5)')
    group.add_argument('-rsp', '--pos-response', dest='pos_response', action='store_true',
                       help='ask the peer to confirm the user identity, and stop when it '
                       'does not')


def add_association_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--repeat N`` (each ``what`` N times, on the same association) and ``--abort``."""
    group = parser.add_argument_group('association')
    group.add_argument('--repeat', type=positive_count, default=1, metavar='N',
                       help=f'{what} N times over the same association (default: 1)')
    group.add_argument('--abort', action='store_true',
                       help='end with A-ABORT instead of releasing the association')


def add_network_arguments(parser: argparse.ArgumentParser, server: bool = False,
                          max_send_pdu: bool = False) -> None:
    """Timeouts and the maximum PDU length; the connect timeout only for clients;
    ``--max-send-pdu`` when asked."""
    group = parser.add_argument_group('network')
    if not server:
        group.add_argument('-to', '--timeout', dest='connect_timeout', type=seconds,
                           default=15.0, metavar='S',
                           help='timeout for the TCP connection (default: 15)')
    group.add_argument('-ta', '--acse-timeout', dest='acse_timeout', type=seconds,
                       default=30.0, metavar='S',
                       help='timeout for association messages (default: 30)')
    group.add_argument('-td', '--dimse-timeout', dest='dimse_timeout', type=seconds,
                       default=60.0, metavar='S',
                       help='timeout for DIMSE messages (default: 60)')
    group.add_argument('-pdu', '--max-pdu', dest='max_pdu', type=pdu_length, default=65536,
                       metavar='N', help='maximum PDU length we receive, 0 for unlimited '
                       '(default: 65536)')
    if max_send_pdu:
        group.add_argument('--max-send-pdu', type=send_pdu_length, metavar='N',
                           help='send P-DATA-TF PDUs of at most N bytes, even when the peer '
                           'takes larger ones')


def add_server_arguments(parser: argparse.ArgumentParser, aet: str,
                         default_port: int = 11112, max_associations: int = 0) -> None:
    """``port``/``--port``, ``--bind``, ``-aet``, access control and the association
    limit (``max_associations``, 0 for none: each tool picks its own), for the SCP
    tools."""
    parser.add_argument('port', nargs='?', type=port_number, default=None,
                        help=f'TCP port to listen on (default: {default_port}; 0 picks '
                        'a free one)')
    parser.add_argument('--port', '-p', dest='port_option', type=port_number, metavar='PORT',
                        help='the same as the positional port')
    parser.set_defaults(default_port=default_port)
    parser.add_argument('--bind', default='', metavar='ADDRESS',
                        help='listen on this address only (default: every interface, '
                        'IPv6 and IPv4 where the system allows it)')
    group = parser.add_argument_group('application entity')
    group.add_argument('-aet', '--aetitle', dest='aet', type=ae_title, default=aet,
                       metavar='AET', help=f'our AE title (default: {aet})')
    group.add_argument('--require-called-aet', action='store_true',
                       help='reject associations not addressed to our AE title')
    group.add_argument('--allow-calling', action='append', type=ae_title, metavar='AET',
                       help='accept only these calling AE titles; repeatable')
    group.add_argument('--allow-network', action='append', type=network, metavar='CIDR',
                       help='accept only peers in this network or at this address, IPv4 '
                       'or IPv6 (10.1.0.0/16, ::1); others are rejected (1, 1, 1); '
                       'repeatable')
    group.add_argument('--deny-network', action='append', type=network, metavar='CIDR',
                       help='reject (1, 1, 1) peers in this network or at this address, '
                       'even when --allow-network lets them in; repeatable')
    group.add_argument('--max-associations', type=association_count, default=max_associations,
                       metavar='N', help='associations served at once, 0 for no limit; one '
                       'more is rejected (2, 3, 2: try again later); connections yet to send '
                       f'their request do not count (default: {max_associations or "no limit"})')


def listen_port(args: argparse.Namespace) -> int:
    if args.port is not None and args.port_option is not None and args.port != args.port_option:
        raise ToolError(f'two different ports given: {args.port} and {args.port_option}',
                        EXIT_USAGE)
    for port in (args.port_option, args.port):
        if port is not None:
            return port
    return args.default_port
