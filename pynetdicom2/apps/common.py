"""What every command-line tool shares: DCMTK-style flags, logging, exit codes, the
association set-up (timeouts by phase, TLS, user identity), error messages in words
and the progress bar.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import ipaddress
import logging
import os
import re
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from typing import Callable, Iterable, List, Optional, Sequence, TextIO

from pydicom.uid import UID

from pynetdicom2 import tls, userdataitems
from pynetdicom2._version import __version__
from pynetdicom2.asceprovider import RemoteAEConfig
from pynetdicom2.ssl_ae import TLSSockets
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, AssociationReleasedError,
    ClassNotSupportedError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError,
    PDUProcessingError)

logger = logging.getLogger(__name__)

# -- exit codes ----------------------------------------------------------------------

EXIT_OK = 0            #: the job was done
EXIT_FAILURE = 1       #: a DICOM operation failed (a failure status, instances not stored)
EXIT_USAGE = 2         #: the command line is wrong (argparse's own code)
EXIT_REJECTED = 3      #: the peer rejected the association (A-ASSOCIATE-RJ)
EXIT_ABORTED = 4       #: the association was aborted or released early, or broke the protocol
EXIT_TIMEOUT = 5       #: a wait timed out (connect -to, association -ta, DIMSE -td)
EXIT_CONNECT = 6       #: no connection: refused, unreachable, TLS handshake failed
EXIT_LOCAL = 7         #: this machine stops us: a directory we cannot use, a port we cannot
#:                        listen on
EXIT_INTERRUPTED = 130  #: stopped by Ctrl-C

#: AE titles are at most 16 characters of the default repertoire (PS3.5 6.2, AE).
MAX_AE_TITLE = 16


class ToolError(Exception):
    """A failure the tool reports in one line and turns into an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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


def port_number(value: str) -> int:
    """A TCP port, 0 (any free port, for listeners) to 65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not a port number') from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f'port {port} is not within 0..65535')
    return port


def seconds(value: str) -> float:
    """A timeout in seconds, greater than zero."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not a number of seconds') from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f'a timeout must be above 0 s, not {value}')
    return number


def pdu_length(value: str) -> int:
    """The Maximum Length Received we offer: 4096 .. 2^32-1 bytes, or 0 (unlimited)."""
    try:
        length = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not a number of bytes') from None
    if length != 0 and not 4096 <= length <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(
            f'max PDU length {length} is not 0 (unlimited) or within 4096..4294967295')
    return length


def counted(value: str, what: str, minimum: int, advice: str) -> int:
    """A whole number of ``what``, at least ``minimum`` (``advice`` says so)."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not {what}') from None
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


#: DCMTK's log levels (``-ll``) as Python's; trace shows what debug shows, and any
#: finer message a library logs below DEBUG.
TRACE = 5
LOG_LEVELS = {'fatal': logging.CRITICAL, 'error': logging.ERROR, 'warn': logging.WARNING,
              'info': logging.INFO, 'debug': logging.DEBUG, 'trace': TRACE}


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


def finish(assoc, args: argparse.Namespace) -> None:
    """``--abort``: abort the association the tool is done with (a release that
    follows is then a no-op); else leave it to be released."""
    if getattr(args, 'abort', False):
        logger.info('aborting the association (--abort)')
        assoc.abort()


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


def add_tls_arguments(parser: argparse.ArgumentParser, server: bool = False) -> None:
    """DCMTK's TLS flags: ``+tls key cert``, ``+tla``, ``+cf``, ``-rc/-vc/-ic``, profiles."""
    group = parser.add_argument_group('transport layer security (PS3.15 B)')
    group.add_argument('+tls', '--enable-tls', dest='tls', nargs=2, metavar=('KEY', 'CERT'),
                       help='use TLS with this private key and certificate (PEM)')
    if not server:
        group.add_argument('+tla', '--anonymous-tls', dest='tls_anonymous',
                           action='store_true', help='use TLS without a certificate of ours')
    group.add_argument('+cf', '--add-cert-file', dest='tls_ca', action='append', default=[],
                       metavar='FILE', help='trust the certificates in FILE (PEM); repeatable')
    verify = group.add_mutually_exclusive_group()
    verify.add_argument('-rc', '--require-peer-cert', dest='peer_cert', action='store_const',
                        const='require', help='verify the peer certificate, fail if absent'
                        + ('' if server else ' (default)'))
    if server:
        verify.add_argument('-vc', '--verify-peer-cert', dest='peer_cert',
                            action='store_const', const='verify',
                            help='verify the peer certificate if present (default)')
    verify.add_argument('-ic', '--ignore-peer-cert', dest='peer_cert', action='store_const',
                        const='ignore', help="don't verify the peer certificate")
    profile = group.add_mutually_exclusive_group()
    profile.add_argument('+py', '--profile-bcp195-nd', dest='tls_profile',
                         action='store_const', const='bcp195-non-downgrading',
                         help='non-downgrading BCP 195 TLS profile (default)')
    profile.add_argument('+px', '--profile-bcp195', dest='tls_profile', action='store_const',
                         const='bcp195', help='BCP 195 TLS profile')
    profile.add_argument('+pz', '--profile-bcp195-ex', dest='tls_profile',
                         action='store_const', const='bcp195-extended',
                         help='extended BCP 195 TLS profile')
    if not server:
        group.add_argument('--no-hostname-check', dest='tls_check_hostname',
                           action='store_false',
                           help="don't check the peer's name against its certificate")


