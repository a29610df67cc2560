"""The association a handler sees (pynetdicom2.context) and the lifecycle hooks of AEBase.

Over loopback, our requester against our acceptor: what ``context.association`` says in
a hook (titles, peer address, contexts, user identity, Move Originator), that a 0.9.8
hook keeps reading ``context`` as a PContextDef, and that established / released /
aborted / timed out reach both ends once each, in order, with the right values.
"""

from __future__ import annotations

import copy
import logging
import pickle
import threading
import time

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from pynetdicom2.context import AssociationInfo, HandlerContext, UserIdentity, for_message
from pynetdicom2.dimse import CStoreRQMessage
from pynetdicom2.exceptions import (
    AssociationAbortedError, DCMTimeoutError, EventHandlingError)
from pynetdicom2.fsm import PContextDef
from tests.peers import make_ct_file

WAIT = 10  # seconds: the bound of every wait for another thread's events


# -- the objects ----------------------------------------------------------------------

def _info(**changes):
    values = dict(calling_ae_title='SCU', called_ae_title='SCP', is_requestor=False,
                  peer_address='127.0.0.1', peer_port=4242,
                  roles={uids.CT_IMAGE_STORAGE: (0, 1)})
    values.update(changes)
    return AssociationInfo(**values)


@pytest.mark.unit
def test_handler_context_is_the_0_9_8_pcontextdef():
    info = _info()
    plain = PContextDef(3, uids.CT_IMAGE_STORAGE, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    ctx = HandlerContext(plain, info)
    assert isinstance(ctx, PContextDef) and isinstance(ctx, tuple)
    assert ctx == plain and hash(ctx) == hash(plain)
    pc_id, sop_class, ts = ctx
    assert (pc_id, sop_class, ts) == (3, uids.CT_IMAGE_STORAGE, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert ctx.supported_ts == ctx[2] == uids.EXPLICIT_VR_LITTLE_ENDIAN
    assert ctx.association is info
    assert ctx.move_originator_aet is None and ctx.move_originator_message_id is None
    replaced = ctx._replace(supported_ts=uids.IMPLICIT_VR_LITTLE_ENDIAN)
    assert replaced.association is info and replaced.supported_ts == uids.IMPLICIT_VR_LITTLE_ENDIAN
    assert copy.deepcopy(ctx) is ctx
    again = pickle.loads(pickle.dumps(ctx))
    assert again == ctx and again.association == info


@pytest.mark.unit
def test_handler_context_and_info_are_immutable():
    info = _info()
    ctx = HandlerContext(PContextDef(1, uids.VERIFICATION_SOP_CLASS, '1.2.840.10008.1.2'), info)
    with pytest.raises(AttributeError):
        ctx.association = None
    with pytest.raises(AttributeError):
        ctx.extra = 1
    with pytest.raises(AttributeError):
        info.calling_ae_title = 'OTHER'
    with pytest.raises(TypeError):
        info.roles[uids.CT_IMAGE_STORAGE] = (1, 1)
    assert info.peer_ae_title == 'SCU' and info.local_ae_title == 'SCP'
    assert _info(is_requestor=True).peer_ae_title == 'SCP'


@pytest.mark.unit
def test_user_identity_repr_hides_the_passcode():
    identity = UserIdentity(2, 'alice', 's3cret', True)
    assert 'alice' in repr(identity) and 's3cret' not in repr(identity)
    assert 's3cret' not in repr(_info(user_identity=identity))


@pytest.mark.unit
def test_for_message_adds_the_move_originator_of_a_c_store():
    ctx = HandlerContext(PContextDef(1, uids.CT_IMAGE_STORAGE, '1.2.840.10008.1.2'), _info())
    rq = CStoreRQMessage()
    assert for_message(ctx, rq) is ctx
    rq.move_originator_aet = 'MOVER'
    rq.move_originator_message_id = 7
    sub = for_message(ctx, rq)
    assert (sub.move_originator_aet, sub.move_originator_message_id) == ('MOVER', 7)
    assert sub.association is ctx.association and sub == ctx
    plain = for_message(PContextDef(*ctx), rq)
    assert plain.move_originator_aet == 'MOVER' and plain.association is None


# -- over the wire ---------------------------------------------------------------------

class Recorder:
    """Lifecycle hooks that record (name, info, extra values); waitable."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = []
        self.changed = threading.Condition()

    def _record(self, *event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_events(self, count):
        deadline = time.monotonic() + WAIT
        with self.changed:
            while len(self.events) < count and time.monotonic() < deadline:
                self.changed.wait(0.1)
            return list(self.events)

    def on_association_established(self, info):
        self._record('established', info)

    def on_association_released(self, info):
        self._record('released', info)

    def on_association_aborted(self, info, source, reason, by_peer):
        self._record('aborted', info, source, reason, by_peer)

    def on_association_timed_out(self, info):
        self._record('timed_out', info)


class Server(Recorder, ae_module.AE):
    def __init__(self, title='CTX_SCP'):
        super().__init__(title, 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.verification_scp)
        self.add_scp(sopclass.storage_scp)
        self.dcm_timeout = 5
        self.artim_timeout = 2
        self.seen = []
        self.echo_action = None

    def on_receive_echo(self, context):
        self.seen.append(context)
        if self.echo_action is not None:
            self.echo_action()
        return 0

    def on_receive_store(self, context, ds):
        self.seen.append(context)
        return 0


class Client(Recorder, ae_module.ClientAE):
    def __init__(self, title='CTX_SCU'):
        super().__init__(title)
        self.add_scu(sopclass.verification_scu)
        self.add_scu(sopclass.storage_scu, [uids.CT_IMAGE_STORAGE])
        self.dcm_timeout = 5


@pytest.fixture
def server():
    with Server() as srv:
        yield srv


def remote(server, **extra):
    return dict(aet='CTX_SCP', address='127.0.0.1', port=server.local_ae.port, **extra)


def names(events):
    return [event[0] for event in events]


def test_handler_reads_titles_address_contexts_and_identity(server):
    server.on_user_identity = lambda asce, identity: b'welcome ' + identity.primary_field.encode()
    scu = Client()
    with scu.request_association(remote(server, username='alice', password='s3cret')) as assoc:
        local_port = assoc.dul.sock.getsockname()[1]
        assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)) == 0
        ours = assoc.info
    (ctx,) = server.seen
    info = ctx.association
    assert ctx.sop_class == uids.VERIFICATION_SOP_CLASS
    assert (info.calling_ae_title, info.called_ae_title) == ('CTX_SCU', 'CTX_SCP')
    assert info.is_requestor is False and info.peer_ae_title == 'CTX_SCU'
    assert (info.peer_address, info.peer_port) == ('127.0.0.1', local_port)
    assert {c.sop_class for c in info.presentation_contexts} == {
        uids.VERIFICATION_SOP_CLASS, uids.CT_IMAGE_STORAGE}
    assert ctx in info.presentation_contexts
    assert info.user_identity == UserIdentity(2, 'alice', 's3cret', True)
    assert info.user_identity_response == 'welcome alice'
    assert info.peer_implementation_class_uid == ae_module.IMPLEMENTATION_UID
    assert info.peer_certificate is None and info.peer_certificate_der is None
    # The requester's side of the same association.
    assert ours.is_requestor is True and ours.peer_ae_title == 'CTX_SCP'
    assert (ours.peer_address, ours.peer_port) == ('127.0.0.1', server.local_ae.port)
    assert ours.user_identity == UserIdentity(2, 'alice', 's3cret', True)
    assert ours.user_identity_response == 'welcome alice'
    assert ours.peer_max_pdu_length == server.max_pdu_length


def test_0_9_8_store_hook_reads_context_as_before(server, tmp_path):
    seen = {}

    class OldStyle(ae_module.AE):
        def on_receive_store(self, context, ds):
            seen['ts'] = context.supported_ts
            seen['sop_class'] = context.sop_class
            pc_id, sop_class, ts = context
            seen['unpacked'] = (pc_id, sop_class, ts)
            seen['name'] = pydicom.dcmread(ds).PatientName
            return 0

    path = make_ct_file(tmp_path / 'ct.dcm')
    with OldStyle('OLD_SCP', 0, bind_address='127.0.0.1') as old:
        old.add_scp(sopclass.storage_scp)
        scu = Client()
        with scu.request_association(dict(aet='OLD_SCP', address='127.0.0.1',
                                          port=old.local_ae.port)) as assoc:
            status = assoc.get_scu(uids.CT_IMAGE_STORAGE)(str(path), 1)
    assert int(status) == 0
    assert seen['sop_class'] == uids.CT_IMAGE_STORAGE
    assert seen['ts'] == pydicom.dcmread(path).file_meta.TransferSyntaxUID
    assert seen['unpacked'][1:] == (seen['sop_class'], seen['ts'])
    assert str(seen['name']) == str(pydicom.dcmread(path).PatientName)


def test_store_sub_operation_carries_move_originator(server, tmp_path):
    path = make_ct_file(tmp_path / 'ct.dcm')
    with Client().request_association(remote(server)) as assoc:
        store = assoc.get_scu(uids.CT_IMAGE_STORAGE)
        assert int(store(str(path), 5, move_originator_aet='MOVER', move_originator_message_id=42)) == 0
        assert int(store(str(path), 6)) == 0
    first, second = server.seen
    assert (first.move_originator_aet, first.move_originator_message_id) == ('MOVER', 42)
    assert first.association.calling_ae_title == 'CTX_SCU'
    assert (second.move_originator_aet, second.move_originator_message_id) == (None, None)
    assert first.association is second.association


# -- lifecycle ---------------------------------------------------------------------------

def test_release_reaches_both_ends_once_in_order(server):
    scu = Client()
    with scu.request_association(remote(server)) as assoc:
        assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
    assert names(scu.events) == ['established', 'released']
    assert names(server.wait_events(2)) == ['established', 'released']
    (_, info), (_, same) = server.events
    assert info is same and info.calling_ae_title == 'CTX_SCU'
    assert scu.events[0][1] is scu.events[1][1] and scu.events[0][1].is_requestor


def test_requester_abort_told_to_both_ends(server):
    scu = Client()
    with pytest.raises(RuntimeError):
        with scu.request_association(remote(server)) as assoc:
            assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
            raise RuntimeError('stop here')
    assert names(scu.events) == ['established', 'aborted']
    assert scu.events[1][2:] == (0, 0, False)
    events = server.wait_events(2)
    assert names(events) == ['established', 'aborted']
    assert events[1][2:] == (0, 0, True)


def test_explicit_abort_reason_goes_to_both_ends(server):
    scu = Client()
    assoc = scu.request_association(remote(server)).__enter__()
    assoc.abort(reason=0)
    assoc.abort()                                   # a second abort tells nothing more
    assert names(scu.events) == ['established', 'aborted']
    assert names(server.wait_events(2)) == ['established', 'aborted']
    assert server.events[1][4] is True


def test_acceptor_abort_by_failing_handler(server, caplog):
    def fail():
        raise ValueError('handler bug')
    server.echo_action = fail
    scu = Client()
    with pytest.raises(AssociationAbortedError) as raised:
        with scu.request_association(remote(server)) as assoc:
            assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
    assert raised.value.source == 0
    events = server.wait_events(2)
    assert names(events) == ['established', 'aborted']
    assert events[1][2:] == (0, 0, False)
    assert names(scu.events) == ['established', 'aborted']
    assert scu.events[1][2:] == (0, 0, True)


def test_acceptor_times_out(server):
    server.dcm_timeout = 0.3
    scu = Client()
    with pytest.raises(AssociationAbortedError):
        with scu.request_association(remote(server)) as assoc:
            assert names(server.wait_events(2)) == ['established', 'timed_out']
            assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
    assert names(server.events) == ['established', 'timed_out']
    assert names(scu.events) == ['established', 'aborted']
    assert scu.events[1][2:] == (0, 0, True)         # the acceptor's A-ABORT (PS3.8 9.3.8)


def test_requester_times_out(server):
    go_on = threading.Event()
    server.echo_action = lambda: go_on.wait(WAIT)
    scu = Client()
    scu.dcm_timeout = 0.3
    try:
        with pytest.raises(DCMTimeoutError):
            with scu.request_association(remote(server)) as assoc:
                assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
    finally:
        go_on.set()
    assert names(scu.events) == ['established', 'timed_out']
    events = server.wait_events(2)
    assert names(events) == ['established', 'aborted']
    assert events[1][2:] == (0, 0, True)


def test_failing_lifecycle_hooks_are_logged_and_change_nothing(server, caplog):
    def broken(*args):
        raise ValueError('hook bug')
    server.on_association_established = broken
    server.on_association_released = broken
    scu = Client()
    scu.on_association_established = broken
    scu.on_association_released = broken
    with caplog.at_level(logging.ERROR, logger='pynetdicom2'):
        for msg_id in (1, 2):
            with scu.request_association(remote(server)) as assoc:
                assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(msg_id)) == 0
            assert assoc.dul.sock is None
        deadline = time.monotonic() + WAIT
        while (sum('on_association_released handler raised' in r.getMessage()
                   for r in caplog.records) < 4 and time.monotonic() < deadline):
            time.sleep(0.02)
    messages = [r.getMessage() for r in caplog.records]
    assert sum('on_association_established handler raised' in m for m in messages) == 4
    assert sum('on_association_released handler raised' in m for m in messages) == 4


def test_rejected_association_has_no_lifecycle(server):
    server.allowed_calling_aets = {'SOMEONE_ELSE'}
    scu = Client()
    with pytest.raises(Exception):
        with scu.request_association(remote(server)):
            pass
    assert scu.events == []
    # The acceptor's thread has finished the rejection once a new association is served.
    server.allowed_calling_aets = None
    with scu.request_association(remote(server)):
        pass
    assert names(server.wait_events(2)) == ['established', 'released']


def test_event_handling_error_keeps_the_association(server):
    def refuse():
        raise EventHandlingError('not now')
    server.echo_action = refuse
    scu = Client()
    with scu.request_association(remote(server)) as assoc:
        assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)) != 0
        assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2)) != 0
    assert names(server.wait_events(2)) == ['established', 'released']


def test_tls_peer_certificate_on_both_ends(pki):
    from pynetdicom2 import tls
    from pynetdicom2.ssl_ae import SSLApplicationEntity, SSLClientAE

    seen = []

    class TLSServer(SSLApplicationEntity):
        def on_receive_echo(self, context):
            seen.append(context.association)
            return 0

    server_ctx = tls.make_context('server', certfile=str(pki / 'server.pem'),
                                  keyfile=str(pki / 'server.key'), cafile=str(pki / 'ca.pem'))
    client_ctx = tls.make_context('client', certfile=str(pki / 'client.pem'),
                                  keyfile=str(pki / 'client.key'), cafile=str(pki / 'ca.pem'))
    with TLSServer(server_ctx, 'TLS_SCP', 0, bind_address='127.0.0.1') as srv:
        srv.add_scp(sopclass.verification_scp)
        scu = SSLClientAE(client_ctx, 'TLS_SCU').add_scu(sopclass.verification_scu)
        scu.dcm_timeout = 5
        remote = {'aet': 'TLS_SCP', 'address': 'localhost', 'port': srv.local_ae.port}
        with scu.request_association(remote) as assoc:
            assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)) == 0
            ours = assoc.info
    (theirs,) = seen

    def common_name(cert):
        return dict(pair[0] for pair in cert['subject'])['commonName']

    assert common_name(theirs.peer_certificate) == 'client'
    assert common_name(ours.peer_certificate) == 'server'
    assert theirs.peer_certificate_der.startswith(b'\x30')      # a DER SEQUENCE
    assert ('DNS', 'client') in theirs.peer_certificate['subjectAltName']
