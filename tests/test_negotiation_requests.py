"""The A-ASSOCIATE-RQ a requester sends, association after association, and the peer
its association reports.

A request made before is sent again from its kept bytes (``negotiation.prepared_rq``):
what a peer receives must still be exactly the request of the values of now. Observed
on the wire, by a scripted peer that answers and keeps the request's bytes.
"""

from __future__ import annotations

import pytest

from pynetdicom2 import asceprovider, negotiation, pdu, sopclass, uids, userdataitems
from pynetdicom2.ae import ClientAE
from pynetdicom2.exceptions import NetDICOMError
from tests.fakepeer import FakePeer, associate_ac_for, read_pdu

pytestmark = pytest.mark.socket          # a scripted peer on 127.0.0.1

ECHO = uids.VERIFICATION_SOP_CLASS


def _answer_and_release(conn):
    """Accept, answer the release, see the requester close; the A-ASSOCIATE-RQ's bytes."""
    rq = read_pdu(conn)
    conn.sendall(associate_ac_for(rq))
    assert read_pdu(conn)[0] == pdu.A_RELEASE_RQ
    conn.sendall(pdu.AReleaseRpPDU().encode())
    # PS3.8 AR-3: the requester closes the transport once the A-RELEASE-RP is read.
    conn.settimeout(5)
    assert conn.recv(1) == b''          # end of stream (a socket still open times out)
    return rq


def client(title='RQ_CACHE'):
    ae = ClientAE(title, max_pdu_length=16384)
    ae.add_scu(sopclass.verification_scu)
    return ae


def associate(ae, change_remote=None, address='127.0.0.1'):
    """One association with a fresh scripted peer: (A-ASSOCIATE-RQ bytes, info)."""
    with FakePeer(_answer_and_release) as peer:
        remote = dict(peer.remote_ae, address=address)
        if change_remote:
            remote.update(change_remote)
        with ae.request_association(remote) as assoc:
            info = assoc.info
        return peer.stop(), info


def user_data(rq_bytes):
    return pdu.AAssociateRqPDU.decode(rq_bytes).user_information.user_data


def test_the_same_request_is_the_same_bytes_and_what_build_rq_makes():
    ae = client()
    first, _ = associate(ae)
    again, _ = associate(ae)
    assert again == first
    requester = asceprovider.AssociationRequester(
        ae, None, {'aet': 'FAKEPEER', 'address': '127.0.0.1', 'port': 1})
    assert negotiation.build_rq(requester).encode() == first


def test_every_value_changed_between_associations_reaches_the_wire(monkeypatch):
    ae = client()
    first, _ = associate(ae)

    ae.max_pdu_length = 32768
    rq = pdu.AAssociateRqPDU.decode(associate(ae)[0])
    assert [item.maximum_length_received for item in rq.user_information.user_data
            if isinstance(item, userdataitems.MaximumLengthSubItem)] == [32768]

    monkeypatch.setattr(asceprovider, 'IMPLEMENTATION_VERSION_NAME', 'OLD_SCRIPT')
    assert [item.implementation_version_name for item in user_data(associate(ae)[0])
            if isinstance(item, userdataitems.ImplementationVersionNameSubItem)] \
        == ['OLD_SCRIPT']
    monkeypatch.undo()

    rq = pdu.AAssociateRqPDU.decode(associate(ae, {'aet': 'OTHER_PEER'})[0])
    assert rq.called_ae_title.strip() == 'OTHER_PEER'

    ae.local_ae.aet = 'RENAMED'
    rq = pdu.AAssociateRqPDU.decode(associate(ae)[0])
    assert rq.calling_ae_title.strip() == 'RENAMED'

    ae.add_scu(sopclass.qr_find_scu, [uids.STUDY_ROOT_FIND_SOP_CLASS])
    rq = pdu.AAssociateRqPDU.decode(associate(ae)[0])
    assert {item.abs_sub_item.name for item in rq.presentation_context_items} == {
        ECHO, uids.STUDY_ROOT_FIND_SOP_CLASS}

    # An identity is made afresh each time: the password sent is today's.
    rq = user_data(associate(ae, {'username': 'alice', 'password': 'secret'})[0])
    identity = [item for item in rq
                if isinstance(item, userdataitems.UserIdentityNegotiationSubItem)]
    assert len(identity) == 1 and identity[0].user_identity_type == 2
    rq = user_data(associate(ae)[0])
    assert not [item for item in rq
                if isinstance(item, userdataitems.UserIdentityNegotiationSubItem)]

    # Back to the first values: the first request again.
    ae.max_pdu_length = 16384
    ae.local_ae.aet = 'RQ_CACHE'
    ae.supported_scu.pop(uids.STUDY_ROOT_FIND_SOP_CLASS)
    ae.context_def_list = {pc_id: ctx for pc_id, ctx in ae.context_def_list.items()
                           if ctx.sop_class == ECHO}
    assert associate(ae)[0] == first


def test_an_ae_title_that_cannot_be_encoded_fails_every_time():
    ae = client()
    for _ in range(2):
        with pytest.raises(NetDICOMError):
            with ae.request_association({'aet': 'X' * 17, 'address': '127.0.0.1',
                                         'port': 1}):
                pass


@pytest.mark.parametrize('address', ['127.0.0.1', 'localhost'])
def test_the_requesters_info_names_the_peer_it_connected_to(address):
    _, info = associate(client(), address=address)
    assert info.peer_address in ('127.0.0.1', '::1')
    assert isinstance(info.peer_port, int) and info.peer_port > 0
