"""Fuzz whole associations: a hostile peer on the other end of a socket.

Two state machines drive one association each, one step at a time, in the test's own
thread: the acceptor (``AssociationAcceptor`` on a ``socket.socketpair()``) and the
requester (``AssociationRequester`` after a real handshake on 127.0.0.1). Each step
the peer writes something (valid PDUs and DIMSE messages built with our encoders,
mutated ones, garbage, half a PDU, nothing, a close) and the association takes in
every PDU that has fully arrived. After every step:

- only ``NetDICOMError`` subclasses came out of the library;
- ``dul.state`` is one of ``fsm.STATES``;
- everything the association sent decodes as PDUs, and nothing follows an A-ABORT;
- once the association failed, its socket is closed and the peer reads end of file;
- memory allocated during the step stays proportional to the bytes that arrived.

A third target feeds whole hostile byte streams to ``AE.serve_association`` (the
function every server thread runs) of a storage AE, and checks that nothing is
logged as an unexpected error and no partial file is left behind.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import tempfile
import threading
import time

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, initialize, invariant, precondition, rule)

from fuzz.harness import (
    MEMORY_SLACK, STEP_TIMEOUT, PeerEnd, fuzz_ae, peak_memory, serve_stream, split_pdus,
    would_act)
from fuzz.strategies import (
    AE_TITLES, UIDS, budget, corpus_values, dimse_messages, mutate, pdus, sub_items)
from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, fsm, pdu, sopclass, uids
from pynetdicom2 import userdataitems as udi
from pynetdicom2.asceprovider import AssociationAcceptor, AssociationRequester
from pynetdicom2.exceptions import AssociationRejectedError, NetDICOMError
from tests.fakepeer import associate_ac_for, read_pdu

# pydicom warns about hostile UIDs (see test_fuzz_dimse.py); that is not the point here.
pytestmark = pytest.mark.filterwarnings('ignore:.*for VR UI:UserWarning')

VERIFICATION = uids.VERIFICATION_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
TRANSFER_SYNTAXES = [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
                     uids.EXPLICIT_VR_BIG_ENDIAN, '1.2.3.999']
#: Most steps the association takes in one rule: a rule's bytes hold a few PDUs.
MAX_STEPS = 50


# -- what the peer sends ---------------------------------------------------------------------

@st.composite
def associate_rqs(draw, sop_classes=(VERIFICATION,)) -> pdu.AAssociateRqPDU:
    """An A-ASSOCIATE-RQ our AE can accept: our classes on 1, 3, ... plus random ones."""
    # Mostly acceptable: a standard syntax first, sometimes only an unknown one.
    syntaxes = st.lists(st.sampled_from(TRANSFER_SYNTAXES), min_size=1, max_size=3)
    contexts = [pdu.PresentationContextItemRQ(
        2 * n + 1, pdu.AbstractSyntaxSubItem(uid),
        [pdu.TransferSyntaxSubItem(ts) for ts in draw(st.one_of(
            st.tuples(st.sampled_from(TRANSFER_SYNTAXES[:3])).map(list), syntaxes))])
        for n, uid in enumerate(sop_classes)]
    for _ in range(draw(st.integers(0, 2))):
        contexts.append(pdu.PresentationContextItemRQ(
            draw(st.integers(len(contexts), 127)) * 2 + 1, pdu.AbstractSyntaxSubItem(draw(UIDS)),
            [pdu.TransferSyntaxSubItem(draw(UIDS))]))
    user_data = [udi.MaximumLengthSubItem(draw(st.sampled_from([0, 16384, 128, 65536])))]
    user_data += draw(st.lists(sub_items(), max_size=3))
    items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'), *contexts,
             pdu.UserInformationItem(user_data)]
    called = draw(st.sampled_from(['FUZZ', 'ANY-SCP']) | AE_TITLES)
    return pdu.AAssociateRqPDU(called, draw(AE_TITLES), items)


def message_bytes(msg, pc_id: int, max_pdu_length: int) -> bytes:
    return b''.join(p.encode() for p in msg.encode(pc_id, max_pdu_length))


def echo_rq(msg_id: int) -> dimse.CEchoRQMessage:
    msg = dimse.CEchoRQMessage()
    msg.message_id = msg_id
    msg.sop_class_uid = VERIFICATION
    return msg


def echo_rsp(msg_id: int, status: int = 0) -> dimse.CEchoRSPMessage:
    msg = dimse.CEchoRSPMessage()
    msg.message_id_being_responded_to = msg_id
    msg.affected_sop_class_uid = VERIFICATION
    msg.status = status
    return msg


_RQ_SEED = pdu.AAssociateRqPDU('FUZZ', 'PEER', [
    pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
    pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                  [pdu.TransferSyntaxSubItem(uids.IMPLICIT_VR_LITTLE_ENDIAN)]),
    pdu.UserInformationItem([udi.MaximumLengthSubItem(16384)])]).encode()
SEEDS = [_RQ_SEED, message_bytes(echo_rq(1), 1, 16384), message_bytes(echo_rsp(1), 1, 16384),
         pdu.AReleaseRqPDU().encode(), pdu.AReleaseRpPDU().encode(),
         pdu.AAbortPDU(2, 6).encode(), *corpus_values('pdu')]
# Drawn by index: a short repr in hypothesis' reports.
MUTATED = st.integers(0, len(SEEDS) - 1).flatmap(lambda i: mutate(SEEDS[i]))
ANY_MESSAGE = st.tuples(dimse_messages(), st.sampled_from([1, 1, 1, 3, 5, 255]),
                        st.sampled_from([16384, 64, 0]))


class AssociationMachine(RuleBasedStateMachine):
    """What both machines share: the peer's rules and the invariants."""

    def __init__(self):
        super().__init__()
        self.peer = None
        self.assoc = None
        self.ended = False
        self.errors = []
        self.held = b''
        self.max_pdu = 65536
        #: Only well-formed, expected input so far: a service call must then succeed.
        self.clean = True

    # -- subclasses say how the association takes one step ----------------------

    def step(self) -> None:
        raise NotImplementedError

    def run_association(self, force: bool = False) -> None:
        """Let the association take in every PDU that has fully arrived."""
        pending = self.peer.pending()
        with peak_memory() as peak:
            for _ in range(MAX_STEPS):
                if self.ended:
                    break
                if not (force or self.peer.write_closed
                        or would_act(self.peer.pending(), self.assoc.dul, self.max_pdu)):
                    break
                force = False
                try:
                    self.step()
                except NetDICOMError as exc:
                    assert str(exc), f'{type(exc).__name__} without a message'
                    event(f'association ended: {type(exc).__name__}')
                    self.errors.append(exc)
                    self.ended = True
            else:
                raise AssertionError(f'the association still acts after {MAX_STEPS} steps')
        assert peak[0] < 2 * len(pending) + MEMORY_SLACK, (peak[0], len(pending))
        self.peer.drain()

    def send(self, data: bytes, clean: bool = False) -> None:
        self.clean = self.clean and clean
        self.peer.write(data)
        self.run_association()

    # -- what a hostile peer does ---------------------------------------------

    @rule(value=pdus())
    def send_any_valid_pdu(self, value):
        self.send(value.encode())

    @rule(message=ANY_MESSAGE)
    def send_any_message(self, message):
        msg, pc_id, max_pdu = message
        self.send(message_bytes(msg, pc_id, max_pdu))

    @rule(data=MUTATED)
    def send_mutated(self, data):
        self.send(data)

    @rule(data=st.binary(min_size=1, max_size=64))
    def send_garbage(self, data):
        self.send(data)

    @precondition(lambda self: not self.held)
    @rule(seed=st.integers(0, 3), cut=st.integers(1, 200))
    def send_half_a_pdu(self, seed, cut):
        data = SEEDS[seed]
        cut = min(cut, len(data) - 1)
        self.held = data[cut:]
        self.send(data[:cut])

    @precondition(lambda self: self.held)
    @rule()
    def send_the_other_half(self):
        rest, self.held = self.held, b''
        self.send(rest)

    @rule()
    def fall_silent(self):
        if self.ended:
            return
        # The association waits for a PDU that never comes: a timeout, never a hang.
        # The bound only tells a hang from a timeout; it is no speed check (a loaded
        # CI machine took 5 s for 20 steps of STEP_TIMEOUT).
        started = time.monotonic()
        self.run_association(force=True)
        assert time.monotonic() - started < 20 * STEP_TIMEOUT + 60

    @rule()
    def close_connection(self):
        self.peer.close_write()
        self.run_association()
        assert self.ended, 'the association outlived the closed connection'

    @rule()
    def look(self):
        self.peer.drain()

    # -- invariants -------------------------------------------------------------

    @invariant()
    def state_is_a_ps38_state(self):
        if self.assoc is not None and self.assoc.dul is not None:
            assert self.assoc.dul.state in fsm.STATES

    @invariant()
    def nothing_follows_an_abort(self):
        if self.peer is None:
            return
        kinds = [type(p) for p in self.peer.pdus]
        if pdu.AAbortPDU in kinds:
            assert kinds.index(pdu.AAbortPDU) == len(kinds) - 1, kinds
            assert self.ended

    @invariant()
    def a_failed_association_is_closed(self):
        if self.ended:
            assert self.assoc.dul.sock is None, 'the socket stayed open after the failure'
            self.peer.drain()
            assert self.peer.eof, 'the peer never saw the connection close'

    def teardown(self):
        if self.assoc is not None:
            self.assoc.kill()
        if self.peer is not None:
            self.peer.sock.close()


