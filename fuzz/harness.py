"""The hostile peer's side of the wire, for the fuzz targets and the corpus replay.

``PeerEnd`` is the peer's end of a connection, used without blocking: it writes,
sees what the association has not read yet, and decodes what the association sent.
``serve_stream`` hands one whole byte stream to ``AE.serve_association`` (the
function every server thread runs) and reports what came back.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import struct
import termios
import time
import tracemalloc
from typing import List, NamedTuple

from hypothesis import event

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dulprovider, pdu, reassembly, sopclass

#: Short timeouts: a step that waits for bytes that never come costs this much.
STEP_TIMEOUT = 0.05
#: Memory a step may use beyond twice the bytes it read (the DUL's buffer may grow
#: by one 256 KiB chunk and be copied once).
MEMORY_SLACK = 1024 * 1024


def fuzz_ae() -> ae_module.AE:
    """A minimal AE that never listens: verification SCP, short timeouts."""
    ae = ae_module.AE('FUZZ', 0, bind_and_activate=False)
    ae.add_scp(sopclass.verification_scp)
    ae.dcm_timeout = STEP_TIMEOUT
    ae.artim_timeout = STEP_TIMEOUT
    return ae


def decoded_or_none(error: type, decoder, *args):
    """``decoder(*args)``, or None when it refused with ``error`` (which must say why).

    Any other exception fails the target: that is the bug being hunted.
    """
    try:
        value = decoder(*args)
    except error as exc:
        assert str(exc), f'{error.__name__} without a message'
        event('refused')
        return None
    event('decoded')
    return value


def unread_bytes(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue (FIONREAD), -1 once it is closed."""
    if sock.fileno() < 0:
        return -1
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return struct.unpack('i', buf)[0]


def would_act(pending: bytes, dul: dulprovider.DULServiceProvider, max_pdu: int) -> bool:
    """Whether the DUL, reading ``pending``, acts now rather than waiting for more.

    It acts on a complete PDU, and on a header it refuses (unknown type, a length
    above what it accepts) before reading any body.
    """
    if len(pending) < pdu.PDU_HEADER_LENGTH:
        return False
    pdu_type, length = pending[0], struct.unpack('>L', pending[2:6])[0]
    if pdu_type not in pdu.PDU_TYPES:
        return True
    if pdu_type == pdu.P_DATA_TF:
        cap = max_pdu or dulprovider.UNLIMITED_PDATA_CAP
    elif pdu_type in (pdu.A_ASSOCIATE_RQ, pdu.A_ASSOCIATE_AC):
        cap = dul.max_associate_pdu_length
    else:
        cap = dulprovider.FIXED_PDU_LENGTH
    return length > cap or len(pending) >= pdu.PDU_HEADER_LENGTH + length


def split_pdus(data: bytes) -> tuple:
    """The complete PDUs at the start of ``data`` and the incomplete rest."""
    found, at = [], 0
    while len(data) - at >= pdu.PDU_HEADER_LENGTH:
        end = at + pdu.PDU_HEADER_LENGTH + struct.unpack('>L', data[at + 2:at + 6])[0]
        if end > len(data):
            break
        found.append(data[at:end])
        at = end
    return found, data[at:]


def messages_in(pdus: list) -> list:
    """The DIMSE messages carried by the P-DATA-TF PDUs among ``pdus``."""
    assembler = reassembly.MessageAssembler()
    found = []
    for item in (i for p in pdus if isinstance(p, pdu.PDataTfPDU) for i in p.data_value_items):
        msg = assembler.feed(item.context_id, item.data_value[0], item.data_value[1:])
        if msg is not None:
            found.append(msg)
    return found


class PeerEnd:
    """The hostile peer's end of the connection, used without blocking."""

    def __init__(self, sock: socket.socket, sut_sock: socket.socket):
        self.sock = sock
        self.sock.setblocking(False)
        self.sut_sock = sut_sock        # the association's end, to see what it has not read
        self.written = bytearray()
        self.received = bytearray()
        self.pdus: list = []            # complete PDUs the association sent, decoded
        self.eof = False
        self.write_closed = False

    def write(self, data: bytes) -> None:
        """Send ``data``; nothing happens once the association closed its end."""
        if self.write_closed or not data:
            return
        try:
            self.sock.sendall(data)
        except BlockingIOError:
            raise AssertionError('the socket buffer filled: inputs are meant to stay small')
        except OSError:
            return
        self.written += data

    def pending(self) -> bytes:
        """What the association has not read yet, of what we wrote."""
        waiting = unread_bytes(self.sut_sock)
        if waiting <= 0:
            return b''
        return bytes(self.written[len(self.written) - waiting:])

    def drain(self) -> None:
        """Take what the association sent; every complete PDU in it must decode."""
        while not self.eof:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            self.received += chunk
        complete, rest = split_pdus(bytes(self.received))
        for raw in complete[len(self.pdus):]:
            self.pdus.append(pdu.decode_pdu(raw))
        if self.eof:
            assert not rest, f'the association sent a partial PDU, then closed: {rest[:16]!r}'

    def close_write(self) -> None:
        if not self.write_closed:
            self.write_closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def peak_memory():
    """Yield a list that receives the peak traced memory of the block."""
    result: List[int] = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        yield result
        result.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


class _ErrorLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def error_log():
    """Collect the library's ERROR records: each one is an exception it did not expect."""
    handler = _ErrorLog()
    logger = logging.getLogger('pynetdicom2')
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


class Served(NamedTuple):
    """What ``serve_stream`` saw: the PDUs and messages the AE sent, files it left."""
    pdus: list
    messages: list
    files: list


def serve_stream(stream: bytes, then_close: bool, storage_dir: str) -> Served:
    """Run one connection carrying ``stream`` through a storage AE's server code.

    Checks what must hold whatever the bytes: the call returns promptly, logs no
    unexpected error, closes its socket, stays within memory proportional to the
    input, sends only whole PDUs that decode, leaves no temporary file behind.
    """
    ae = ae_module.StorageAE(storage_dir, 'FUZZ', 0, bind_and_activate=False)
    ae.dcm_timeout = ae.artim_timeout = STEP_TIMEOUT
    peer, theirs = socket.socketpair()
    try:
        peer.sendall(stream)
        if then_close:
            peer.shutdown(socket.SHUT_WR)
        with error_log() as errors, peak_memory() as peak:
            started = time.monotonic()
            ae.serve_association(theirs, ('127.0.0.1', 104))
            elapsed = time.monotonic() - started
        assert not errors, [record.getMessage() for record in errors]
        assert theirs.fileno() == -1, 'serve_association left the socket open'
        assert peak[0] < 2 * len(stream) + MEMORY_SLACK, peak[0]
        assert elapsed < 5, f'serve_association took {elapsed:.1f} s'
        answer = PeerEnd(peer, theirs)
        answer.drain()
        assert answer.eof
        files = sorted(os.listdir(storage_dir))
        assert all(name.endswith('.dcm') for name in files), files
        return Served(answer.pdus, messages_in(answer.pdus), files)
    finally:
        peer.close()
        theirs.close()
        ae.server_close()
