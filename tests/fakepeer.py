"""A scripted raw-socket peer for tests: it says exactly the bytes a test wants.

``FakePeer(script)`` listens on 127.0.0.1, accepts one connection and runs
``script(conn)`` in a thread; whatever the script received is kept. Every wait is
bounded and the listener is closed by ``stop()`` (or the ``with`` block).
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Callable, Optional

from pynetdicom2 import pdu, uids, userdataitems

VERIFICATION = '1.2.840.10008.1.1'
IMPLICIT_LE = '1.2.840.10008.1.2'


def read_pdu(conn: socket.socket, timeout: float = 5.0) -> Optional[bytes]:
    """One whole PDU from ``conn`` (header included), or None at EOF."""
    conn.settimeout(timeout)
    header = _read_exactly(conn, 6)
    if header is None:
        return None
    length = struct.unpack('>L', header[2:6])[0]
    body = _read_exactly(conn, length)
    return None if body is None else header + body


def _read_exactly(conn: socket.socket, n: int) -> Optional[bytes]:
    data = b''
    while len(data) < n:
        try:
            chunk = conn.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def read_until_closed(conn: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the other side sends until it closes (bounded by ``timeout``)."""
    conn.settimeout(timeout)
    data = b''
    try:
        while len(data) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def associate_ac_for(rq_bytes: bytes, max_length: int = 16384) -> bytes:
    """A-ASSOCIATE-AC accepting every context of ``rq_bytes`` with its first syntax."""
    rq = pdu.AAssociateRqPDU.decode(rq_bytes)
    items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1')]
    for ctx in rq.presentation_context_items:
        items.append(pdu.PresentationContextItemAC(
            ctx.context_id, 0, pdu.TransferSyntaxSubItem(ctx.ts_sub_items[0].name)))
    items.append(pdu.UserInformationItem([
        userdataitems.MaximumLengthSubItem(max_length),
        userdataitems.ImplementationClassUIDSubItem('1.2.3.4')]))
    return pdu.AAssociateAcPDU(rq.called_ae_title, rq.calling_ae_title, items).encode()


def associate_raw(port: int, sop_class: str, calling: str = 'RAW',
                  called: str = 'STORE_SCP') -> socket.socket:
    """Connect and associate by hand, proposing ``sop_class`` in explicit VR little
    endian as context 1; the socket, once the A-ASSOCIATE-AC has been read."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=5)
    items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
             pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(sop_class),
                                           [pdu.TransferSyntaxSubItem(
                                               uids.EXPLICIT_VR_LITTLE_ENDIAN)]),
             pdu.UserInformationItem([userdataitems.MaximumLengthSubItem(16384),
                                      userdataitems.ImplementationClassUIDSubItem('1.2.3.4')])]
    sock.sendall(pdu.AAssociateRqPDU(called, calling, items).encode())
    answer = read_pdu(sock)
    assert answer is not None and answer[0] == pdu.A_ASSOCIATE_AC, answer
    return sock


class FakePeer:
    """Listen on 127.0.0.1:<free port>; run ``script(conn)`` for the first connection."""

    def __init__(self, script: Callable[[socket.socket], object], timeout: float = 10.0):
        self.script = script
        self.result = None
        self.error: Optional[BaseException] = None
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(timeout)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def remote_ae(self) -> dict:
        return {'aet': 'FAKEPEER', 'address': '127.0.0.1', 'port': self.port}

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            self.error = exc
            return
        with conn:
            try:
                self.result = self.script(conn)
            except BaseException as exc:  # reported to the test by stop()
                self.error = exc

    def stop(self, timeout: float = 10.0):
        self.thread.join(timeout)
        self.listener.close()
        assert not self.thread.is_alive(), 'fake peer script did not finish'
        return self.result

    def __enter__(self) -> 'FakePeer':
        return self

    def __exit__(self, *exc_info) -> None:
        self.listener.close()
        self.thread.join(10)