class AcceptorMachine(AssociationMachine):
    """Our acceptor against a hostile requester, on a socket pair."""

    @initialize(rq=st.one_of(st.none(), associate_rqs()))
    def connect(self, rq):
        self.ae = fuzz_ae()
        self.max_pdu = self.ae.max_pdu_length
        ours, theirs = socket.socketpair()
        self.assoc = AssociationAcceptor(self.ae, theirs, ('127.0.0.1', 104))
        self.peer = PeerEnd(ours, theirs)
        self.phase = 'awaiting A-ASSOCIATE-RQ'
        if rq is not None:
            # Half the runs start associated, so that later steps reach deeper.
            self.send(rq.encode(), clean=True)

    def step(self):
        # The same sequence as AssociationAcceptor.run, one PDU or message at a time.
        if self.phase == 'awaiting A-ASSOCIATE-RQ':
            rq = self.assoc.receive_request()
            try:
                self.assoc.check_request(rq)
                self.ae.on_association_request(self.assoc, rq)
            except AssociationRejectedError as exc:
                self.assoc.reject(exc.result, exc.source, exc.diagnostic)
                self.ended = True
                return
            self.assoc.accept(rq)
            self.phase = 'established'
            return
        msg, pc_id = self.assoc.receive()
        ctx = self.assoc.accepted_contexts[pc_id]
        try:
            self.ae.supported_scp[ctx.sop_class](self.assoc, ctx, msg)
        except NetDICOMError:
            # A service that fails before sending (a peer's Maximum Length Received
            # too small for any PDV) leaves the socket to run()'s finally: do as it does.
            self.assoc.dul.close()
            raise

    @rule(rq=associate_rqs())
    def send_associate_rq(self, rq):
        self.send(rq.encode(), clean=True)

    @rule(msg_id=st.integers(0, 0xFFFF), max_pdu=st.sampled_from([16384, 20, 0]))
    def send_echo(self, msg_id, max_pdu):
        answered = len(self.peer.pdus)
        self.send(message_bytes(echo_rq(msg_id), 1, max_pdu), clean=True)
        if (self.clean and not self.ended and self.phase == 'established'
                and 1 in self.assoc.accepted_contexts):
            event('echo answered on a clean association')
            assert len(self.peer.pdus) > answered
            answer = self.peer.pdus[-1]
            assert isinstance(answer, pdu.PDataTfPDU)
            command = b''.join(item.data_value[1:] for item in answer.data_value_items)
            rsp = dimse.decode_message(command)
            assert isinstance(rsp, dimse.CEchoRSPMessage)
            assert (rsp.message_id_being_responded_to, rsp.status) == (msg_id, 0)

    def teardown(self):
        super().teardown()
        self.ae.server_close()


