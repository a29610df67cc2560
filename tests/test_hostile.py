"""Hostile peers against a running storage AE: each scenario, then a good echo.

A raw-socket peer says exactly the bytes of a scenario (an unknown PDU type, lying
lengths, a data set cut by a release or an abort, a flood of silent connections)
to a ``StorageAE`` serving on 127.0.0.1. For each one the test asserts what the peer
received (an A-ABORT with source 2 and its reason, or just the connection closing),
then that the AE still answers an echo, logged no unexpected error, left no partial
file, and holds no more threads or file descriptors than before.

``SCENARIOS`` is shared with tests/interop/test_hostile_interop.py, where DCMTK's
echoscu follows each scenario instead of our own echo.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, pdu, sopclass, uids, userdataitems
from tests.fakepeer import read_pdu

VERIFICATION = uids.VERIFICATION_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
TIMEOUT = 2            # the AE's dcm_timeout and artim_timeout in these tests
SETTLE = 5             # how long threads and descriptors may take to go back


# -- the raw peer ------------------------------------------------------------------------

def connect(port: int) -> socket.socket:
    return socket.create_connection(('127.0.0.1', port), timeout=5)


def read_to_close(conn: socket.socket, timeout: float = TIMEOUT + 3) -> Tuple[bytes, bool]:
    """Everything the AE sends until it closes: ``(data, closed)``; closed is False when
    ``timeout`` ran out first."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < 1 << 20:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(data), False
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            return bytes(data), False
        except OSError:             # reset: closed as well
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def read_one_pdu(conn: socket.socket, timeout: float = TIMEOUT + 3) -> Optional[pdu.PDU]:
    """The next PDU the AE sends, decoded; None when the connection closes first."""
    raw = read_pdu(conn, timeout)
    return None if raw is None else pdu.decode_pdu(raw)


def assert_aborted(data: bytes, closed: bool, reason: Optional[int] = None) -> None:
    """The AE sent exactly one A-ABORT, source 2 (service provider), and closed."""
    assert closed, f'the AE kept the connection open; it sent {data[:20]!r}'
    assert len(data) == 10 and data[0] == pdu.A_ABORT, f'expected one A-ABORT, got {data!r}'
    abort = pdu.AAbortPDU.decode(data)
    assert abort.source == 2, abort
    if reason is not None:
        assert abort.reason_diag == reason, abort


def assert_just_closed(data: bytes, closed: bool) -> None:
    assert closed, 'the AE kept the connection open'
    assert data == b'', f'expected a silent close, got {data[:20]!r}'


def associate_rq(max_length: int = 16384) -> bytes:
    items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
             pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                           [pdu.TransferSyntaxSubItem(
                                               uids.IMPLICIT_VR_LITTLE_ENDIAN)]),
             pdu.PresentationContextItemRQ(3, pdu.AbstractSyntaxSubItem(CT),
                                           [pdu.TransferSyntaxSubItem(
                                               uids.EXPLICIT_VR_LITTLE_ENDIAN)]),
             pdu.UserInformationItem([userdataitems.MaximumLengthSubItem(max_length),
                                      userdataitems.ImplementationClassUIDSubItem('1.2.3.4')])]
    return pdu.AAssociateRqPDU('STORE_SCP', 'HOSTILE', items).encode()


def associate(port: int) -> socket.socket:
    """A connection with an established association (contexts 1 echo, 3 CT)."""
    conn = connect(port)
    conn.sendall(associate_rq())
    answer = read_one_pdu(conn)
    assert isinstance(answer, pdu.AAssociateAcPDU), answer
    accepted = {item.context_id for item in answer.presentation_context_items
                if item.result_reason == 0}
    assert accepted == {1, 3}
    return conn


