"""Services driven with bytes alone, over an association in memory (tests/memassoc.py).

The peer's PDUs go in as bytes, the service runs as the acceptor's loop runs it
(``service(assoc, context, message)``), and what it answers is read back from the bytes
it sent: no socket, no thread, no timer.
"""

from __future__ import annotations

import os

import pydicom
import pytest

from pynetdicom2 import dimse, pdu, uids
from pynetdicom2.ae import ClientStorageAE
from pynetdicom2.exceptions import AssociationReleasedError, DCMTimeoutError
from pynetdicom2.services.storage import encode_data_set
from pynetdicom2.sopclass import storage_scp, verification_scp
from tests.memassoc import memory_association, messages_in, pdus_of
from tests.peers import make_ct_file

CT = uids.CT_IMAGE_STORAGE
EXPLICIT = uids.EXPLICIT_VR_LITTLE_ENDIAN
VERIFICATION = uids.VERIFICATION_SOP_CLASS


@pytest.fixture
def storage(tmp_path):
    ae = ClientStorageAE(tmp_path / 'store', 'MEMORY')
    assoc, dul = memory_association(ae, {1: (VERIFICATION, EXPLICIT), 3: (CT, EXPLICIT)})
    return ae, assoc, dul


def serve_one(assoc, service) -> None:
    """Receive the next message and hand it to ``service``, as the acceptor's loop does."""
    msg, pc_id = assoc.receive()
    service(assoc, assoc.accepted_contexts[pc_id], msg)


def c_store_rq(ds, msg_id: int = 7) -> dimse.CStoreRQMessage:
    rq = dimse.CStoreRQMessage()
    rq.message_id = msg_id
    rq.affected_sop_class_uid = str(ds.SOPClassUID)
    rq.affected_sop_instance_uid = str(ds.SOPInstanceUID)
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = encode_data_set(ds, EXPLICIT)
    return rq


def test_c_echo_is_answered_with_the_request_message_id(storage):
    _, assoc, dul = storage
    rq = dimse.CEchoRQMessage()
    rq.message_id = 42
    rq.affected_sop_class_uid = VERIFICATION
    dul.feed(pdus_of(rq, 1))
    serve_one(assoc, verification_scp)
    [(rsp, pc_id)] = messages_in(dul.sent)
    assert isinstance(rsp, dimse.CEchoRSPMessage) and pc_id == 1
    assert (rsp.message_id_being_responded_to, rsp.status) == (42, 0x0000)


@pytest.mark.parametrize('max_pdu_length', [16384, 1024, 0])
def test_c_store_in_pdus_of_any_size_keeps_the_file_byte_for_byte(tmp_path, storage,
                                                                    max_pdu_length):
    ae, assoc, dul = storage
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.9',
                                      rows=128, cols=128))
    dul.feed(pdus_of(c_store_rq(ds), 3, max_pdu_length))
    serve_one(assoc, storage_scp)
    [(rsp, pc_id)] = messages_in(dul.sent)
    assert isinstance(rsp, dimse.CStoreRSPMessage) and pc_id == 3
    assert (rsp.message_id_being_responded_to, rsp.status) == (7, 0x0000)
    assert rsp.affected_sop_instance_uid == '1.2.3.9'
    kept = pydicom.dcmread(os.path.join(ae.storage_dir, '1.2.3.9.dcm'))
    assert kept.PixelData == ds.PixelData


def test_a_truncated_data_set_is_refused_and_nothing_is_kept(tmp_path, storage):
    ae, assoc, dul = storage
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.9'))
    rq = c_store_rq(ds)
    rq.data_set = rq.data_set[:-100]     # the sender lost the end of the pixel data
    dul.feed(pdus_of(rq, 3))
    serve_one(assoc, storage_scp)
    [(rsp, _)] = messages_in(dul.sent)
    assert rsp.status == 0xC000 and 'truncated' in rsp.error_comment
    assert os.listdir(ae.storage_dir) == []


def test_nothing_more_from_the_peer_is_a_timeout_and_a_release_ends_it(storage):
    _, assoc, dul = storage
    with pytest.raises(DCMTimeoutError):
        assoc.receive()
    dul.feed(pdu.AReleaseRqPDU().encode())
    with pytest.raises(AssociationReleasedError):
        assoc.receive()
    assert bytes(dul.sent) == pdu.AReleaseRpPDU().encode()