class RequesterMachine(AssociationMachine):
    """Our requester, associated with a peer that then turns hostile."""

    @initialize(max_length=st.sampled_from([16384, 64, 0]))
    def associate(self, max_length):
        self.ae = ae_module.ClientAE('FUZZ-SCU').add_scu(sopclass.verification_scu)
        self.ae.dcm_timeout = 5
        self.ae.artim_timeout = STEP_TIMEOUT
        listener = socket.create_server(('127.0.0.1', 0))
        listener.settimeout(5)
        accepted = []

        def answer():
            conn, _ = listener.accept()
            rq = read_pdu(conn)
            conn.sendall(associate_ac_for(rq, max_length))
            accepted.append(conn)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        try:
            self.assoc = AssociationRequester(
                self.ae, 16384, {'aet': 'PEER', 'address': '127.0.0.1',
                                 'port': listener.getsockname()[1]})
            self.assoc.request()
        finally:
            thread.join(5)
            listener.close()
        assert accepted, 'the handshake did not complete'
        self.ae.dcm_timeout = STEP_TIMEOUT
        self.max_pdu = 16384
        self.peer = PeerEnd(accepted[0], self.assoc.dul.sock)

    def step(self):
        self.assoc.receive()

    @rule(msg_id=st.integers(0, 0xFFFF), status=st.sampled_from([0, 0x0110, 0xC000]))
    def echo(self, msg_id, status):
        if self.ended or self.peer.write_closed:
            return
        # The peer's answer is on its way before we ask: one thread is enough.
        self.peer.drain()
        before = len(self.peer.pdus)
        self.peer.write(message_bytes(echo_rsp(msg_id, status), 1, 16384))
        try:
            result = self.assoc.get_scu(VERIFICATION)(msg_id)
        except NetDICOMError as exc:
            assert not self.clean, f'a clean echo failed: {exc!r}'
            self.errors.append(exc)
            self.ended = True
        else:
            assert int(result) == status
        self.peer.drain()
        if not self.ended:
            sent = self.peer.pdus[before:]
            assert sent and all(isinstance(p, pdu.PDataTfPDU) for p in sent)
            command = b''.join(item.data_value[1:] for p in sent for item in p.data_value_items)
            assert dimse.decode_message(command).message_id == msg_id

    @rule()
    def release(self):
        if self.ended or self.peer.write_closed:
            return
        self.peer.write(pdu.AReleaseRpPDU().encode())
        try:
            self.assoc.release()
        except NetDICOMError as exc:
            assert not self.clean, f'a clean release failed: {exc!r}'
            self.errors.append(exc)
        self.ended = True
        self.peer.drain()
        assert isinstance(self.peer.pdus[-1], (pdu.AReleaseRqPDU, pdu.AAbortPDU))

    @rule(reason=st.integers(0, 6))
    def abort(self, reason):
        if self.ended:
            return
        self.assoc.abort(reason)
        self.ended = True
        self.peer.drain()
        assert self.peer.pdus and isinstance(self.peer.pdus[-1], pdu.AAbortPDU)
        assert self.peer.pdus[-1].source == 0


