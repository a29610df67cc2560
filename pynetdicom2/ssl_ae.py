"""Application entities over TLS: ``SSLClientAE`` and ``SSLApplicationEntity``, and
``TLSSockets``, what the latter adds to an ``AE`` (TLS when it has a context).

They behave as ``ClientAE`` and ``AE`` with every connection wrapped in TLS by the
given ``ssl.SSLContext`` (see ``pynetdicom2.tls.make_context`` for the DICOM profiles).
The client checks the server's name (``server_hostname``); the server handshakes in
the association's own thread, so a slow peer never blocks the accept loop.
"""

from __future__ import annotations

import ssl
from typing import Iterable, Optional

from pynetdicom2 import tls
from pynetdicom2.ae import AE, ClientAE


class SSLClientAE(ClientAE):
    """A ``ClientAE`` whose associations run over TLS."""

    def __init__(self, context: ssl.SSLContext, ae_title: str,
                 supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536) -> None:
        super().__init__(ae_title, supported_ts, max_pdu_length)
        self.context = context

    def wrap_client_socket(self, sock, address: str, timeout: float):
        """Handshake with the server at ``address``."""
        return tls.wrap_client(self.context, sock, address, timeout)


class TLSSockets:
    """Mixin for an ``AE``: TLS on the connections it accepts, with ``context``, and
    on its own requests (e.g. C-MOVE sub-associations), with ``client_context`` when
    set, else ``context`` (one made for both sides, ``ssl.PROTOCOL_TLS``, serves both).
    Without a context, plain TCP: the command-line tools turn TLS on by flag.
    """

    context: Optional[ssl.SSLContext] = None
    client_context: Optional[ssl.SSLContext] = None

    def wrap_server_socket(self, sock):
        """Handshake with the requester (bounded by the ARTIM timer)."""
        if self.context is None:
            return sock
        return tls.wrap_server(self.context, sock, self.artim_timeout)

    def wrap_client_socket(self, sock, address: str, timeout: float):
        """Handshake with the acceptor at ``address``."""
        context = self.client_context or self.context
        if context is None:
            return sock
        return tls.wrap_client(context, sock, address, timeout)


class SSLApplicationEntity(TLSSockets, AE):
    """An ``AE`` (SCU and SCP) whose associations, both ways, run over TLS."""

    def __init__(self, context: ssl.SSLContext, ae_title: str, port: int,
                 supported_ts: Optional[Iterable[str]] = None, max_pdu_length: int = 65536,
                 bind_and_activate: bool = True, **kwargs) -> None:
        self.context = context
        super().__init__(ae_title, port, supported_ts, max_pdu_length, bind_and_activate,
                         **kwargs)


__all__ = ['SSLClientAE', 'SSLApplicationEntity', 'TLSSockets']
