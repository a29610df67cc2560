"""TLS for DICOM: contexts for the secure transport connection profiles of PS3.15 B.

``make_context`` builds an ``ssl.SSLContext`` for one of the BCP 195 profiles;
``wrap_client`` and ``wrap_server`` do the handshake on a connected socket within a
timeout and turn TLS failures into the library's exceptions, the ``ssl`` error chained.
"""

from __future__ import annotations

import socket
import ssl
from typing import Optional

from pynetdicom2.exceptions import AssociationAbortedError, DCMTimeoutError

# PS3.15 B.9 (BCP 195), B.10 (non-downgrading BCP 195), B.11 (extended BCP 195).
# All three forbid anything older than TLS 1.2; they differ in the TLS 1.2 cipher
# suites they allow (TLS 1.3 suites are all AEAD and need no filter).
_BCP195_CIPHERS = ('ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:'
                   'ECDHE+AES256:ECDHE+AES128:!aNULL:!eNULL:!MD5:!RC4:!3DES:!SHA1')
_NON_DOWNGRADING_CIPHERS = ('ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:'
                            'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:'
                            'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384')
_EXTENDED_CIPHERS = ('ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:'
                     'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:'
                     'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256')

PROFILES = {
    'bcp195': _BCP195_CIPHERS,
    'bcp195-non-downgrading': _NON_DOWNGRADING_CIPHERS,
    'bcp195-extended': _EXTENDED_CIPHERS,
}


def make_context(role: str, profile: str = 'bcp195-non-downgrading',
                 certfile: Optional[str] = None, keyfile: Optional[str] = None,
                 cafile: Optional[str] = None, verify_peer: Optional[bool] = None,
                 check_hostname: bool = True) -> ssl.SSLContext:
    """An ``SSLContext`` for a DICOM secure transport connection profile.

    :param role: ``'client'`` (association requester) or ``'server'`` (acceptor)
    :param profile: ``'bcp195'``, ``'bcp195-non-downgrading'`` (the default, as in
        DCMTK) or ``'bcp195-extended'``
    :param certfile: our certificate (PEM); with ``keyfile`` our private key
    :param cafile: certificates we trust for the peer
    :param verify_peer: require and verify the peer's certificate; default: always
        for a client, and for a server when ``cafile`` is given (mutual authentication)
    :param check_hostname: a client checks the server's name against its certificate
    """
    if role not in ('client', 'server'):
        raise ValueError(f"role must be 'client' or 'server', not {role!r}")
    if profile not in PROFILES:
        raise ValueError(f'unknown profile {profile!r}; choose one of {sorted(PROFILES)}')
    server = role == 'server'
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(PROFILES[profile])
    context.options |= ssl.OP_NO_COMPRESSION
    if profile != 'bcp195' and hasattr(ssl, 'OP_NO_RENEGOTIATION'):
        context.options |= ssl.OP_NO_RENEGOTIATION
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if verify_peer is None:
        verify_peer = not server or cafile is not None
    if cafile:
        context.load_verify_locations(cafile)
    elif verify_peer and not server:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if not server:
        context.check_hostname = verify_peer and check_hostname
    context.verify_mode = ssl.CERT_REQUIRED if verify_peer else ssl.CERT_NONE
    return context


def _handshake(context: ssl.SSLContext, sock: socket.socket, timeout: float, peer: str,
               **wrap_args) -> ssl.SSLSocket:
    sock.settimeout(timeout)
    try:
        return context.wrap_socket(sock, **wrap_args)
    except socket.timeout as exc:
        sock.close()
        raise DCMTimeoutError(f'TLS handshake with {peer} took longer than {timeout} s') from exc
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        sock.close()
        raise AssociationAbortedError(
            2, 0, f'TLS handshake with {peer} failed: {exc}') from exc


def wrap_client(context: ssl.SSLContext, sock: socket.socket, hostname: str,
                timeout: float) -> ssl.SSLSocket:
    """Handshake as the client; ``hostname`` is checked against the server certificate."""
    return _handshake(context, sock, timeout, hostname, server_hostname=hostname)


def wrap_server(context: ssl.SSLContext, sock: socket.socket, timeout: float) -> ssl.SSLSocket:
    """Handshake as the server, in the calling (association) thread."""
    try:
        peer = '%s:%s' % sock.getpeername()[:2]
    except OSError:
        peer = 'the peer'
    return _handshake(context, sock, timeout, peer, server_side=True)
