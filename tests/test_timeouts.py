"""Every wait is bounded: what a silent, slow or stuck peer costs, measured.

Each test puts a peer on 127.0.0.1 that does not do its part (never accepts, never
answers, never reads, sends one byte at a time) and checks that the library gives
up within its timeout plus a little slack, with ``DCMTimeoutError`` on our side and
the connection closed on the peer's.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, pdu, sopclass, uids, userdataitems
from pynetdicom2.exceptions import DCMTimeoutError
from tests.fakepeer import FakePeer, associate_ac_for, read_pdu
from tests.test_hostile import read_to_close

VERIFICATION = uids.VERIFICATION_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
#: What a bounded wait may overrun its timeout by on a loaded two-core machine.
SLACK = 1.5


def client(timeout: float = 1.0) -> ae_module.ClientAE:
    scu = ae_module.ClientAE('TIMEOUT_SCU').add_scu(sopclass.verification_scu)
    scu.add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = timeout
    return scu


def server(dcm_timeout: float, artim_timeout: float) -> ae_module.AE:
    ae = ae_module.AE('TIMEOUT_SCP', 0, bind_address='127.0.0.1')
    ae.add_scp(sopclass.verification_scp)
    ae.dcm_timeout = dcm_timeout
    ae.artim_timeout = artim_timeout
    return ae


class Stopwatch:
    def __init__(self):
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def seconds_until_closed(conn: socket.socket, limit: float) -> tuple:
    """``(seconds, data)``: how long until ``conn`` closes, and what arrived meanwhile.

    ``seconds`` is None when it stayed open for ``limit`` seconds.
    """
    watch = Stopwatch()
    data, closed = read_to_close(conn, limit)
    return (watch.elapsed if closed else None), data


def associate_rq(called: str = 'TIMEOUT_SCP') -> bytes:
    items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
             pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                           [pdu.TransferSyntaxSubItem(
                                               uids.IMPLICIT_VR_LITTLE_ENDIAN)]),
             pdu.UserInformationItem([userdataitems.MaximumLengthSubItem(16384)])]
    return pdu.AAssociateRqPDU(called, 'SLOW_PEER', items).encode()


def associated(port: int) -> socket.socket:
    """A raw connection to our AE with an association established (verification)."""
    conn = socket.create_connection(('127.0.0.1', port), timeout=5)
    conn.sendall(associate_rq())
    assert read_pdu(conn)[0] == pdu.A_ASSOCIATE_AC
    return conn


def is_abort(data: bytes) -> bool:
    return len(data) == 10 and data[0] == pdu.A_ABORT


# -- the requester: connect, associate, DIMSE, release ---------------------------------

def test_connect_to_a_listener_that_never_accepts_times_out():
    # A backlog of 0 and connections nobody accepts: the kernel drops further SYNs.
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(('127.0.0.1', port))
            fillers.append(filler)
        watch = Stopwatch()
        with pytest.raises(DCMTimeoutError) as info:
            with client(1.0).request_association({'aet': 'NOBODY', 'address': '127.0.0.1',
                                                  'port': port}):
                pass
        assert watch.elapsed < 1.0 + SLACK
        assert f'127.0.0.1:{port}' in str(info.value)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_association_request_never_answered():
    def script(conn):
        assert read_pdu(conn)[0] == pdu.A_ASSOCIATE_RQ
        return seconds_until_closed(conn, 6)      # accepts the connection, answers nothing

    with FakePeer(script) as peer:
        watch = Stopwatch()
        with pytest.raises(DCMTimeoutError):
            with client(1.0).request_association(peer.remote_ae):
                pass
        assert watch.elapsed < 1.0 + SLACK
        closed_after, data = peer.stop()
    assert closed_after is not None, 'our side never closed the connection'
    assert is_abort(data), data


def _associated_then(after_ac):
    def script(conn):
        conn.sendall(associate_ac_for(read_pdu(conn)))
        return after_ac(conn)
    return script


def test_dimse_response_never_comes():
    def after_ac(conn):
        assert read_pdu(conn)[0] == pdu.P_DATA_TF   # the C-ECHO-RQ, never answered
        return seconds_until_closed(conn, 6)

    with FakePeer(_associated_then(after_ac)) as peer:
        with client(1.0).request_association(peer.remote_ae) as assoc:
            watch = Stopwatch()
            with pytest.raises(DCMTimeoutError):
                assoc.get_scu(VERIFICATION)(1)
            assert watch.elapsed < 1.0 + SLACK
            assert assoc.dul.sock is None
        closed_after, data = peer.stop()
    assert closed_after is not None
    assert is_abort(data)
    assert pdu.AAbortPDU.decode(data).source == 0


def test_release_never_answered_is_bounded():
    def after_ac(conn):
        assert read_pdu(conn)[0] == pdu.A_RELEASE_RQ
        return seconds_until_closed(conn, 6)

    with FakePeer(_associated_then(after_ac)) as peer:
        assoc_ref = []
        with pytest.raises(DCMTimeoutError):
            with client(1.0).request_association(peer.remote_ae) as assoc:
                assoc_ref.append(assoc)
                watch = Stopwatch()             # leaving the block releases
        assert watch.elapsed < 1.0 + SLACK
        assert assoc_ref[0].dul.sock is None
        closed_after, data = peer.stop()
    assert closed_after is not None
    assert is_abort(data)


def test_sending_to_a_peer_that_never_reads_is_bounded():
    release = threading.Event()

    def after_ac(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        release.wait(10)                            # reads nothing while we send

    with FakePeer(_associated_then(after_ac)) as peer:
        with client(1.0).request_association(peer.remote_ae) as assoc:
            ctx = assoc.context_for(CT)
            msg = dimse.CStoreRQMessage()
            msg.message_id = 1
            msg.affected_sop_class_uid = CT
            msg.affected_sop_instance_uid = '1.2.3.4'
            msg.priority = dimse.PRIORITY_MEDIUM
            msg.data_set = bytes(64 * 1024 * 1024)  # far more than the socket buffers hold
            watch = Stopwatch()
            try:
                with pytest.raises(DCMTimeoutError):
                    assoc.send(msg, ctx.id)
            finally:
                release.set()
            assert watch.elapsed < 1.0 + SLACK
            assert assoc.dul.sock is None
        peer.stop()


# -- the acceptor: ARTIM, DIMSE timeout, trickling, quit ----------------------------------

def test_artim_closes_a_connection_that_says_nothing():
    with server(dcm_timeout=10, artim_timeout=1.0) as ae:
        with socket.create_connection(('127.0.0.1', ae.local_ae.port), timeout=5) as conn:
            closed_after, data = seconds_until_closed(conn, 1.0 + 3)
    assert closed_after is not None and closed_after < 1.0 + SLACK, closed_after
    assert data == b''                          # ARTIM expiry in Sta2 is AA-2: just close


def test_idle_association_on_the_acceptor_times_out():
    with server(dcm_timeout=1.0, artim_timeout=1.0) as ae:
        with associated(ae.local_ae.port) as conn:
            closed_after, data = seconds_until_closed(conn, 1.0 + 3)
    assert closed_after is not None and closed_after < 1.0 + SLACK, closed_after
    assert is_abort(data), data


def _trickle(conn: socket.socket, data: bytes, interval: float, limit: float) -> tuple:
    """Send ``data`` one byte per ``interval``; ``(seconds until closed, what came back)``."""
    watch = Stopwatch()
    received = bytearray()
    conn.settimeout(interval)
    for byte in data:
        if watch.elapsed > limit:
            return None, bytes(received)
        try:
            conn.sendall(bytes([byte]))
            chunk = conn.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return watch.elapsed, bytes(received)
        if not chunk:
            return watch.elapsed, bytes(received)
        received += chunk
    return None, bytes(received)


def test_trickled_associate_request_cannot_outlast_artim():
    # The ARTIM deadline covers the whole A-ASSOCIATE-RQ, not each byte of it.
    with server(dcm_timeout=10, artim_timeout=2.0) as ae:
        with socket.create_connection(('127.0.0.1', ae.local_ae.port), timeout=5) as conn:
            closed_after, data = _trickle(conn, associate_rq(), 0.5, limit=8)
    assert closed_after is not None, 'a trickling peer held the connection for 8 s'
    assert closed_after < 2.0 + SLACK, closed_after
    assert data == b''


def test_trickled_pdata_cannot_outlast_the_dimse_timeout():
    # One byte per second of a C-ECHO-RQ: the deadline is per PDU, so the
    # association ends dcm_timeout after the PDU began, however steady the bytes.
    echo = dimse.CEchoRQMessage()
    echo.message_id = 1
    echo.sop_class_uid = VERIFICATION
    raw = b''.join(p.encode() for p in echo.encode(1, 16384))
    with server(dcm_timeout=2.0, artim_timeout=2.0) as ae:
        with associated(ae.local_ae.port) as conn:
            closed_after, data = _trickle(conn, raw, 1.0, limit=10)
    assert closed_after is not None, 'a trickling peer held the association for 10 s'
    assert closed_after < 2.0 + SLACK, closed_after
    assert is_abort(data), data


def test_quit_with_live_associations_returns_and_closes_them():
    threads_at_start = threading.active_count()
    ae = server(dcm_timeout=30, artim_timeout=30)
    with ae:
        port = ae.local_ae.port
        established = associated(port)
        silent = socket.create_connection(('127.0.0.1', port), timeout=5)
        time.sleep(0.2)                         # both are being served now
        watch = Stopwatch()
        ae.quit()
        assert watch.elapsed < 6
    try:
        for conn in (established, silent):
            closed_after, _ = seconds_until_closed(conn, 3)
            assert closed_after is not None, 'quit() left a peer connected'
        # The serving thread and both association threads are gone.
        deadline = time.monotonic() + 3
        while threading.active_count() > threads_at_start and time.monotonic() < deadline:
            time.sleep(0.02)
        assert threading.active_count() <= threads_at_start
    finally:
        established.close()
        silent.close()


def test_quit_with_live_associations_returns_within_six_seconds():
    # The part of the contract that holds today: quit() itself never hangs.
    ae = server(dcm_timeout=30, artim_timeout=30)
    with ae:
        conn = associated(ae.local_ae.port)
        watch = Stopwatch()
        ae.quit()
        assert watch.elapsed < 6
    conn.close()
    # A new connection is refused: the listening socket is closed.
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', ae.local_ae.port), timeout=2).close()
