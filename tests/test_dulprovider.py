"""The DUL against a scripted fake peer: every defined cell of PS3.8 Table 9-10.

For each (state, event) of ``fsm.TRANSITIONS`` the DUL is put in the state on one end
of a socket pair, the event is caused (a local call, or bytes the fake peer writes, or
the peer closing, or silence), and the test checks the transition taken, the next
state, and the PDU that reached the peer.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
import tracemalloc

import pytest

from pynetdicom2 import dulprovider, fsm, pdu
from pynetdicom2.exceptions import (AssociationAbortedError, DCMTimeoutError, NetDICOMError,
                                    PDUProcessingError)

RQ = pdu.AAssociateRqPDU('CALLED', 'CALLING', [
    pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
    pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem('1.2.840.10008.1.1'),
                                  [pdu.TransferSyntaxSubItem('1.2.840.10008.1.2')]),
    pdu.UserInformationItem([])])
AC = pdu.AAssociateAcPDU('CALLED', 'CALLING', [
    pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
    pdu.PresentationContextItemAC(1, 0, pdu.TransferSyntaxSubItem('1.2.840.10008.1.2')),
    pdu.UserInformationItem([])])
PDATA = pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x03' + b'\x00' * 8)])

# What the fake peer sends to cause each received-PDU event.
PEER_BYTES = {
    'Evt3': AC.encode(),
    'Evt4': pdu.AAssociateRjPDU(1, 1, 1).encode(),
    'Evt6': RQ.encode(),
    'Evt10': PDATA.encode(),
    'Evt12': pdu.AReleaseRqPDU().encode(),
    'Evt13': pdu.AReleaseRpPDU().encode(),
    'Evt16': pdu.AAbortPDU(0, 0).encode(),
    'Evt19': b'\x0a\x00\x00\x00\x00\x02xx',
}

# The PDU type each sending action puts on the wire (PS3.8 Tables 9-6 to 9-9).
SENT_BY_ACTION = {
    'AE-2': pdu.A_ASSOCIATE_RQ, 'AE-7': pdu.A_ASSOCIATE_AC, 'AE-8': pdu.A_ASSOCIATE_RJ,
    'DT-1': pdu.P_DATA_TF, 'AR-7': pdu.P_DATA_TF, 'AR-1': pdu.A_RELEASE_RQ,
    'AR-4': pdu.A_RELEASE_RP, 'AR-9': pdu.A_RELEASE_RP, 'AA-1': pdu.A_ABORT,
    'AA-7': pdu.A_ABORT, 'AA-8': pdu.A_ABORT,
}

LOCAL_CALLS = {
    'Evt2': lambda dul: dul.send_associate_rq(RQ, 1),
    'Evt7': lambda dul: dul.send_associate_ac(AC, 1),
    'Evt8': lambda dul: dul.send_associate_rj(pdu.AAssociateRjPDU(1, 1, 1), 1),
    'Evt9': lambda dul: dul.send_pdata(PDATA.encode(), 1),
    'Evt11': lambda dul: dul.send_release_rq(1),
    'Evt14': lambda dul: dul.send_release_rp(1),
    'Evt15': lambda dul: dul.abort(0, 0),
}

# Events the walk cannot cause on an already connected socket pair: tested below.
CONNECTION_EVENTS = {'Evt1', 'Evt5'}


def _cells():
    for (state, event), action in sorted(fsm.TRANSITIONS.items()):
        if event in CONNECTION_EVENTS:
            continue
        for requestor in ((True, False) if action == 'AR-8' else (True,)):
            yield state, event, action, requestor


def _expected_next(action, requestor):
    if action == 'AR-8':
        return 'Sta9' if requestor else 'Sta10'
    if action == 'AE-6':
        return 'Sta3'
    return fsm.ACTIONS[action].next_state


def _cause(dul, peer, event):
    if event in LOCAL_CALLS:
        LOCAL_CALLS[event](dul)
    elif event == 'Evt17':
        peer.close()
        dul.receive_pdu(2)
    elif event == 'Evt18':
        dul.receive_pdu(0.2)
    else:
        peer.sendall(PEER_BYTES[event])
        dul.receive_pdu(2)


def _first_pdu_type(peer):
    peer.settimeout(2)
    try:
        header = peer.recv(6)
    except OSError:
        return None
    return header[0] if header else None


@pytest.mark.parametrize('state, event, action, requestor', list(_cells()))
def test_every_defined_transition(state, event, action, requestor):
    ours, peer = socket.socketpair()
    try:
        dul = dulprovider.DULServiceProvider(None, is_requestor=requestor, artim_timeout=0.15)
        dul.sock, dul.state = ours, state
        try:
            _cause(dul, peer, event)
        except NetDICOMError:
            pass                                  # failures are the point of some cells
        steps = [step for step in dul.trace if step[:2] == (state, event)]
        assert steps, f'{state}+{event} was never looked up; trace: {list(dul.trace)}'
        assert steps[0][2:] == (action, _expected_next(action, requestor))
        if action in SENT_BY_ACTION and event != 'Evt17':
            assert _first_pdu_type(peer) == SENT_BY_ACTION[action]
    finally:
        ours.close()
        peer.close()


@pytest.mark.socket
def test_connect_is_evt1_then_the_request_is_evt2():
    listener = socket.create_server(('127.0.0.1', 0))
    try:
        dul = dulprovider.DULServiceProvider.connect(
            '127.0.0.1', listener.getsockname()[1], 2)
        assert dul.state == 'Sta4'
        conn, _ = listener.accept()
        dul.send_associate_rq(RQ, 1)
        assert dul.state == 'Sta5'
        assert conn.recv(1) == bytes([pdu.A_ASSOCIATE_RQ])
        conn.close()
        dul.close()
    finally:
        listener.close()


def test_an_accepted_socket_starts_in_sta2_and_artim_bounds_the_wait():
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, artim_timeout=0.3)
        assert dul.state == 'Sta2'
        started = time.monotonic()
        with pytest.raises(NetDICOMError):
            dul.receive_pdu(dul.artim_timeout)
        assert time.monotonic() - started < 1.5
        assert dul.sock is None


def test_declared_length_over_the_cap_is_refused_before_reading():
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, max_pdu_length=1000)
        dul.state = 'Sta6'
        peer.sendall(struct.pack('>BxL', pdu.P_DATA_TF, 2 ** 31))
        tracemalloc.start()
        try:
            with pytest.raises(PDUProcessingError, match='2147483648'):
                dul.receive_pdu(2)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20      # no room was made for the 2 GiB declared
        abort = pdu.AAbortPDU.decode(peer.recv(10))
        assert (abort.source, abort.reason_diag) == (2, 6)


def _pdata(*pdvs) -> bytes:
    return pdu.PDataTfPDU([pdu.PresentationDataValueItem(pc, data) for pc, data in pdvs]).encode()



def test_buffered_pdv_takes_whole_one_pdv_pdata_and_leaves_the_rest():
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, max_pdu_length=1000)
        dul.state = 'Sta6'
        assert dul.buffered_pdv() is None                          # nothing read yet
        stream = (_pdata((1, b'\x00' + b'z' * 3))                  # read by receive_pdu
                  + _pdata((1, b'\x00' + b'a' * 10)) + _pdata((3, b'\x02' + b'b' * 4))
                  + _pdata((1, b'\x00c'), (1, b'\x02d'))          # two PDVs
                  + _pdata((1, b'\x00' + b'e' * 1200)))           # over max_pdu_length
        peer.sendall(stream[:-100])
        time.sleep(0.05)  # every byte sent is there before the first read
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(1, 0, b'zzz')]
        assert [(c, h, bytes(f)) for c, h, f in [dul.buffered_pdv(), dul.buffered_pdv()]] \
            == [(1, 0, b'a' * 10), (3, 2, b'b' * 4)]
        assert dul.buffered_pdv() is None                          # several PDVs: the long way
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(1, 0, b'c'),
                                                                         (1, 2, b'd')]
        assert dul.buffered_pdv() is None                          # incomplete, then too long
        peer.sendall(stream[-100:])
        with pytest.raises(PDUProcessingError, match='1000'):
            dul.receive_pdu(2)
        assert dul.state != 'Sta6'


def test_buffered_data_run_takes_the_data_fragments_that_continue_a_data_set():
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, max_pdu_length=1000)
        dul.state = 'Sta6'
        assert dul.buffered_data_run(1) == []                      # nothing read yet
        stream = (_pdata((1, b'\x00' + b'z' * 3))                  # read by receive_pdu
                  + _pdata((1, b'\x00a')) + _pdata((1, b'\xfcb'))   # reserved bits set
                  + _pdata((3, b'\x00c'))                          # another context
                  + _pdata((3, b'\x00d')) + _pdata((3, b'\x01e'))   # a command fragment
                  + _pdata((3, b'\x02f'))                          # the last
                  + _pdata((3, b'\x00g'), (3, b'\x02h'))           # two PDVs
                  + _pdata((3, b'\x00' + b'i' * 1200)))            # over max_pdu_length
        peer.sendall(stream[:-100])
        time.sleep(0.05)  # every byte sent is there before the first read
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(1, 0, b'zzz')]
        assert [bytes(f) for f in dul.buffered_data_run(1)] == [b'a', b'b']
        assert dul.buffered_data_run(1) == []
        assert [bytes(f) for f in dul.buffered_data_run(3)] == [b'c', b'd']
        assert dul.buffered_data_run(3) == []
        assert [(c, h, bytes(f)) for c, h, f in [dul.buffered_pdv(), dul.buffered_pdv()]] \
            == [(3, 1, b'e'), (3, 2, b'f')]
        assert dul.buffered_data_run(3) == []                      # several PDVs
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(3, 0, b'g'),
                                                                         (3, 2, b'h')]
        assert dul.buffered_data_run(3) == []                      # incomplete, then too long
        peer.sendall(stream[-100:])
        with pytest.raises(PDUProcessingError, match='1000'):
            dul.receive_pdu(2)
        assert dul.state != 'Sta6'


def test_buffered_pdv_only_in_sta6():
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False)
        dul.state = 'Sta7'    # release requested: P-DATA still arrives, through the table
        peer.sendall(_pdata((1, b'\x00xy')) + _pdata((1, b'\x02z')))
        time.sleep(0.05)
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(1, 0, b'xy')]
        assert dul.buffered_pdv() is None                          # the second is buffered
        assert dul.buffered_data_run(1) == []
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(1, 2, b'z')]


def test_buffered_pdv_leaves_a_pdv_shorter_than_its_headers_to_receive_pdu():
    # A PDV of one byte (its context ID, no message control header, PS3.8 9.3.5.1)
    # between good PDUs: 12 bytes are there, but they are not one PDV's headers.
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False)
        dul.state = 'Sta6'
        peer.sendall(_pdata((1, b'\x00xy')) + struct.pack('>BxLLB', pdu.P_DATA_TF, 5, 1, 1)
                     + _pdata((1, b'\x02z')))
        time.sleep(0.05)  # every byte sent is there before the first read
        assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == [(1, 0, b'xy')]
        assert dul.buffered_pdv() is None
        assert dul.state == 'Sta6'
        with pytest.raises(PDUProcessingError):
            dul.receive_pdu(2)


def test_receive_data_run_waits_for_the_rest_of_a_pdu_that_continues_the_data_set():
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, max_pdu_length=1000)
        dul.state = 'Sta6'
        first, second = _pdata((3, b'\x00' + b'a' * 500)), _pdata((3, b'\x00' + b'b' * 20))
        peer.sendall(first[:9])  # the PDU's header and half the PDV's: the rest comes later

        def send_rest():
            time.sleep(0.1)
            peer.sendall(first[9:300])
            time.sleep(0.1)
            peer.sendall(first[300:] + second)

        sender = threading.Thread(target=send_rest)
        sender.start()
        try:
            run = [bytes(f) for f in dul.receive_data_run(3, 2)]
        finally:
            sender.join(5)
        assert run[0] == b'a' * 500 and run[1:] in ([], [b'b' * 20])
        if len(run) == 1:
            assert [bytes(f) for f in dul.receive_data_run(3, 2)] == [b'b' * 20]
        assert dul.state == 'Sta6' and dul.last_action == 'DT-2'


@pytest.mark.parametrize('following, then', [
    pytest.param(_pdata((3, b'\x02last')), [(3, 2, b'last')], id='the last fragment'),
    pytest.param(_pdata((3, b'\x01cmd')), [(3, 1, b'cmd')], id='a command fragment'),
    pytest.param(_pdata((1, b'\x00other')), [(1, 0, b'other')], id='another context'),
    pytest.param(_pdata((3, b'\x00g'), (3, b'\x02h')), [(3, 0, b'g'), (3, 2, b'h')],
                 id='two PDVs'),
    pytest.param(_pdata((3, b'\x00' + b'i' * 1200)), PDUProcessingError,
                 id='over max_pdu_length'),
    pytest.param(pdu.AReleaseRqPDU().encode(), pdu.AReleaseRqPDU, id='A-RELEASE-RQ'),
    pytest.param(pdu.AAbortPDU(0, 0).encode(), AssociationAbortedError, id='A-ABORT'),
])
def test_receive_data_run_leaves_any_other_pdu_to_receive_pdu_at_once(following, then):
    # Ten bytes (A-RELEASE-RQ, A-ABORT) are shorter than a PDV's headers: nothing
    # waits for more than the PDU header says there is.
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, max_pdu_length=1000)
        dul.state = 'Sta6'
        peer.sendall(following[:12])  # all of a short PDU; the headers of a long one
        started = time.monotonic()
        assert dul.receive_data_run(3, 5) == []
        assert time.monotonic() - started < 2
        assert dul.state == 'Sta6'
        peer.sendall(following[12:])
        if isinstance(then, list):
            assert [(c, h, bytes(f)) for c, h, f in dul.receive_pdu(2)] == then
        elif issubclass(then, Exception):
            with pytest.raises(then):
                dul.receive_pdu(2)
        else:
            assert isinstance(dul.receive_pdu(2), then)


def test_receive_data_run_reports_the_peer_closing_and_the_timeout():
    ours, peer = socket.socketpair()
    with ours:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False)
        dul.state = 'Sta6'
        peer.sendall(_pdata((3, b'\x00' + b'a' * 500))[:100])
        peer.close()
        with pytest.raises(AssociationAbortedError, match='closed the connection'):
            dul.receive_data_run(3, 2)
        assert dul.state == 'Sta1'
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False)
        dul.state = 'Sta6'
        peer.sendall(_pdata((3, b'\x00' + b'a' * 500))[:100])
        with pytest.raises(DCMTimeoutError):
            dul.receive_data_run(3, 0.2)
        assert peer.recv(100)[:1] == bytes([pdu.A_ABORT])


@pytest.mark.parametrize('pdu_length', [128 * 1024, 512 * 1024])
def test_long_pdus_arrive_whole_through_a_buffer_that_stays_bounded(pdu_length):
    # 3 MiB in long PDUs, written in pieces that never match them: the buffer grows to
    # hold several (up to a MiB), is filled by each read, and what is cut at its end
    # moves to its front; every byte arrives in order, and memory stays near that MiB.
    ours, peer = socket.socketpair()
    with ours, peer:
        dul = dulprovider.DULServiceProvider(ours, is_requestor=False, max_pdu_length=0)
        dul.state = 'Sta6'
        fragments = [bytes([n]) * 7 + os.urandom(pdu_length - 6 - 7)
                     for n in range(3 * 1024 * 1024 // pdu_length)]
        stream = b''.join(_pdata((3, b'\x00' + fragment)) for fragment in fragments)

        def send():
            view, sizes = memoryview(stream), (1, 5, 70001, 131078, 200003, 12)
            position = count = 0
            while position < len(view):
                size = sizes[count % len(sizes)]
                peer.sendall(view[position:position + size])
                position += size
                count += 1

        sender = threading.Thread(target=send)
        tracemalloc.start()
        sender.start()
        try:
            received = hashlib.sha256()
            count = 0
            for _ in range(1000):
                run = dul.receive_data_run(3, 5)
                assert run, 'every PDU continues the data set'
                for fragment in run:
                    received.update(fragment)
                count += len(run)
                if count == len(fragments):
                    break
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            sender.join(5)
        assert count == len(fragments)
        assert received.digest() == hashlib.sha256(b''.join(fragments)).digest()
        assert peak < 2 << 20      # the receive buffer is at most a MiB (two while it grows)