TestAcceptorMachine = AcceptorMachine.TestCase
TestAcceptorMachine.settings = budget(400, stateful_step_count=20)
TestRequesterMachine = RequesterMachine.TestCase
TestRequesterMachine.settings = budget(250, stateful_step_count=20)


# -- whole streams through the server's own code path -------------------------------------------

def store_rq(msg_id: int, uid: str, data: bytes) -> dimse.CStoreRQMessage:
    msg = dimse.CStoreRQMessage()
    msg.message_id = msg_id
    msg.affected_sop_class_uid = CT
    msg.affected_sop_instance_uid = uid
    msg.priority = 0
    msg.data_set = data
    return msg


@st.composite
def store_sessions(draw) -> tuple:
    """A whole session a peer sends to a storage AE, maybe hostile, maybe closed."""
    parts = [draw(associate_rqs((VERIFICATION, CT))).encode()] if draw(
        st.integers(0, 9)) else []
    for n in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(['store'] * 4 + ['half store', 'echo', 'message',
                                     'mutated', 'garbage', 'release', 'abort']))
        if kind in ('store', 'half store'):
            uid = draw(st.sampled_from(['1.2.3.4', '1.2.3.5', '1.2.3.4', '../x', '1.2..3']))
            data = draw(st.binary(max_size=3000)).ljust(draw(st.integers(0, 3000)), b'\x00')
            pdus_ = [p.encode() for p in store_rq(n + 1, uid, data).encode(3, 1024)]
            if kind == 'half store':
                pdus_ = pdus_[:draw(st.integers(0, len(pdus_)))]
            parts.append(b''.join(pdus_))
        elif kind == 'echo':
            parts.append(message_bytes(echo_rq(n + 1), 1, 16384))
        elif kind == 'message':
            msg, pc_id, max_pdu = draw(ANY_MESSAGE)
            parts.append(message_bytes(msg, pc_id, max_pdu))
        elif kind == 'mutated':
            parts.append(draw(MUTATED))
        elif kind == 'garbage':
            parts.append(draw(st.binary(min_size=1, max_size=40)))
        elif kind == 'release':
            parts.append(pdu.AReleaseRqPDU().encode())
        else:
            parts.append(pdu.AAbortPDU(0, 0).encode())
    return b''.join(parts), draw(st.sampled_from([True, True, True, False]))


