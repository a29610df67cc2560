"""The tools' application entities and associations: a requesting AE whose
timeouts follow the phase of the request (connect, TLS, association, DIMSE), a
listening AE set up from its flags and served until a signal, and the service or
ending an association is asked for.
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import threading
from typing import Optional

from pydicom.uid import UID

from pynetdicom2 import tls, userdataitems
from pynetdicom2.apps.exits import EXIT_FAILURE, EXIT_OK, EXIT_REJECTED, ToolError
from pynetdicom2.apps.tlsoptions import tls_context
from pynetdicom2.exceptions import ClassNotSupportedError

logger = logging.getLogger(__name__)


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


def finish(assoc, args: argparse.Namespace) -> None:
    """``--abort``: abort the association the tool is done with (a release that
    follows is then a no-op); else leave it to be released."""
    if getattr(args, 'abort', False):
        logger.info('aborting the association (--abort)')
        assoc.abort()


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