def configure_logging(args: argparse.Namespace) -> None:
    """DCMTK-style log lines on stderr (``E:``, ``W:``, ``I:``, ``D:``)."""
    level = logging.WARNING
    if getattr(args, 'quiet', False):
        level = logging.ERROR
    if getattr(args, 'verbose', False):
        level = logging.INFO
    if getattr(args, 'debug', False):
        level = logging.DEBUG
    if getattr(args, 'log_level', None):
        level = LOG_LEVELS[args.log_level]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_DcmtkFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class _DcmtkFormatter(logging.Formatter):
    _LETTERS = {TRACE: 'T', logging.DEBUG: 'D', logging.INFO: 'I', logging.WARNING: 'W',
                logging.ERROR: 'E', logging.CRITICAL: 'F'}

    def format(self, record: logging.LogRecord) -> str:
        letter = self._LETTERS.get(record.levelno, 'T' if record.levelno < logging.DEBUG
                                   else 'I')
        text = record.getMessage()
        if record.exc_info and logging.getLogger().level <= logging.DEBUG:
            text += '\n' + self.formatException(record.exc_info)
        return '\n'.join(f'{letter}: {line}' for line in text.splitlines() or [''])


# -- TLS -------------------------------------------------------------------------------

def tls_context(args: argparse.Namespace, role: str) -> Optional[ssl.SSLContext]:
    """The ``SSLContext`` the TLS flags ask for, or None without TLS."""
    key_cert = getattr(args, 'tls', None)
    if not key_cert and not getattr(args, 'tls_anonymous', False):
        return None
    keyfile, certfile = key_cert if key_cert else (None, None)
    cafiles = list(getattr(args, 'tls_ca', []) or [])
    mode = getattr(args, 'peer_cert', None) or ('require' if role == 'client' else 'verify')
    verify = mode == 'require' or (mode == 'verify' and bool(cafiles))
    try:
        context = tls.make_context(
            role, profile=getattr(args, 'tls_profile', None) or 'bcp195-non-downgrading',
            certfile=certfile, keyfile=keyfile, cafile=cafiles[0] if cafiles else None,
            verify_peer=verify,
            check_hostname=getattr(args, 'tls_check_hostname', True))
        for extra in cafiles[1:]:
            context.load_verify_locations(extra)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ToolError(f'TLS set-up failed: {exc}', EXIT_USAGE) from exc
    if role == 'server' and mode == 'verify' and cafiles:
        context.verify_mode = ssl.CERT_OPTIONAL  # DCMTK -vc: verify when presented
    return context


# -- directories we write in ---------------------------------------------------------

def prepare_directory(path: str, what: str = 'storage directory') -> str:
    """Make ``path`` a directory the tool can write in (created with its parents when
    missing), or raise a ``ToolError`` (``EXIT_LOCAL``): "cannot use storage directory
    PATH: <reason>".

    The test that counts is creating (and removing) a file in it: permission bits
    say nothing to root, and a read-only mount, ``/proc`` or ``/sys`` refuse files
    whatever the bits say. Nothing is left behind but the directory itself.
    """
    def refuse(reason: str):
        return ToolError(f'cannot use {what} {path}: {reason}', EXIT_LOCAL)

    if os.path.exists(path) and not os.path.isdir(path):
        raise refuse('it is a file, not a directory')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            raise refuse(f'{blocker} is a file, not a directory') from exc
        raise refuse(f'cannot create it ({exc.strerror or exc})') from exc
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-test-', dir=path)
    except OSError as exc:
        raise refuse(f'cannot create files in it ({exc.strerror or exc})') from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def _file_in_the_way(path: str) -> Optional[str]:
    """The first ancestor of ``path`` that exists and is not a directory, if any."""
    parts = os.path.abspath(path).split(os.sep)
    for n in range(2, len(parts) + 1):
        ancestor = os.sep.join(parts[:n])
        if os.path.exists(ancestor) and not os.path.isdir(ancestor):
            return ancestor
        if not os.path.exists(ancestor):
            return None
    return None


