"""TLS for the tools: DCMTK's flags (``+tls KEY CERT``, ``+tla``, ``+cf``,
``-rc/-vc/-ic``, the BCP 195 profiles) and the ``ssl.SSLContext`` they ask for.
"""

from __future__ import annotations

import argparse
import ssl
from typing import Optional

from pynetdicom2 import tls
from pynetdicom2.apps.exits import EXIT_USAGE, ToolError
from pynetdicom2.ssl_ae import TLSSockets


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


#: Mixin for a listening AE: TLS, when its flags ask, on accepted connections
#: (``context``) and on its own requests (``client_context``): ssl_ae's.
ServerTLS = TLSSockets