def pdata(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF PDU with one PDV (PS3.8 9.3.5)."""
    return (struct.pack('>BBLLBB', pdu.P_DATA_TF, 0, len(fragment) + 6, len(fragment) + 2,
                        context_id, control) + fragment)


def echo_command(msg_id: int = 1) -> bytes:
    msg = dimse.CEchoRQMessage()
    msg.message_id = msg_id
    msg.sop_class_uid = VERIFICATION
    return msg.encode_command_set()


def store_pdus(uid: str = '1.2.3.4.5', size: int = 20000) -> list:
    """A C-STORE-RQ on context 3 with a data set of ``size`` bytes, as P-DATA PDUs."""
    msg = dimse.CStoreRQMessage()
    msg.message_id = 1
    msg.affected_sop_class_uid = CT
    msg.affected_sop_instance_uid = uid
    msg.priority = dimse.PRIORITY_MEDIUM
    msg.data_set = bytes(size)
    return [p.encode() for p in msg.encode(3, 4096)]


# -- the scenarios: each says what the raw peer must receive -------------------------------------

def unknown_pdu_type(port, store_dir):
    with connect(port) as conn:
        conn.sendall(b'\x09\x00\x00\x00\x00\x04abcd')
        assert_aborted(*read_to_close(conn), reason=1)      # unrecognized-PDU


def truncated_associate_rq_then_close(port, store_dir):
    with connect(port) as conn:
        conn.sendall(associate_rq()[:40])
        conn.shutdown(socket.SHUT_WR)
        # The transport closed before a whole PDU: nothing to answer (Evt17 in Sta2).
        assert_just_closed(*read_to_close(conn))


def two_gib_header_then_close(port, store_dir):
    with connect(port) as conn:
        conn.sendall(b'\x01\x00\x7f\xff\xff\xff')
        conn.shutdown(socket.SHUT_WR)
        assert_aborted(*read_to_close(conn), reason=6)      # invalid-PDU-parameter value


def two_gib_header_then_slow_bytes(port, store_dir):
    with connect(port) as conn:
        conn.sendall(b'\x01\x00\x7f\xff\xff\xff')
        sent_at = time.monotonic()
        conn.settimeout(0.1)
        data = bytearray()
        abort_at = None
        closed = False
        # One byte every 0.1 s: the AE must refuse at the header, not read on.
        while time.monotonic() - sent_at < 4 and not closed:
            try:
                conn.sendall(b'\x00')
                chunk = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:             # reset by the AE: it closed
                closed = True
                break
            closed = not chunk
            data += chunk
            if abort_at is None and len(data) >= 10:
                abort_at = time.monotonic() - sent_at
        assert abort_at is not None, f'no A-ABORT within 4 s, got {bytes(data)!r}'
        assert abort_at < 1.0, f'the A-ABORT came {abort_at:.2f} s after the header'
        assert closed, 'the AE kept reading the slow bytes'
        assert_aborted(bytes(data), True, reason=6)


def random_bytes(port, store_dir):
    rng = random.Random(20240611)
    for size in (1, 5, 6, 100, 3000):
        with connect(port) as conn:
            conn.sendall(rng.randbytes(size))
            conn.shutdown(socket.SHUT_WR)
            data, closed = read_to_close(conn)
            if data:
                assert_aborted(data, closed)
            else:
                assert_just_closed(data, closed)


def two_gib_pdata_after_association(port, store_dir):
    with associate(port) as conn:
        conn.sendall(b'\x04\x00\x7f\xff\xff\xff')
        assert_aborted(*read_to_close(conn), reason=6)


def bad_pdv_length(port, store_dir):
    with associate(port) as conn:
        command = echo_command()
        raw = bytearray(pdata(1, 0x03, command))
        raw[6:10] = struct.pack('>L', len(command) + 200)   # the PDV runs past its PDU
        conn.sendall(bytes(raw))
        assert_aborted(*read_to_close(conn), reason=6)


def pdv_for_an_unknown_context(port, store_dir):
    with associate(port) as conn:
        conn.sendall(pdata(7, 0x03, echo_command()))          # context 7 was never proposed
        assert_aborted(*read_to_close(conn))


def data_fragment_before_the_command(port, store_dir):
    with associate(port) as conn:
        conn.sendall(pdata(3, 0x02, bytes(64)))                # last data fragment, no command
        assert_aborted(*read_to_close(conn))


def command_group_length_lies(port, store_dir):
    command = bytearray(echo_command(5))
    command[8:12] = struct.pack('<L', 0xFFFFFF00)
    with associate(port) as conn:
        conn.sendall(pdata(1, 0x03, bytes(command)))
        # The command set's extent comes from its fragments (PS3.8 E.1): the declared
        # group length allocates nothing and reads nothing; the echo is answered.
        answer = read_one_pdu(conn)
        assert isinstance(answer, pdu.PDataTfPDU), answer
        rsp = dimse.decode_message(answer.data_value_items[0].data_value[1:])
        assert isinstance(rsp, dimse.CEchoRSPMessage)
        assert (rsp.message_id_being_responded_to, rsp.status) == (5, 0)
        conn.sendall(pdu.AReleaseRqPDU().encode())
        data, closed = read_to_close(conn)
        assert data == pdu.AReleaseRpPDU().encode() and closed


def command_element_length_lies(port, store_dir):
    command = bytearray(echo_command())
    command[16:20] = struct.pack('<L', 0x7FFFFFFF)          # Affected SOP Class UID length
    with associate(port) as conn:
        conn.sendall(pdata(1, 0x03, bytes(command)))
        assert_aborted(*read_to_close(conn))


def release_during_a_data_set(port, store_dir):
    pdus = store_pdus()
    with associate(port) as conn:
        conn.sendall(b''.join(pdus[:len(pdus) // 2]))
        conn.sendall(pdu.AReleaseRqPDU().encode())
        data, closed = read_to_close(conn)
        # The release is answered; the half data set is dropped.
        assert data == pdu.AReleaseRpPDU().encode() and closed, data[:20]


def abort_during_a_data_set(port, store_dir):
    pdus = store_pdus()
    with associate(port) as conn:
        conn.sendall(b''.join(pdus[:len(pdus) // 2]))
        conn.sendall(pdu.AAbortPDU(0, 0).encode())
        assert_just_closed(*read_to_close(conn))             # AA-3: close, answer nothing


SCENARIOS: Dict[str, Callable] = {f.__name__: f for f in (
    unknown_pdu_type, truncated_associate_rq_then_close, two_gib_header_then_close,
    two_gib_header_then_slow_bytes, random_bytes, two_gib_pdata_after_association,
    bad_pdv_length, pdv_for_an_unknown_context, data_fragment_before_the_command,
    command_group_length_lies, command_element_length_lies, release_during_a_data_set,
    abort_during_a_data_set)}


def health_checks(port, store_dir, count: int = 200):
    """``count`` connections opened and closed without a byte, as load balancers do.

    Every other one closes at once; the others half-close and wait for the AE to
    close its end, which paces the run at the AE's own speed (a burst beyond the
    listen backlog is another matter: test_a_burst_of_connections_is_not_dropped).
    """
    for n in range(count):
        conn = socket.create_connection(('127.0.0.1', port), timeout=5)
        try:
            if n % 2:
                conn.shutdown(socket.SHUT_WR)
                data, closed = read_to_close(conn, 5)
                assert_just_closed(data, closed)
        finally:
            conn.close()


# -- watching the process -------------------------------------------------------------------------

def fd_count() -> int:
    return len(os.listdir('/proc/self/fd'))


def wait_until(predicate, timeout: float = SETTLE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def files_left(store_dir) -> list:
    return sorted(os.listdir(store_dir))


def make_storage_ae(store_dir) -> ae_module.StorageAE:
    ae = ae_module.StorageAE(store_dir, 'STORE_SCP', 0, bind_address='127.0.0.1')
    ae.dcm_timeout = TIMEOUT
    ae.artim_timeout = TIMEOUT
    return ae


class Baseline:
    """Threads and descriptors of this process, to compare after a scenario."""

    def __init__(self):
        self.threads = threading.active_count()
        self.fds = fd_count()

    def settled(self) -> bool:
        """True once both are back to (or below) what they were, within ``SETTLE``."""
        return wait_until(lambda: threading.active_count() <= self.threads
                          and fd_count() <= self.fds)

    def describe(self) -> str:
        return (f'threads {self.threads} -> {threading.active_count()}, '
                f'descriptors {self.fds} -> {fd_count()}')


def unexpected_errors(caplog) -> list:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith('pynetdicom2') and r.levelno >= logging.ERROR]


# -- the tests -----------------------------------------------------------------------------------

@pytest.fixture
def storage_ae(store_dir):
    with make_storage_ae(store_dir) as ae:
        yield ae


def our_echo(port: int, msg_id: int = 1) -> int:
    scu = ae_module.ClientAE('ECHO_SCU').add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 5
    with scu.request_association({'aet': 'STORE_SCP', 'address': '127.0.0.1',
                                  'port': port}) as assoc:
        return int(assoc.get_scu(VERIFICATION)(msg_id))


@contextlib.contextmanager
def leaves_no_trace(ae, store_dir, caplog):
    """Around a scenario: the AE answers an echo before and after it, and is left with
    no more threads or descriptors, no file, and no unexpected error logged."""
    caplog.set_level(logging.INFO, logger='pynetdicom2')
    port = ae.local_ae.port
    assert our_echo(port) == 0                  # warm up: the AE's own threads exist now
    baseline = Baseline()
    yield port
    # Settled first: what the scenario left is gone before the echo's own thread counts.
    assert baseline.settled(), baseline.describe()
    assert our_echo(port, 2) == 0
    assert baseline.settled(), baseline.describe()
    assert files_left(store_dir) == []
    assert unexpected_errors(caplog) == []


@pytest.mark.parametrize('name', sorted(SCENARIOS))
def test_scenario_then_our_echo(name, storage_ae, store_dir, caplog):
    with leaves_no_trace(storage_ae, store_dir, caplog) as port:
        SCENARIOS[name](port, store_dir)


def test_two_hundred_health_checks_leak_nothing(storage_ae, store_dir, caplog):
    with leaves_no_trace(storage_ae, store_dir, caplog) as port:
        started = time.monotonic()
        health_checks(port, store_dir, 200)
        assert time.monotonic() - started < 10


def test_scenarios_one_after_another_leak_nothing(storage_ae, store_dir, caplog):
    # Every scenario on one AE in a row: what one leaves behind would add up here.
    with leaves_no_trace(storage_ae, store_dir, caplog) as port:
        for scenario in SCENARIOS.values():
            if scenario is not two_gib_header_then_slow_bytes:   # 1 s each; covered above
                scenario(port, store_dir)


def test_a_burst_of_connections_is_not_dropped(storage_ae):
    port = storage_ae.local_ae.port
    baseline = Baseline()
    burst = []
    try:
        for _ in range(64):
            conn = socket.socket()
            conn.setblocking(False)
            conn.connect_ex(('127.0.0.1', port))
            burst.append(conn)
        deadline = time.monotonic() + 0.5
        pending = list(burst)
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], 0.05)
            pending = [conn for conn in pending if conn not in writable]
        assert not pending, f'{len(pending)} of 64 connections still waiting after 0.5 s'
    finally:
        for conn in burst:
            conn.close()
        baseline.settled()


def test_a_maximum_length_too_small_for_any_pdv_is_refused_in_words(storage_ae):
    # A Maximum Length Received below 8 leaves no room for a PDV (PS3.8 9.3.5.1): the
    # answer cannot be sent. The peer must hear why (A-ASSOCIATE-RJ, or A-ABORT when
    # the answer fails), never just a closed connection.
    items = pdu.AAssociateRqPDU.decode(associate_rq(max_length=4)).variable_items
    with connect(storage_ae.local_ae.port) as conn:
        conn.sendall(pdu.AAssociateRqPDU('STORE_SCP', 'HOSTILE', items).encode())
        answer = read_one_pdu(conn)
        if isinstance(answer, pdu.AAssociateRjPDU):
            return
        assert isinstance(answer, pdu.AAssociateAcPDU)
        conn.sendall(pdata(1, 0x03, echo_command()))
        data, closed = read_to_close(conn)
    assert closed and len(data) == 10 and data[0] == pdu.A_ABORT, data
    assert pdu.AAbortPDU.decode(data).source in (0, 2)


# -- silent connections: bounded apart, reaped by ARTIM, never counted as associations ------------

def open_silent(port: int, count: int) -> list:
    """``count`` connections that never send a byte."""
    silent = []
    try:
        for _ in range(count):
            silent.append(connect(port))
    except BaseException:
        for conn in silent:
            conn.close()
        raise
    return silent


def still_open(conn: socket.socket, wait: float = 0.3) -> bool:
    """True when nothing, not even the end of the connection, arrives within ``wait``."""
    conn.settimeout(wait)
    try:
        return conn.recv(1) != b''
    except socket.timeout:
        return True
    except OSError:
        return False


def closing_warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and 'max_pending_connections' in r.getMessage()]


def silent_flood_then(store_dir, caplog, real_association: Callable[[int], object],
                      silent_count: int = 20, pending_bound: int = 8):
    """More silent sockets than the AE lets wait, held open while a real association
    runs; returns what ``real_association(port)`` returned once every silent socket
    has been closed by the AE (cut to make room, or by ARTIM)."""
    caplog.set_level(logging.INFO, logger='pynetdicom2')
    ae = make_storage_ae(store_dir)
    ae.artim_timeout = 1
    ae.max_pending_connections = pending_bound
    with ae:
        port = ae.local_ae.port
        silent = open_silent(port, silent_count)
        try:
            outcome = real_association(port)
            for n, conn in enumerate(silent):
                data, closed = read_to_close(conn, 1 + SETTLE)
                assert closed, f'silent socket {n} still open {1 + SETTLE} s after ARTIM'
                assert data == b'', data[:20]           # AA-2: closed, nothing said
        finally:
            for conn in silent:
                conn.close()
    return outcome


def test_silent_sockets_beyond_the_pending_bound_lock_nobody_out(store_dir, caplog):
    # 20 connections that say nothing, against room for 8 waiting ones: the real
    # association still gets its A-ASSOCIATE-AC and its echo answered.
    assert silent_flood_then(store_dir, caplog, our_echo) == 0
    warnings = closing_warnings(caplog)
    assert warnings, 'no silent connection was closed to make room'
    assert all('no A-ASSOCIATE-RQ after' in w and '127.0.0.1:' in w for w in warnings)
    assert unexpected_errors(caplog) == []


def test_a_raw_association_among_silent_sockets_is_accepted(store_dir, caplog):
    def raw_echo(port):
        with associate(port) as conn:
            conn.sendall(pdata(1, 0x03, echo_command(7)))
            answer = read_one_pdu(conn)
            rsp = dimse.decode_message(answer.data_value_items[0].data_value[1:])
            conn.sendall(pdu.AReleaseRqPDU().encode())
            assert read_one_pdu(conn) == pdu.AReleaseRpPDU()
            return rsp.message_id_being_responded_to, rsp.status

    # Within the bound this time: only ARTIM closes the silent sockets.
    assert silent_flood_then(store_dir, caplog, raw_echo, silent_count=12,
                             pending_bound=64) == (7, 0)
    assert closing_warnings(caplog) == []


def test_the_connection_that_waited_longest_is_closed_first(store_dir, caplog):
    caplog.set_level(logging.INFO, logger='pynetdicom2')
    ae = make_storage_ae(store_dir)
    ae.artim_timeout = 30                       # only the bound closes anything here
    ae.max_pending_connections = 4
    silent = []
    with ae:
        port = ae.local_ae.port
        try:
            for n in range(10):
                silent.append(connect(port))
                if n < 4:   # one at a time, so the AE sees them in this order
                    assert wait_until(lambda: ae.pending_connections == n + 1), ae.pending_connections
                else:       # the fifth and later each push out the oldest still open
                    data, closed = read_to_close(silent[n - 4], SETTLE)
                    assert closed and data == b'', f'socket {n - 4} was not closed'
            assert all(still_open(conn) for conn in silent[6:]), 'a newer one was closed'
            assert our_echo(port) == 0              # its connection waited too, briefly
            data, closed = read_to_close(silent[6], SETTLE)
            assert closed and data == b''
            assert all(still_open(conn) for conn in silent[7:])
            ae.quit()
            # quit() closes the connections still waiting, too.
            for conn in silent[7:]:
                assert read_to_close(conn, SETTLE)[1], 'quit() left a waiting connection open'
        finally:
            for conn in silent:
                conn.close()
    assert len(closing_warnings(caplog)) == 7