# -- AE behaviour shared by the tools --------------------------------------------------

class PhasedTimeouts:
    """Mixin for a requesting AE: ``-to`` bounds the TCP connect (and TLS handshake),
    ``-ta`` the association answer, ``-td`` every DIMSE wait after it; optional TLS
    (``tls_client_context``).

    The three are the AE's ``connect_timeout``, ``acse_timeout`` and ``dcm_timeout``:
    each association captures them when it starts (``AEBase.settings_for``), so any
    number of associations may run at once. ``phase`` only says, for the error
    message of a timeout, how far the latest association request got.
    """

    connect_timeout = 15.0
    acse_timeout = 30.0
    dimse_timeout = 60.0
    tls_client_context: Optional[ssl.SSLContext] = None
    phase = 'idle'

    def configure_timeouts(self, args: argparse.Namespace) -> None:
        self.connect_timeout = getattr(args, 'connect_timeout', self.connect_timeout)
        self.acse_timeout = getattr(args, 'acse_timeout', self.acse_timeout)
        self.dimse_timeout = getattr(args, 'dimse_timeout', self.dimse_timeout)
        self.artim_timeout = self.acse_timeout
        self.dcm_timeout = self.dimse_timeout

    def begin_request(self) -> None:
        """Call before ``AssociationRequester.request()`` / ``request_association``:
        the wording of a timeout follows the request from here."""
        self.phase = 'connect'

    def wrap_client_socket(self, sock, address: str, timeout: float):
        if self.tls_client_context is not None:
            self.phase = 'tls'
            sock = tls.wrap_client(self.tls_client_context, sock, address, timeout)
        self.phase = 'acse'
        return sock

    #: ``-rsp``: the peer whose A-ASSOCIATE-AC must confirm the user identity.
    identity_confirmation_from: Optional[str] = None

    def on_association_response(self, response) -> None:
        if self.identity_confirmation_from and not any(
                isinstance(item, userdataitems.UserIdentityNegotiationSubItemAc)
                for item in (response.user_information.user_data
                             if response.user_information else [])):
            # PS3.7 D.3.3.7.2: an acceptor that does not support identity
            # negotiation answers without the sub-item; -rsp asked us to stop then.
            # (Raised here, the association is aborted.)
            raise ToolError(f'{self.identity_confirmation_from} accepted the association '
                            'without confirming the user identity (-rsp)', EXIT_REJECTED)
        self.phase = 'dimse'


#: Mixin for a listening AE: TLS, when its flags ask, on accepted connections
#: (``context``) and on its own requests (``client_context``): ssl_ae's.
ServerTLS = TLSSockets


def configure_server(ae, args: argparse.Namespace) -> None:
    """Timeouts, access control and TLS of a listening AE from its flags."""
    ae.artim_timeout = args.acse_timeout
    ae.dcm_timeout = args.dimse_timeout
    limit = getattr(args, 'max_associations', None)
    if limit is not None:
        ae.max_associations = limit or None      # 0: no limit
    if getattr(args, 'require_called_aet', False):
        ae.allowed_called_aets = {ae.local_ae.aet}
    if getattr(args, 'allow_calling', None):
        ae.allowed_calling_aets = set(args.allow_calling)
    if getattr(args, 'allow_network', None):
        ae.allowed_networks = set(args.allow_network)
    if getattr(args, 'deny_network', None):
        ae.denied_networks = set(args.deny_network)
    ae.context = tls_context(args, 'server')
    if ae.context is not None:
        # Our own requests (C-MOVE, commitment reports) present the same certificate.
        client_args = argparse.Namespace(**vars(args))
        client_args.peer_cert = 'require' if args.tls_ca else 'ignore'
        client_args.tls_check_hostname = False
        ae.client_context = tls_context(client_args, 'client')


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


@dataclasses.dataclass
class ToolRemoteAE(RemoteAEConfig):
    """A peer as the tools name it: the identity asks for a positive response only
    with ``-rsp`` (as DCMTK's tools; PS3.7 D.3.3.7.1)."""

    positive_response: bool = False

    def user_identity(self) -> Optional[userdataitems.UserIdentityNegotiationSubItem]:
        item = super().user_identity()
        if item is not None:
            item.positive_response_req = int(self.positive_response)
        return item


_IDENTITY_FILES = (('kerberos', '-kt'), ('saml', '--saml'), ('jwt', '--jwt'))


