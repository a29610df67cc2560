"""Per-association settings (pynetdicom2.settings, AEBase.settings_for): captured once
when an association starts, overridden per peer, never shared between associations."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import socket
import threading
import time

import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import pdu, sopclass, uids, userdataitems
from pynetdicom2.apps import common
from pynetdicom2.exceptions import AssociationRejectedError, DCMTimeoutError
from pynetdicom2.settings import AssociationSettings, PeerSettings
from tests.fakepeer import FakePeer, associate_ac_for, associate_raw, read_pdu
from tests.test_hostile import read_to_close

VERIFICATION = uids.VERIFICATION_SOP_CLASS
#: How far past its timeout a wait may end on a loaded two-core machine (generous:
#: only the order of events is asserted tightly).
SLACK = 10.0


def client() -> ae_module.ClientAE:
    scu = ae_module.ClientAE('SETTINGS_SCU').add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 30
    return scu


def silent_after_association(limit: float):
    """A peer script: accept the association, read the C-ECHO-RQ, answer nothing;
    returns when we close (or after ``limit`` seconds)."""
    def script(conn):
        rq = read_pdu(conn)
        conn.sendall(associate_ac_for(rq))
        assert read_pdu(conn, timeout=limit)[0] == pdu.P_DATA_TF
        read_to_close(conn, limit)
        return pdu.AAssociateRqPDU.decode(rq)
    return script


def remote(peer: FakePeer, aet: str) -> dict:
    return {'aet': aet, 'address': '127.0.0.1', 'port': peer.port}


# -- AEBase.settings_for and the rules -------------------------------------------------

def test_settings_are_the_ae_attributes_with_the_matching_overrides():
    ae = client()
    ae.dcm_timeout, ae.artim_timeout, ae.max_pdu_length = 7, 3, 32768
    ae.allowed_calling_aets = {'A'}
    ae.add_peer_settings(address='10.1.0.0/16', dcm_timeout=20, max_pdu_length=16384)
    ae.add_peer_settings(ae_title='SLOWMOD', dcm_timeout=120)
    ae.add_peer_settings(ae_title='SLOWMOD', address='::1', artim_timeout=1)

    plain = ae.settings_for('192.168.0.1', 'OTHER')
    assert (plain.dcm_timeout, plain.artim_timeout, plain.max_pdu_length) == (7, 3, 32768)
    assert plain.allowed_calling_aets == frozenset({'A'})
    assert plain.supported_ts == ae.transfer_syntax_preference()
    by_network = ae.settings_for('10.1.200.3', 'OTHER')
    assert (by_network.dcm_timeout, by_network.max_pdu_length) == (20, 16384)
    # The AE title rule comes after the address rule: it wins where both set a value.
    both = ae.settings_for('10.1.200.3', 'SLOWMOD   ')
    assert (both.dcm_timeout, both.max_pdu_length, both.artim_timeout) == (120, 16384, 3)
    assert ae.settings_for('::1', 'SLOWMOD').artim_timeout == 1
    assert ae.settings_for('::ffff:10.1.0.9', None).dcm_timeout == 20   # dual-stack form
    assert ae.settings_for(None, None) == plain
    # The rules touched nothing of the shared AE.
    assert (ae.dcm_timeout, ae.max_pdu_length) == (7, 32768)


def test_settings_follow_every_change_to_the_ae_even_in_place():
    # settings_for keeps the last settings while nothing changed; a set, a list or a
    # dict changed in place is a change too.
    ae = client()
    first = ae.settings_for('127.0.0.1', 'X')
    assert ae.settings_for('127.0.0.1', 'X') == first
    ae.allowed_calling_aets = {'A'}
    assert ae.settings_for('127.0.0.1', 'X').allowed_calling_aets == frozenset({'A'})
    ae.allowed_calling_aets.add('B')
    assert ae.settings_for('127.0.0.1', 'X').allowed_calling_aets == frozenset({'A', 'B'})
    ae.ts_preferences[VERIFICATION] = [uids.IMPLICIT_VR_LITTLE_ENDIAN]
    ae.settings_for('127.0.0.1', 'X')
    ae.ts_preferences[VERIFICATION].insert(0, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert ae.settings_for('127.0.0.1', 'X').ts_preferences[VERIFICATION] == (
        uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN)
    ae.supported_ts = [uids.IMPLICIT_VR_LITTLE_ENDIAN]
    assert ae.settings_for().supported_ts == (uids.IMPLICIT_VR_LITTLE_ENDIAN,)
    ae.supported_ts.append(uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert ae.settings_for().supported_ts == (uids.IMPLICIT_VR_LITTLE_ENDIAN,
                                              uids.EXPLICIT_VR_LITTLE_ENDIAN)
    ae.dcm_timeout = 3
    assert ae.settings_for().dcm_timeout == 3


def test_a_rule_names_only_settings_and_a_real_network():
    ae = client()
    with pytest.raises(TypeError, match='dcm_timeuot'):
        ae.add_peer_settings(ae_title='X', dcm_timeuot=3)
    with pytest.raises(ValueError):
        ae.add_peer_settings(address='10.1.0.0/33', dcm_timeout=3)
    with pytest.raises(TypeError):
        PeerSettings({'dcm_timeout': 3})
    assert ae.peer_settings == []


def test_settings_are_frozen_and_pickle():
    ae = client()
    ae.ts_preferences[VERIFICATION] = [uids.IMPLICIT_VR_LITTLE_ENDIAN]
    settings = ae.settings_for('127.0.0.1', 'X')
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.dcm_timeout = 1
    with pytest.raises(TypeError):
        settings.ts_preferences[VERIFICATION] = ()
    ae.ts_preferences[VERIFICATION] = [uids.EXPLICIT_VR_LITTLE_ENDIAN]
    assert settings.ts_preferences[VERIFICATION] == (uids.IMPLICIT_VR_LITTLE_ENDIAN,)
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings and dict(again.ts_preferences) == dict(settings.ts_preferences)
    assert settings.replace(dcm_timeout=2).dcm_timeout == 2
    assert AssociationSettings(dcm_timeout=4).connect_wait == 4
    assert AssociationSettings(dcm_timeout=4, network_timeout=9).idle_wait == 9


# -- the requester ------------------------------------------------------------------------

def request_to_a_rejecting_peer(ae, called_aet: str) -> pdu.AAssociateRqPDU:
    """The A-ASSOCIATE-RQ ``ae`` sends to ``called_aet``, a peer that rejects it."""
    def script(conn):
        rq = pdu.AAssociateRqPDU.decode(read_pdu(conn))
        conn.sendall(pdu.AAssociateRjPDU(1, 1, 7).encode())
        return rq

    with FakePeer(script) as peer:
        with pytest.raises(AssociationRejectedError):
            with ae.request_association(remote(peer, called_aet)):
                pass
        return peer.stop()


@pytest.mark.socket
def test_the_request_carries_the_peer_maximum_pdu_length_on_the_wire():
    ae = client()
    ae.add_peer_settings(ae_title='SMALLPDU', max_pdu_length=8192)
    rq = request_to_a_rejecting_peer(ae, 'SMALLPDU')
    lengths = [item.maximum_length_received for item in rq.user_information.user_data
               if isinstance(item, userdataitems.MaximumLengthSubItem)]
    assert lengths == [8192]
    assert ae.max_pdu_length == 65536


@pytest.mark.socket
def test_overlapping_requests_each_time_out_after_their_own_dimse_timeout():
    ae = client()
    ae.add_peer_settings(ae_title='FASTPEER', dcm_timeout=0.5)
    ae.add_peer_settings(ae_title='SLOWPEER', dcm_timeout=2.0)
    started = threading.Barrier(2, timeout=20)
    events = {}

    def run(peer, aet):
        with ae.request_association(remote(peer, aet)) as assoc:
            started.wait()            # both associated before either sends its C-ECHO
            begun = time.monotonic()
            try:
                assoc.get_scu(VERIFICATION)(1)
            except DCMTimeoutError:
                events[aet] = (begun, time.monotonic(), assoc.settings.dcm_timeout)
                raise

    peers = [FakePeer(silent_after_association(15)) for _ in range(2)]
    errors = []

    def guarded(peer, aet):
        try:
            run(peer, aet)
        except DCMTimeoutError:
            pass
        except BaseException as exc:     # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(peer, aet))
               for peer, aet in zip(peers, ('FASTPEER', 'SLOWPEER'))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for peer in peers:
            peer.stop()
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    fast_begun, fast_end, fast_timeout = events['FASTPEER']
    slow_begun, slow_end, slow_timeout = events['SLOWPEER']
    assert (fast_timeout, slow_timeout) == (0.5, 2.0)
    # The short one fired first, while the long one was still waiting ...
    assert fast_end < slow_end
    assert slow_begun < fast_end
    # ... each no earlier than its own timeout (and not absurdly late).
    assert 0.5 * 0.9 <= fast_end - fast_begun < 0.5 + SLACK
    assert 2.0 * 0.9 <= slow_end - slow_begun < 2.0 + SLACK
    assert ae.dcm_timeout == 30


@pytest.mark.socket
def test_changing_the_ae_timeout_leaves_a_running_association_alone():
    ae = client()
    ae.dcm_timeout = 0.5
    with FakePeer(silent_after_association(15)) as peer:
        with ae.request_association(remote(peer, 'PEER')) as assoc:
            ae.dcm_timeout = 60          # a 0.9.8 script's way: affects later ones only
            ae.timeout = 60
            begun = time.monotonic()
            with pytest.raises(DCMTimeoutError):
                assoc.get_scu(VERIFICATION)(1)
            waited = time.monotonic() - begun
            assert assoc.settings.dcm_timeout == 0.5
            assert assoc.info.settings is assoc.settings
        peer.stop()
    assert waited < 0.5 + SLACK < 60
    assert ae.settings_for('127.0.0.1', 'PEER').dcm_timeout == 60


@pytest.mark.socket
def test_the_association_answer_waits_acse_timeout_not_dcm_timeout():
    ae = client()                       # dcm_timeout 30
    ae.acse_timeout = 0.5

    def script(conn):
        read_pdu(conn)                  # the A-ASSOCIATE-RQ, never answered
        return read_to_close(conn, 15)

    with FakePeer(script) as peer:
        begun = time.monotonic()
        with pytest.raises(DCMTimeoutError):
            with ae.request_association(remote(peer, 'MUTE')):
                pass
        waited = time.monotonic() - begun
        peer.stop()
    assert 0.5 * 0.9 <= waited < 0.5 + SLACK < 30


# -- the acceptor -------------------------------------------------------------------------

def server() -> ae_module.AE:
    scp = ae_module.AE('SETTINGS_SCP', 0, bind_address='127.0.0.1')
    scp.add_scp(sopclass.verification_scp)
    scp.dcm_timeout = 0.5
    scp.artim_timeout = 5
    return scp


@pytest.mark.socket
def test_a_calling_ae_title_override_applies_to_that_peer_only():
    scp = server()
    scp.add_peer_settings(ae_title='SLOWMOD', dcm_timeout=3.0)
    seen = {}
    scp.on_association_established = lambda info: seen.__setitem__(
        info.calling_ae_title, info.settings)
    closed = {}

    def idle(calling):
        with associate_raw(scp.local_ae.port, VERIFICATION, calling=calling,
                           called='SETTINGS_SCP') as conn:
            begun = time.monotonic()
            data, was_closed = read_to_close(conn, 3.0 + SLACK)
            closed[calling] = (begun, time.monotonic() if was_closed else None, data)

    with scp:
        threads = [threading.Thread(target=idle, args=(aet,)) for aet in ('FASTMOD', 'SLOWMOD')]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(3.0 + SLACK + 10)
    assert not any(thread.is_alive() for thread in threads)
    assert seen['FASTMOD'].dcm_timeout == 0.5 and seen['SLOWMOD'].dcm_timeout == 3.0
    fast_begun, fast_closed, fast_data = closed['FASTMOD']
    slow_begun, slow_closed, slow_data = closed['SLOWMOD']
    assert fast_closed is not None and slow_closed is not None
    # Both idle at once: the default peer was aborted first, while SLOWMOD's went on.
    assert slow_begun < fast_closed < slow_closed
    assert 0.5 * 0.9 <= fast_closed - fast_begun
    assert 3.0 * 0.9 <= slow_closed - slow_begun
    for data in (fast_data, slow_data):
        assert data[:1] == bytes([pdu.A_ABORT])
    assert scp.dcm_timeout == 0.5


@pytest.mark.socket
def test_an_idle_association_waits_network_timeout():
    scp = server()
    scp.dcm_timeout = 30
    scp.network_timeout = 0.5
    with scp:
        with associate_raw(scp.local_ae.port, VERIFICATION, calling='IDLE',
                           called='SETTINGS_SCP') as conn:
            begun = time.monotonic()
            data, closed = read_to_close(conn, 0.5 + SLACK)
            waited = time.monotonic() - begun
    assert closed and data[:1] == bytes([pdu.A_ABORT])
    assert 0.5 * 0.9 <= waited < 0.5 + SLACK < 30


@pytest.mark.socket
def test_an_acceptor_access_rule_by_network():
    scp = server()
    scp.allowed_calling_aets = {'NOBODY'}
    scp.add_peer_settings(address='127.0.0.0/8', allowed_calling_aets=None)
    with scp:
        with associate_raw(scp.local_ae.port, VERIFICATION, calling='ANYONE',
                           called='SETTINGS_SCP') as conn:
            conn.sendall(pdu.AReleaseRqPDU().encode())
            assert read_pdu(conn)[0] == pdu.A_RELEASE_RP


@pytest.mark.socket
def test_per_peer_transfer_syntaxes_on_the_acceptor():
    scp = server()
    scp.add_peer_settings(ae_title='IMPLONLY', supported_ts=[uids.IMPLICIT_VR_LITTLE_ENDIAN])
    results = {}
    with scp:
        for calling in ('IMPLONLY', 'ANYONE'):
            with socket.create_connection(('127.0.0.1', scp.local_ae.port), timeout=5) as conn:
                items = [pdu.ApplicationContextItem(uids.APPLICATION_CONTEXT_NAME),
                         pdu.PresentationContextItemRQ(
                             1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                             [pdu.TransferSyntaxSubItem(uids.EXPLICIT_VR_LITTLE_ENDIAN)]),
                         pdu.UserInformationItem([userdataitems.MaximumLengthSubItem(16384)])]
                conn.sendall(pdu.AAssociateRqPDU('SETTINGS_SCP', calling, items).encode())
                ac = pdu.AAssociateAcPDU.decode(read_pdu(conn))
                results[calling] = ac.presentation_context_items[0].result_reason
                conn.sendall(pdu.AReleaseRqPDU().encode())
                assert read_pdu(conn)[0] == pdu.A_RELEASE_RP
    assert results == {'IMPLONLY': pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED,
                       'ANYONE': pdu.ACCEPTANCE}
    assert uids.EXPLICIT_VR_LITTLE_ENDIAN in scp.supported_ts


@pytest.mark.socket
def test_per_peer_transfer_syntax_preferences_on_the_requester():
    ae = client()
    ae.add_peer_settings(ae_title='IMPLONLY',
                         ts_preferences={VERIFICATION: [uids.IMPLICIT_VR_LITTLE_ENDIAN]})
    proposed = {}
    for aet in ('IMPLONLY', 'OTHER'):
        rq = request_to_a_rejecting_peer(ae, aet)
        proposed[aet] = [ts.name for item in rq.presentation_context_items
                         for ts in item.ts_sub_items]
    assert proposed['IMPLONLY'] == [uids.IMPLICIT_VR_LITTLE_ENDIAN]
    assert proposed['OTHER'] == list(ae.transfer_syntax_preference())
    assert ae.ts_preferences == {}


# -- the tools: no more timeouts swapped on a shared AE -----------------------------------

def test_tool_timeouts_are_captured_per_association():
    tool = type('Tool', (common.PhasedTimeouts, ae_module.ClientAE), {})('TOOL')
    tool.configure_timeouts(argparse.Namespace(connect_timeout=4.0, acse_timeout=5.0,
                                               dimse_timeout=6.0))
    settings = tool.settings_for('127.0.0.1', 'PEER')
    assert (settings.connect_wait, settings.acse_wait, settings.dcm_timeout,
            settings.artim_timeout) == (4.0, 5.0, 6.0, 5.0)
    tool.begin_request()
    tool.wrap_client_socket(None, '127.0.0.1', 4.0)
    assert tool.dcm_timeout == 6.0          # the phases no longer change the AE


def test_a_list_assigned_to_supported_ts_is_the_preference_order():
    # 0.9.x scripts assign a list; every association starts from its order.
    ae = client()
    ae.supported_ts = [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN]
    assert ae.settings_for('127.0.0.1', 'X').supported_ts == (
        uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert ae.choose_transfer_syntax(
        VERIFICATION, [uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN]
    ) == uids.IMPLICIT_VR_LITTLE_ENDIAN
