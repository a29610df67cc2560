"""Associations end to end over loopback: our requester, our acceptor, scripted raw peers.

Each row of the error contract (DESIGN.md) is proven here by what the user sees:
the exception class and the wire values it carries.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, pdu, sopclass, uids, userdataitems
from pynetdicom2.association import Association
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, AssociationReleasedError,
    ClassNotSupportedError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError,
    PDUProcessingError)
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services.storage import encode_data_set
from tests import memassoc
from tests.fakepeer import FakePeer, associate_ac_for, read_pdu, read_until_closed
from tests.peers import make_ct_file


def make_server(ae_class=ae_module.AE, title='OUR_SCP'):
    server = ae_class(title, 0, bind_address='127.0.0.1')
    server.add_scp(sopclass.verification_scp)
    server.dcm_timeout = 5
    server.artim_timeout = 2
    return server


def client(title='OUR_SCU'):
    scu = ae_module.ClientAE(title).add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 5
    return scu


def remote(server, aet='OUR_SCP'):
    return {'aet': aet, 'address': '127.0.0.1', 'port': server.local_ae.port}


def echo(scu, remote_ae, msg_id=1):
    with scu.request_association(remote_ae) as assoc:
        return assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(msg_id)


@pytest.fixture
def server():
    with make_server() as srv:
        yield srv


# -- success and negotiation ---------------------------------------------------------

def test_echo_between_our_requester_and_acceptor(server):
    status = echo(client(), remote(server))
    assert int(status) == 0 and status.is_success


def test_port_zero_gives_a_real_port_and_timeout_alias(server):
    assert server.local_ae.port > 0
    assert server.local_ae['port'] == server.local_ae.port
    server.timeout = 3
    assert server.dcm_timeout == 3
    server.dcm_timeout = 4
    assert server.timeout == 4


def test_quit_returns_at_once_when_never_started():
    srv = make_server()
    started = time.monotonic()
    srv.quit()
    assert time.monotonic() - started < 1


def test_negotiation_accepts_by_our_preference_and_refuses_the_rest(server):
    scu = client()
    scu.add_scu(sopclass.verification_scu, [uids.CT_IMAGE_STORAGE])
    with scu.request_association(remote(server)) as assoc:
        accepted = {ctx.sop_class: ctx.supported_ts for ctx in assoc.accepted_contexts.values()}
        results = {item.context_id: item.result_reason
                   for item in assoc.ac.presentation_context_items}
    # Our acceptor prefers explicit VR little endian among the proposed syntaxes.
    assert accepted == {uids.VERIFICATION_SOP_CLASS: uids.EXPLICIT_VR_LITTLE_ENDIAN}
    assert results == {1: 0, 3: 3}   # CT storage: abstract syntax not supported


def test_transfer_syntaxes_not_supported_gives_result_4():
    with make_server() as srv:
        scu = ae_module.ClientAE('OUR_SCU', supported_ts=[uids.JPEG_BASELINE_PROCESS_1])
        scu.add_scu(sopclass.verification_scu)
        with pytest.raises(ClassNotSupportedError, match=uids.VERIFICATION_SOP_CLASS):
            with scu.request_association(remote(srv)) as assoc:
                assert [i.result_reason for i in assoc.ac.presentation_context_items] == [4]
                assoc.get_scu(uids.VERIFICATION_SOP_CLASS)


def test_get_scu_for_a_class_not_accepted_names_the_uid(server):
    scu = client()
    scu.add_scu(sopclass.verification_scu, [uids.CT_IMAGE_STORAGE])
    with scu.request_association(remote(server)) as assoc:
        with pytest.raises(ClassNotSupportedError, match=uids.CT_IMAGE_STORAGE.replace('.', r'\.')):
            assoc.get_scu(uids.CT_IMAGE_STORAGE)
        assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(7).is_success


def test_unknown_remote_ae_key_is_a_type_error_naming_it(server):
    with pytest.raises(TypeError, match='hostname'):
        with client().request_association(dict(remote(server), hostname='x')):
            pass


def test_ac_is_built_from_our_configuration_not_echoed():
    seen = {}

    class Acceptor(ae_module.AE):
        def on_association_request(self, asce, assoc):
            seen['identity'] = asce.user_identity

    with make_server(Acceptor) as srv:
        scu = client()
        scu.max_pdu_length = 32768
        ident = dict(remote(srv), username='alice', password='s3cret')
        with scu.request_association(ident) as assoc:
            ac = assoc.ac
    info = ac.user_information.user_data
    types = [type(item) for item in info]
    assert userdataitems.UserIdentityNegotiationSubItem not in types
    assert userdataitems.UserIdentityNegotiationSubItemAc in types
    max_len = [i for i in info if isinstance(i, userdataitems.MaximumLengthSubItem)][0]
    assert max_len.maximum_length_received == 65536          # ours, not the requester's
    impl = [i for i in info if isinstance(i, userdataitems.ImplementationClassUIDSubItem)][0]
    from pynetdicom2.asceprovider import IMPLEMENTATION_UID
    assert impl.implementation_class_uid == IMPLEMENTATION_UID
    assert seen['identity'].user_identity_type == 2
    # Text fields read as str, as in 0.9.8.
    assert seen['identity'].primary_field == 'alice'
    assert seen['identity'].secondary_field == 's3cret'


# -- rejection ------------------------------------------------------------------------

def test_hook_rejection_reaches_the_requester_with_exact_values():
    class Picky(ae_module.AE):
        def on_association_request(self, asce, assoc):
            raise AssociationRejectedError(1, 1, 3)

    with make_server(Picky) as srv:
        with pytest.raises(AssociationRejectedError) as info:
            echo(client(), remote(srv))
    assert (info.value.result, info.value.source, info.value.diagnostic) == (1, 1, 3)
    assert 'calling-AE-title-not-recognized' in str(info.value)


def test_over_the_association_limit_is_rejected_transient_local_limit():
    with make_server() as srv:
        srv.max_associations = 1
        scu = client()
        with scu.request_association(remote(srv)):
            with pytest.raises(AssociationRejectedError) as info:
                echo(client('SECOND'), remote(srv))
        assert (info.value.result, info.value.source, info.value.diagnostic) == (2, 3, 2)
        # The limit frees up once the first association is released.
        deadline = time.monotonic() + 5
        while srv.active_associations and time.monotonic() < deadline:
            time.sleep(0.01)
        assert echo(scu, remote(srv)).is_success


def test_raw_rejection_values_come_from_the_wire():
    def script(conn):
        read_pdu(conn)
        conn.sendall(pdu.AAssociateRjPDU(2, 3, 1).encode())
        return read_until_closed(conn, 3)

    with FakePeer(script) as peer:
        with pytest.raises(AssociationRejectedError) as info:
            echo(client(), peer.remote_ae)
        peer.stop()
    assert (info.value.result, info.value.source, info.value.diagnostic) == (2, 3, 1)


# -- abort, release, timeout ------------------------------------------------------------

def _accept_then(after_ac):
    def script(conn):
        rq = read_pdu(conn)
        conn.sendall(associate_ac_for(rq))
        return after_ac(conn)
    return script


def test_peer_abort_gives_its_source_and_reason():
    def after(conn):
        read_pdu(conn)                      # the C-ECHO-RQ
        conn.sendall(pdu.AAbortPDU(2, 6).encode())
        return read_until_closed(conn, 3)

    with FakePeer(_accept_then(after)) as peer:
        with pytest.raises(AssociationAbortedError) as info:
            echo(client(), peer.remote_ae)
        peer.stop()
    assert (info.value.source, info.value.reason_diag) == (2, 6)


def test_peer_release_while_we_wait_gives_released_error_and_an_rp():
    def after(conn):
        read_pdu(conn)
        conn.sendall(pdu.AReleaseRqPDU().encode())
        return read_pdu(conn)

    with FakePeer(_accept_then(after)) as peer:
        with pytest.raises(AssociationReleasedError):
            echo(client(), peer.remote_ae)
        answer = peer.stop()
    assert answer[0] == pdu.A_RELEASE_RP


def test_silent_peer_times_out_within_the_dcm_timeout():
    def script(conn):
        read_pdu(conn)
        return read_until_closed(conn, 6)   # says nothing, sees what we do

    scu = client()
    scu.dcm_timeout = 2
    with FakePeer(script) as peer:
        started = time.monotonic()
        with pytest.raises(DCMTimeoutError):
            echo(scu, peer.remote_ae)
        elapsed = time.monotonic() - started
        after_timeout = peer.stop()
    assert elapsed < 2 + 1.5
    # Our side aborted (A-ABORT, source 0) and closed the socket.
    assert after_timeout[:1] == bytes([pdu.A_ABORT])


def test_refused_connection_names_host_and_port_with_oserror_chained():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(NetDICOMError) as info:
        echo(client(), {'aet': 'NOBODY', 'address': '127.0.0.1', 'port': port})
    assert not isinstance(info.value, AssociationAbortedError)
    assert f'127.0.0.1:{port}' in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_garbage_instead_of_ac_is_pdu_error_and_the_peer_gets_provider_abort():
    def script(conn):
        read_pdu(conn)
        conn.sendall(b'\x02\x00\x00\x00\x00\x05hello')
        return read_until_closed(conn, 3)

    with FakePeer(script) as peer:
        with pytest.raises(PDUProcessingError):
            echo(client(), peer.remote_ae)
        sent_back = peer.stop()
    abort = pdu.AAbortPDU.decode(sent_back[:10])
    assert abort.source == 2


# -- a hostile requester against our AE: the AE keeps serving ---------------------------

def _raw_session(port, payload, wait=3.0):
    with socket.create_connection(('127.0.0.1', port), timeout=5) as conn:
        conn.sendall(payload)
        return read_until_closed(conn, wait)


@pytest.mark.parametrize('payload, reason', [
    (b'\x09\x00\x00\x00\x00\x04abcd', 1),                   # unknown PDU type
    (b'\x01\x00\x7f\xff\xff\xff', 6),                        # 2 GiB declared
    (b'\x01\x00\x00\x00\x00\x10' + b'\x00\x01' + b'\x00' * 14, 6),   # short RQ body
])
def test_bad_pdus_abort_that_association_and_the_ae_keeps_serving(server, payload, reason):
    answer = _raw_session(server.local_ae.port, payload)
    abort = pdu.AAbortPDU.decode(answer[:10])
    assert (abort.source, abort.reason_diag) == (2, reason)
    assert echo(client(), remote(server)).is_success


def test_truncated_request_then_close_leaves_the_ae_serving(server):
    _raw_session(server.local_ae.port, b'\x01\x00\x00\x00\x01\x00\x00\x01', wait=1)
    assert echo(client(), remote(server)).is_success


def test_handler_exception_aborts_only_that_association():
    class Broken(ae_module.AE):
        calls = 0

        def on_receive_echo(self, context):
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError('handler bug')
            return 0

    with make_server(Broken) as srv:
        with pytest.raises(AssociationAbortedError) as info:
            echo(client(), remote(srv))
        assert info.value.source == 0
        assert echo(client(), remote(srv)).is_success


def test_event_handling_error_answers_0110_and_keeps_the_association():
    from pynetdicom2.exceptions import EventHandlingError

    class Failing(ae_module.AE):
        def on_receive_echo(self, context):
            raise EventHandlingError('cannot')

    with make_server(Failing) as srv:
        with client().request_association(remote(srv)) as assoc:
            svc = assoc.get_scu(uids.VERIFICATION_SOP_CLASS)
            assert int(svc(1)) == 0x0110
            assert int(svc(2)) == 0x0110


def test_many_sequential_associations_leave_no_threads_behind(server):
    before = threading.active_count()
    scu = client()
    for msg_id in range(20):
        assert echo(scu, remote(server), msg_id + 1).is_success
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def _association_threads(srv) -> list:
    return [t for t in threading.enumerate() if t.name == f'{srv.local_ae.aet} association']


def _settles(predicate, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_back_to_back_associations_reuse_their_thread_until_it_idles_out():
    with make_server() as srv:
        srv.idle_thread_timeout = 0.3
        scu = client()
        seen = set()
        for msg_id in range(10):
            assert echo(scu, remote(srv), msg_id + 1).is_success
            # The thread is handed back once the association is closed.
            assert _settles(lambda: srv.idle_threads == 1)
            seen.update(t.ident for t in _association_threads(srv))
        assert len(seen) == 1
        assert _settles(lambda: not _association_threads(srv))     # idle too long: gone
        assert echo(scu, remote(srv), 11).is_success                # a new one serves


def test_quit_ends_a_thread_whose_association_ends_after_it():
    class SlowToFinish(ae_module.AE):
        def serve_association(self, sock, client_address):
            super().serve_association(sock, client_address)
            finished.wait(10)  # still finishing this association when quit() runs

    finished = threading.Event()
    srv = make_server(SlowToFinish)
    srv.idle_thread_timeout = 60
    others = set(_association_threads(srv))
    with srv:
        assert echo(client(), remote(srv), 1).is_success
        assert _settles(lambda: len(set(_association_threads(srv)) - others) == 1)
    finished.set()  # after quit(): the thread would now wait for the next connection
    assert _settles(lambda: not set(_association_threads(srv)) - others, 2)


def test_quit_ends_idle_association_threads_at_once():
    srv = make_server()
    srv.idle_thread_timeout = 60
    # Threads of the same name an earlier test's server may still be ending: not ours.
    others = set(_association_threads(srv))

    def ours() -> set:
        return set(_association_threads(srv)) - others

    with srv:
        assert echo(client(), remote(srv), 1).is_success
        assert _settles(lambda: len(ours()) == 1)
    assert _settles(lambda: not ours(), 2)


def test_release_collision_is_resolved():
    def after(conn):
        # Answer our A-RELEASE-RQ with one of its own: a collision (PS3.8 9.2.2).
        got = read_pdu(conn)
        assert got[0] == pdu.A_RELEASE_RQ
        conn.sendall(pdu.AReleaseRqPDU().encode())
        rp = read_pdu(conn)                 # the requestor answers first
        conn.sendall(pdu.AReleaseRpPDU().encode())
        return rp

    with FakePeer(_accept_then(after)) as peer:
        with client().request_association(peer.remote_ae):
            pass
        assert peer.stop()[0] == pdu.A_RELEASE_RP


def test_max_pdu_length_of_the_peer_is_honoured():
    def after(conn):
        sizes = []
        pdata = read_pdu(conn)
        sizes.append(struct.unpack('>L', pdata[2:6])[0])
        conn.sendall(pdu.AAbortPDU(0, 0).encode())
        return sizes

    def script(conn):
        rq = read_pdu(conn)
        conn.sendall(associate_ac_for(rq, max_length=32))
        return after(conn)

    with FakePeer(script) as peer:
        with pytest.raises(AssociationAbortedError):
            echo(client(), peer.remote_ae)
        sizes = peer.stop()
    assert all(size <= 32 for size in sizes)


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip('no IPv6 in this Python')
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(('::1', 0))
        probe.close()
    except OSError:
        pytest.skip('no IPv6 loopback on this machine')
    srv = ae_module.AE('OUR_SCP', 0, bind_address='::1')
    srv.add_scp(sopclass.verification_scp)
    with srv:
        status = echo(client(), {'aet': 'OUR_SCP', 'address': '::1', 'port': srv.local_ae.port})
    assert status.is_success


def test_allow_lists_reject_with_the_standard_diagnostics():
    with make_server() as srv:
        srv.allowed_calling_aets = {'FRIEND'}
        with pytest.raises(AssociationRejectedError) as info:
            echo(client('STRANGER'), remote(srv))
        assert (info.value.result, info.value.source, info.value.diagnostic) == (1, 1, 3)
        assert echo(client('FRIEND'), remote(srv)).is_success
        srv.allowed_called_aets = {'OUR_SCP'}
        with pytest.raises(AssociationRejectedError) as info:
            echo(client('FRIEND'), remote(srv, aet='SOMEONE_ELSE'))
        assert (info.value.result, info.value.source, info.value.diagnostic) == (1, 1, 7)


def test_user_identity_hook_can_refuse_and_answer():
    class Checking(ae_module.AE):
        def on_user_identity(self, asce, identity):
            if identity.secondary_field != 'open sesame':
                raise AssociationRejectedError(1, 1, 1)
            return b'welcome'

    with make_server(Checking) as srv:
        with pytest.raises(AssociationRejectedError):
            echo(client(), dict(remote(srv), username='ali', password='wrong'))
        with client().request_association(
                dict(remote(srv), username='ali', password='open sesame')) as assoc:
            answers = [i for i in assoc.ac.user_information.user_data
                       if isinstance(i, userdataitems.UserIdentityNegotiationSubItemAc)]
        assert answers[0].server_response == 'welcome'  # UTF-8 reads as str (0.9.8)


def test_an_ae_can_serve_again_after_quit():
    srv = make_server()
    with srv:
        assert echo(client(), remote(srv)).is_success
    with srv:
        assert echo(client(), remote(srv)).is_success


def test_proposed_transfer_syntaxes_keep_our_preference_order():
    scu = ae_module.ClientAE('ORDER', supported_ts=[uids.IMPLICIT_VR_LITTLE_ENDIAN,
                                                    uids.EXPLICIT_VR_BIG_ENDIAN,
                                                    uids.EXPLICIT_VR_LITTLE_ENDIAN])
    scu.add_scu(sopclass.verification_scu)
    assert list(scu.context_def_list[1].supported_ts) == [
        uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_BIG_ENDIAN,
        uids.EXPLICIT_VR_LITTLE_ENDIAN]


def test_a_failing_response_hook_aborts_the_association():
    class Suspicious(ae_module.ClientAE):
        def on_association_response(self, response):
            raise RuntimeError('not the peer we expected')

    def script(conn):
        rq = read_pdu(conn)
        conn.sendall(associate_ac_for(rq))
        return read_pdu(conn)

    scu = Suspicious('OUR_SCU').add_scu(sopclass.verification_scu)
    with FakePeer(script) as peer:
        with pytest.raises(RuntimeError):
            echo(scu, peer.remote_ae)
        assert peer.stop()[0] == pdu.A_ABORT


def test_a_find_on_the_verification_context_is_answered_0211(server):
    from pynetdicom2 import dimse
    scu = client()
    with scu.request_association(remote(server)) as assoc:
        ctx = assoc.context_for(uids.VERIFICATION_SOP_CLASS)
        rq = dimse.CFindRQMessage()
        rq.message_id = 9
        rq.sop_class_uid = uids.VERIFICATION_SOP_CLASS
        rq.data_set = b''
        assoc.send(rq, ctx.id)
        rsp, _ = assoc.receive()
        assert isinstance(rsp, dimse.CFindRSPMessage)
        assert (rsp.status, rsp.message_id_being_responded_to) == (0x0211, 9)
        assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(10).is_success


@pytest.mark.unit
def test_both_ends_are_the_association_of_the_association_module(monkeypatch):
    from pynetdicom2 import asceprovider, association
    assert asceprovider.Association is association.Association
    for end, requestor in ((asceprovider.AssociationRequester, True),
                           (asceprovider.AssociationAcceptor, False)):
        assert issubclass(end, association.Association)
        assert end.is_requestor is requestor
    # The implementation identity both ends send is asceprovider's, read when they
    # negotiate: a 0.9.x script that sets it changes what goes out.
    monkeypatch.setattr(asceprovider, 'IMPLEMENTATION_UID', '1.2.3.4')
    monkeypatch.setattr(asceprovider, 'IMPLEMENTATION_VERSION_NAME', 'OLD_SCRIPT')
    requester = asceprovider.AssociationRequester(
        ae_module.ClientAE('SCU'), None, {'address': '127.0.0.1', 'port': 104, 'aet': 'SCP'})
    assert (requester.implementation_uid, requester.implementation_version_name) == \
        ('1.2.3.4', 'OLD_SCRIPT')


class _RecordingDUL:
    """Stands in for the upper layer: records the A-ABORT each call would send."""

    peer = 'PEER'
    sock = None

    def __init__(self) -> None:
        self.aborts = []

    def abort(self, source: int, reason: int) -> None:
        self.aborts.append((source, reason))

    def close(self) -> None:
        pass


@pytest.mark.unit
def test_abort_names_say_who_aborts_and_the_old_names_keep_their_meaning():
    from pynetdicom2 import asceprovider
    requester = asceprovider.AssociationRequester(
        ae_module.ClientAE('SCU'), None, {'address': '127.0.0.1', 'port': 104, 'aet': 'SCP'})
    acceptor = asceprovider.AssociationAcceptor(ae_module.ClientAE('SCP'), None)
    for assoc in (requester, acceptor):
        assoc.dul = _RecordingDUL()
        # PS3.8 9.3.8: source 0 is the service user, 2 the service provider.
        assoc.abort_as_user()
        assoc.abort_as_user(1)
        assoc.abort_as_provider(6)
        assoc.abort_provider(2)          # the 0.9.x name of abort_as_provider
        assert assoc.dul.aborts == [(0, 0), (0, 1), (2, 6), (2, 2)]
    # abort() keeps 0.9.8's meaning on each end (API.md): the requester's is a user
    # abort, the acceptor's a provider abort.
    requester.dul, acceptor.dul = _RecordingDUL(), _RecordingDUL()
    requester.abort()
    acceptor.abort()
    assert (requester.dul.aborts, acceptor.dul.aborts) == ([(0, 0)], [(2, 0)])


# -- the data set's PDUs already received (the DUL's buffered_pdv) ---------------------

class _BufferedMemoryDUL(memassoc.MemoryDUL):
    """A MemoryDUL that hands over whole one-PDV P-DATA-TF PDUs as the real DUL's
    ``buffered_pdv`` does (the fast lane of a data set's stream of PDUs); with
    ``hold_every`` n, every n-th PDU is left for ``receive_pdu``, as when it has
    not all arrived yet."""

    hold_every = None
    calls = 0

    def _whole_pdu(self):
        """The length of the whole one-PDV P-DATA-TF at the inbox's start, or None."""
        inbox = self.inbox
        if len(inbox) < 12 or inbox[0] != pdu.P_DATA_TF:
            return None
        length, pdv_length = struct.unpack_from('>L L', inbox, 2)
        if pdv_length != length - 4 or len(inbox) < 6 + length:
            return None
        return 6 + length

    def _take(self, size):
        raw = bytes(self.inbox[:size])
        del self.inbox[:size]
        return raw[10], raw[11], memoryview(raw)[12:]

    def _held(self):
        self.calls += 1
        return self.hold_every and self.calls % self.hold_every == 0

    def buffered_pdv(self):
        if self._held():
            return None
        size = self._whole_pdu()
        return None if size is None else self._take(size)

    def buffered_data_run(self, context_id):
        """As the real DUL's: the data fragments that follow on ``context_id``, none
        the last, until one is not (or is held back)."""
        run = []
        while not self._held():
            size = self._whole_pdu()
            if size is None or self.inbox[10] != context_id or self.inbox[11] & 0x03:
                break
            run.append(self._take(size)[2])
        return run


def _buffered_storage(tmp_path):
    ae = ae_module.ClientStorageAE(tmp_path / 'store', 'MEMORY')
    dul = _BufferedMemoryDUL()
    assoc = Association(ae, dul)
    for pc_id, sop_class in ((1, uids.VERIFICATION_SOP_CLASS), (3, uids.CT_IMAGE_STORAGE)):
        assoc.accepted_contexts[pc_id] = PContextDef(pc_id, sop_class,
                                                     uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assoc.association_established = True
    return ae, assoc, dul


def _ct_store_pdus(tmp_path, max_pdu_length, rows=64):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.9',
                                      rows=rows, cols=64))
    rq = dimse.CStoreRQMessage()
    rq.message_id = 7
    rq.affected_sop_class_uid = str(ds.SOPClassUID)
    rq.affected_sop_instance_uid = '1.2.3.9'
    rq.data_set = encode_data_set(ds, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    return ds, split_pdus(memassoc.pdus_of(rq, 3, max_pdu_length))


def split_pdus(stream: bytes):
    pdus, offset = [], 0
    while offset < len(stream):
        end = offset + 6 + struct.unpack_from('>L', stream, offset + 2)[0]
        pdus.append(stream[offset:end])
        offset = end
    return pdus


@pytest.mark.parametrize('hold_every', [None, 2, 3, 7])
@pytest.mark.parametrize('max_pdu_length, rows', [(1024, 64), (16384, 2048)])
def test_a_data_set_already_received_is_written_whole(tmp_path, hold_every,
                                                       max_pdu_length, rows):
    ae, assoc, dul = _buffered_storage(tmp_path)
    dul.hold_every = hold_every
    ds, pdus = _ct_store_pdus(tmp_path, max_pdu_length, rows)
    assert len(pdus) > 8
    dul.feed(b''.join(pdus))
    msg, pc_id = assoc.receive()
    assert not dul.inbox and pc_id == 3
    sopclass.storage_scp(assoc, assoc.accepted_contexts[pc_id], msg)
    [(rsp, _)] = memassoc.messages_in(dul.sent)
    assert (rsp.message_id_being_responded_to, rsp.status) == (7, 0x0000)
    kept = pydicom.dcmread(os.path.join(ae.storage_dir, '1.2.3.9.dcm'))
    assert kept.PixelData == ds.PixelData


def test_a_fragment_on_another_context_within_a_data_set_aborts(tmp_path):
    ae, assoc, dul = _buffered_storage(tmp_path)
    _, pdus = _ct_store_pdus(tmp_path, 1024)
    moved = bytearray(pdus[-3])
    assert moved[10] == 3 and moved[11] == 0x00        # a data fragment, not the last
    moved[10] = 1                                       # an accepted context, not this one
    dul.feed(b''.join(pdus[:-3]) + bytes(moved) + b''.join(pdus[-2:]))
    with pytest.raises(DIMSEProcessingError) as caught:
        assoc.receive()
    assert str(caught.value) == (
        'from MEMORY-PEER: fragment for presentation context 1 arrived in the middle '
        'of a message on context 3')
    assert dul.aborted == (2, 0)
    assert os.listdir(ae.storage_dir) == []             # the partial file is gone


def test_a_sink_that_fails_within_a_data_set_aborts_naming_the_peer(tmp_path):
    class ClosedMidway:
        """A 0.9.x get_file's file that is closed under the data set's third write."""
        writes = 0

        def write(self, data):
            self.writes += 1
            if self.writes == 3:
                raise ValueError('I/O operation on closed file')
            return len(data)

        def close(self):
            pass

    class FileAE(ae_module.AE):
        def get_file(self, context, command_set):
            return ClosedMidway(), 0

    ae = FileAE('MEMORY', 0)
    ae.add_scp(sopclass.storage_scp)
    dul = _BufferedMemoryDUL()
    assoc = Association(ae, dul)
    assoc.accepted_contexts[3] = PContextDef(3, uids.CT_IMAGE_STORAGE,
                                             uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assoc.association_established = True
    _, pdus = _ct_store_pdus(tmp_path, 1024)
    dul.feed(b''.join(pdus))
    with pytest.raises(DIMSEProcessingError) as caught:
        assoc.receive()
    assert str(caught.value) == (
        'from MEMORY-PEER: writing the data set of CStoreRQMessage to its file failed: '
        'I/O operation on closed file')
    assert dul.aborted == (2, 0)