def remote_ae(args: argparse.Namespace) -> RemoteAEConfig:
    """The peer of an SCU tool, with its user identity (``-usr``/``-pwd``, ``-kt``,
    ``--saml``, ``--jwt``: one of them; the files are read here)."""
    username = getattr(args, 'username', None)
    if getattr(args, 'password', None) and not username:
        raise ToolError('-pwd needs -usr', EXIT_USAGE)
    given = (['-usr'] if username else []) + [
        flag for key, flag in _IDENTITY_FILES if getattr(args, key, None)]
    if len(given) > 1:
        raise ToolError(f'one user identity at a time: {" and ".join(given)} given',
                        EXIT_USAGE)
    if getattr(args, 'pos_response', False) and not given:
        raise ToolError('-rsp needs a user identity (-usr, -kt, --saml or --jwt)',
                        EXIT_USAGE)
    identity = {}
    for key, flag in _IDENTITY_FILES:
        path = getattr(args, key, None)
        if path:
            identity[key] = _identity_file(path, flag, binary=key == 'kerberos')
    return ToolRemoteAE(aet=args.called_aet, address=args.peer, port=args.port,
                        username=username, password=getattr(args, 'password', None),
                        positive_response=getattr(args, 'pos_response', False), **identity)


def _identity_file(path: str, flag: str, binary: bool):
    """A credential file: bytes for a Kerberos ticket; text (UTF-8, without the line
    end an editor adds) for a SAML assertion or a JWT."""
    try:
        with open(path, 'rb') as fp:
            data = fp.read()
    except OSError as exc:
        raise ToolError(f'{flag}: cannot read {path}: {exc.strerror or exc}',
                        EXIT_USAGE) from exc
    if binary:
        return data
    try:
        return data.decode('utf-8').rstrip('\r\n')
    except UnicodeDecodeError as exc:
        raise ToolError(f'{flag}: {path} is not UTF-8 text', EXIT_USAGE) from exc


def prepare_client(ae, args: argparse.Namespace):
    """Set a ``PhasedTimeouts`` AE's timeouts, TLS and ``-rsp`` from the flags;
    returns it."""
    ae.configure_timeouts(args)
    ae.tls_client_context = tls_context(args, 'client')
    if getattr(args, 'pos_response', False):
        ae.identity_confirmation_from = f'{args.called_aet}@{args.peer}:{args.port}'
    return ae


def service(assoc, sop_class: str, peer: str):
    """``assoc.get_scu(sop_class)``; a class the peer did not accept is a ``ToolError``
    naming it in words."""
    try:
        return assoc.get_scu(sop_class)
    except ClassNotSupportedError as exc:
        name = UID(sop_class).name
        raise ToolError(f'{peer} did not accept {name} ({sop_class})', EXIT_FAILURE) from exc


def describe_peer(remote: RemoteAEConfig) -> str:
    return f'{remote.aet}@{remote.address}:{remote.port}'


# -- running a tool ------------------------------------------------------------------

_PHASES = {
    'connect': ('connecting', '-to', 'connect_timeout'),
    'tls': ('in the TLS handshake', '-to', 'connect_timeout'),
    'acse': ('waiting for the association answer', '-ta', 'acse_timeout'),
    'dimse': ('waiting for a DIMSE message', '-td', 'dimse_timeout'),
}


def explain(exc: BaseException, peer: str = 'the peer', ae=None) -> ToolError:
    """The one-line message and exit code for a library error."""
    if isinstance(exc, (ToolError, BrokenPipeError)):
        raise exc  # already worded / the reader of our output went away
    if isinstance(exc, AssociationRejectedError):
        # The library's own message says the same values; say them once, in words.
        return ToolError(f'association rejected by {peer}: {exc.describe()}', EXIT_REJECTED)
    if isinstance(exc, DCMTimeoutError):
        phase = getattr(ae, 'phase', None)
        if phase in _PHASES:
            what, flag, attr = _PHASES[phase]
            limit = getattr(ae, attr)
            return ToolError(f'timeout {what} with {peer} ({flag} {limit:g} s): {exc}',
                             EXIT_TIMEOUT)
        return ToolError(f'timeout with {peer}: {exc}', EXIT_TIMEOUT)
    if isinstance(exc, AssociationAbortedError):
        if getattr(ae, 'phase', None) in ('connect', 'tls'):
            return ToolError(_cannot_connect(exc, peer), EXIT_CONNECT)
        return ToolError(f'association with {peer} aborted: {exc}', EXIT_ABORTED)
    if isinstance(exc, AssociationReleasedError):
        return ToolError(f'{peer} released the association early: {exc}', EXIT_ABORTED)
    if isinstance(exc, ClassNotSupportedError):
        return ToolError(str(exc), EXIT_FAILURE)
    if isinstance(exc, (PDUProcessingError, DIMSEProcessingError)):
        return ToolError(f'protocol error with {peer}: {exc}', EXIT_ABORTED)
    if isinstance(exc, NetDICOMError):
        if isinstance(exc.__cause__, OSError) or getattr(ae, 'phase', None) == 'connect':
            return ToolError(_cannot_connect(exc, peer), EXIT_CONNECT)
        return ToolError(f'{exc}', EXIT_FAILURE)
    if isinstance(exc, OSError):
        return ToolError(f'{exc}', EXIT_FAILURE)
    raise exc