@budget(250)
@given(st.one_of(store_sessions(),
                 st.sampled_from(corpus_values('stream')).map(lambda raw: (raw, True))))
def test_hostile_sessions_through_serve_association(session):
    stream, then_close = session
    with tempfile.TemporaryDirectory() as storage:
        served = serve_stream(stream, then_close, storage)
    # A file under a final name only for a C-STORE answered with success, or for the
    # last one, whose answer may be lost when the association dies right after it
    # (for one, a peer's Maximum Length Received too small for any PDV).
    successes = [msg for msg in served.messages
                 if isinstance(msg, dimse.CStoreRSPMessage) and msg.status == 0]
    assert len(served.files) <= len(successes) + 1
    kinds = [type(p) for p in served.pdus]
    if pdu.AAbortPDU in kinds:
        assert kinds.index(pdu.AAbortPDU) == len(kinds) - 1
    event(f'{len(served.files)} stored')


# -- the requester's handshake against hostile answers ------------------------------------------

ANSWERS = st.one_of(
    st.builds(lambda: None),                                   # a valid AC (built below)
    st.builds(pdu.AAssociateRjPDU, st.integers(1, 2), st.integers(1, 3),
              st.integers(0, 7)).map(lambda p: p.encode()),
    pdus().map(lambda p: p.encode()), MUTATED, st.binary(max_size=64),
    st.just(b''))


@budget(200)
@given(ANSWERS, st.booleans())
def test_requester_handshake_against_hostile_answers(answer, then_close):
    listener = socket.create_server(('127.0.0.1', 0))
    listener.settimeout(5)
    seen = []

    def peer():
        conn, _ = listener.accept()
        with conn:
            rq = read_pdu(conn)
            conn.sendall(associate_ac_for(rq) if answer is None else answer)
            if then_close:
                conn.shutdown(socket.SHUT_WR)
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    seen.append(chunk)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    scu = ae_module.ClientAE('FUZZ-SCU').add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 0.3
    scu.artim_timeout = STEP_TIMEOUT
    requester = AssociationRequester(scu, 16384, {
        'aet': 'PEER', 'address': '127.0.0.1', 'port': listener.getsockname()[1]})
    try:
        requester.request()
    except NetDICOMError as exc:
        assert str(exc)
        event(type(exc).__name__)
        assert requester.dul is None or requester.dul.sock is None, 'socket left open'
    else:
        event('accepted')
        assert requester.association_established
        requester.abort()
    finally:
        thread.join(5)
        listener.close()
    assert not thread.is_alive()
    sent, rest = split_pdus(b''.join(seen))
    for raw in sent:
        pdu.decode_pdu(raw)            # everything we sent decodes
    assert not rest


# -- found by the memory invariant ---------------------------------------------------------------

def test_a_pdata_of_many_tiny_pdvs_stays_within_the_memory_bound(tmp_path):
    # 10 922 PDVs of 6 bytes each (an empty, not-last command fragment) in one PDU
    # of 64 KiB, the AE's maximum length received.
    count = (65536 // 6)
    body = b''.join(struct.pack('>LBB', 2, 1, 0x01) for _ in range(count))
    stream = _RQ_SEED + struct.pack('>BBL', pdu.P_DATA_TF, 0, len(body)) + body
    served = serve_stream(stream, True, str(tmp_path))
    assert isinstance(served.pdus[0], pdu.AAssociateAcPDU)