def _cannot_connect(exc: BaseException, peer: str) -> str:
    text = str(exc)
    return text if text.startswith('cannot connect') else f'cannot connect to {peer}: {text}'


def execute(prog: str, job: Callable[[], int]) -> int:
    """Run ``job``; print a failure as ``prog: error: ...`` and return the exit code."""
    try:
        return job()
    except BrokenPipeError:
        # Our output was piped into a program that stopped reading (``| head``):
        # that is how the user wanted it to end.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt as exc:
        # A tool may say where it stopped: ``raise KeyboardInterrupt('sent 3 of 10 ...')``.
        detail = f': {exc}' if str(exc) else ''
        print(f'{prog}: interrupted{detail}', file=sys.stderr)
        return EXIT_INTERRUPTED
    except ToolError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return exc.exit_code


def serve_until_stopped(ae, banner: str, stop: Optional[threading.Event] = None) -> int:
    """Serve ``ae`` until SIGINT / SIGTERM; print ``banner`` first (flushed)."""
    stop = stop or threading.Event()

    def on_signal(signum, frame):
        stop.set()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread (tests run main() in a thread)
            pass
    try:
        with ae:
            print(banner, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


# -- progress ------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on a terminal: instances done, instances/s and MB/s.

    Silent when ``stream`` is not a terminal (a pipe, a file) unless forced on; it
    redraws at most ten times a second.
    """

    def __init__(self, total: int, total_bytes: int, stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None, label: str = 'instances') -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, 'isatty', None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total = total
        self.total_bytes = total_bytes
        self.label = label
        self.done = 0
        self.done_bytes = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def advance(self, count: int = 1, size: int = 0) -> None:
        self.done += count
        self.done_bytes += size
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def line(self, now: Optional[float] = None) -> str:
        """The text of the bar for the current counts (without the leading ``\\r``)."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        mbps = self.done_bytes / elapsed / 1e6
        fraction = self.done / self.total if self.total else 1.0
        width = max(10, min(40, shutil.get_terminal_size((80, 24)).columns - 60))
        filled = int(round(fraction * width))
        bar = '#' * filled + '-' * (width - filled)
        eta = ''
        if 0 < self.done < self.total and rate > 0:
            eta = f'  ETA {format_duration((self.total - self.done) / rate)}'
        return (f'{fraction * 100:3.0f}% [{bar}] {self.done}/{self.total} {self.label}  '
                f'{rate:.1f} {self.label}/s  {mbps:.2f} MB/s{eta}')

    def _draw(self, now: float) -> None:
        self.stream.write('\r' + self.line(now) + '\x1b[K')
        self.stream.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """Print a line above the bar (the bar is redrawn below it)."""
        if self.enabled and self._drawn:
            self.stream.write('\r\x1b[K')
        self.stream.write(text + '\n')
        if self.enabled and self._drawn:
            self._draw(time.monotonic())
        else:
            self.stream.flush()

    def finish(self) -> None:
        """End the line on the terminal."""
        if self.enabled and self._drawn:
            self.stream.write('\n')
            self.stream.flush()

    def rates(self) -> tuple:
        """(elapsed seconds, instances per second, MB per second) so far."""
        elapsed = max(time.monotonic() - self.start, 1e-6)
        return elapsed, self.done / elapsed, self.done_bytes / elapsed / 1e6


def format_duration(secs: float) -> str:
    secs = int(round(secs))
    if secs < 60:
        return f'{secs}s'
    minutes, secs = divmod(secs, 60)
    if minutes < 60:
        return f'{minutes}m{secs:02d}s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours}h{minutes:02d}m'


def iter_files(paths: Iterable[str], recursive: bool = True) -> Iterable[str]:
    """Every file named or found under the named directories, sorted per directory."""
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                if not recursive:
                    dirs[:] = []
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield path
