"""Drop-in behaviours of 0.9.8 checked on the wire, where its users (and peers) see them.

A data set always starts in a new P-DATA-TF PDU after its command's last fragment
(API.md 7): PS3.8 E.1 would let a small one share that PDU, but GDCM-based peers wait
for it forever, and 0.9.8, DCMTK, pynetdicom and Orthanc never send it so. A raw
socket stands on the other side of each exchange and keeps every PDU our side sends:
our SCU's C-STORE, our SCP's C-FIND responses, and the C-STORE sub-operations of our
C-GET and C-MOVE SCPs.
"""

from __future__ import annotations

import socket
import struct
from typing import List, Optional, Tuple

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, dsutils, pdu, sopclass, uids, userdataitems
from tests.fakepeer import FakePeer, associate_ac_for, read_pdu
from tests.peers import make_ct_file

CT = uids.CT_IMAGE_STORAGE
STUDY_FIND = uids.STUDY_ROOT_FIND_SOP_CLASS
STUDY_MOVE = uids.STUDY_ROOT_MOVE_SOP_CLASS
STUDY_GET = uids.STUDY_ROOT_GET_SOP_CLASS
EXPLICIT_LE = uids.EXPLICIT_VR_LITTLE_ENDIAN
TIMEOUT = 10
MAX_PDU = 16384
A_RELEASE_RP = bytes.fromhex('06 00 00000004 00000000')


# -- reading what the other side sends ----------------------------------------------

def pdvs_of(raw: bytes) -> List[Tuple[int, int, bytes]]:
    """(context ID, message control header, fragment) of each PDV of a P-DATA-TF PDU."""
    pdvs, offset = [], 6
    while offset < len(raw):
        length, context_id, control = struct.unpack_from('>LBB', raw, offset)
        pdvs.append((context_id, control, raw[offset + 6:offset + 4 + length]))
        offset += 4 + length
    assert offset == len(raw)
    return pdvs


class Wire:
    """One socket's received P-DATA-TF PDUs, read a whole DIMSE message at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pdus: List[bytes] = []

    def message(self) -> Tuple[dimse.DIMSEMessage, Optional[bytes]]:
        command, data, msg = b'', b'', None
        for _ in range(10000):
            raw = read_pdu(self.sock, TIMEOUT)
            assert raw is not None and raw[0] == pdu.P_DATA_TF, raw and raw[:1]
            self.pdus.append(raw)
            for context_id, control, fragment in pdvs_of(raw):
                if control & dimse.COMMAND_FRAGMENT:
                    command += fragment
                    if control & dimse.LAST_FRAGMENT:
                        msg = dimse.decode_message(command)
                        msg.context_id = context_id
                        if not msg.has_data_set:
                            return msg, None
                else:
                    data += fragment
                    if control & dimse.LAST_FRAGMENT:
                        return msg, data
        raise AssertionError('no complete message in 10000 PDUs')

    def send(self, msg: dimse.DIMSEMessage, pc_id: int) -> None:
        self.sock.sendall(b''.join(p.encode() for p in msg.encode(pc_id, MAX_PDU)))

    def release(self) -> None:
        raw = read_pdu(self.sock, TIMEOUT)
        assert raw is not None and raw[0] == pdu.A_RELEASE_RQ
        self.sock.sendall(A_RELEASE_RP)


def assert_every_data_set_starts_a_new_pdu(pdus: List[bytes]) -> int:
    """No PDU holds both command and data fragments (nor more than one PDV); the PDU
    after a command's last fragment starts the data set. Returns the data sets seen."""
    data_sets = 0
    after_last_command = False
    for raw in pdus:
        pdvs = pdvs_of(raw)
        assert len(pdvs) == 1, [control for _, control, _ in pdvs]
        control = pdvs[0][1]
        if after_last_command and not control & dimse.COMMAND_FRAGMENT:
            data_sets += 1
        after_last_command = control == dimse.COMMAND_FRAGMENT | dimse.LAST_FRAGMENT
    return data_sets


def store_response(rq: dimse.DIMSEMessage) -> dimse.CStoreRSPMessage:
    rsp = dimse.CStoreRSPMessage()
    rsp.message_id_being_responded_to = rq.message_id
    rsp.sop_class_uid = rq.sop_class_uid
    rsp.affected_sop_instance_uid = rq.affected_sop_instance_uid
    rsp.status = 0x0000
    return rsp


def storage_destination(conn: socket.socket) -> List[bytes]:
    """A C-STORE SCP by hand: accept, answer one C-STORE-RQ with Success, release."""
    rq_bytes = read_pdu(conn, TIMEOUT)
    assert rq_bytes is not None and rq_bytes[0] == pdu.A_ASSOCIATE_RQ
    conn.sendall(associate_ac_for(rq_bytes, MAX_PDU))
    wire = Wire(conn)
    rq, data = wire.message()
    assert isinstance(rq, dimse.CStoreRQMessage) and data
    wire.send(store_response(rq), rq.context_id)
    wire.release()
    return wire.pdus


def tiny_ct(tmp_path) -> pydicom.Dataset:
    # 16 x 16 pixels: command and data set together are far below one PDU.
    return pydicom.dcmread(make_ct_file(tmp_path / 'tiny.dcm', rows=16, cols=16))


def associate(port: int, called: str, contexts: List[Tuple[int, str]],
              roles: List[str] = ()) -> socket.socket:
    """Associate by hand, each (context ID, abstract syntax) in explicit VR LE; the
    SOP classes in ``roles`` are proposed with the SCP role (a C-GET requester)."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT)
    items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1')]
    items += [pdu.PresentationContextItemRQ(ctx_id, pdu.AbstractSyntaxSubItem(uid),
                                            [pdu.TransferSyntaxSubItem(EXPLICIT_LE)])
              for ctx_id, uid in contexts]
    items.append(pdu.UserInformationItem(
        [userdataitems.MaximumLengthSubItem(MAX_PDU),
         userdataitems.ImplementationClassUIDSubItem('1.2.3.4')]
        + [userdataitems.ScpScuRoleSelectionSubItem(uid, 0, 1) for uid in roles]))
    sock.sendall(pdu.AAssociateRqPDU(called, 'RAW_SCU', items).encode())
    answer = read_pdu(sock, TIMEOUT)
    assert answer is not None and answer[0] == pdu.A_ASSOCIATE_AC, answer
    return sock


def request(cls, sop_class: str, identifier: Dataset, **fields) -> dimse.DIMSEMessage:
    msg = cls()
    msg.message_id = 1
    msg.sop_class_uid = sop_class
    msg.priority = dimse.PRIORITY_MEDIUM
    for name, value in fields.items():
        setattr(msg, name, value)
    msg.data_set = dsutils.encode(identifier, False, True)
    return msg


def study_query() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = 'STUDY'
    ds.StudyInstanceUID = ''
    ds.PatientName = ''
    return ds


class Archive(ae_module.AE):
    """A 0.9.8-style SCP: find, get and move answered by the hooks of a subclass."""

    def __init__(self, matches=(), instances=(), destination=None):
        super().__init__('ARCHIVE', 0, bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.add_scp(sopclass.qr_find_scp)
        self.add_scp(sopclass.qr_get_scp)
        self.add_scp(sopclass.qr_move_scp)
        self.add_scu(sopclass.storage_scu, [CT])
        self.matches = list(matches)
        self.instances = list(instances)
        self.destination = destination

    def on_receive_find(self, context, ds):
        for match in self.matches:
            yield match, 0xFF00

    def on_receive_get(self, context, ds):
        return len(self.instances), iter(self.instances)

    def on_receive_move(self, context, ds, destination):
        return self.destination, len(self.instances), iter(self.instances)


# -- the tests ----------------------------------------------------------------------

def test_our_scu_sends_a_c_store_data_set_in_a_pdu_of_its_own(tmp_path):
    with FakePeer(storage_destination, timeout=TIMEOUT) as peer:
        scu = ae_module.ClientAE('OUR_SCU').add_scu(sopclass.storage_scu, [CT])
        scu.dcm_timeout = TIMEOUT
        with scu.request_association(peer.remote_ae) as assoc:
            status = assoc.get_scu(CT)(make_ct_file(tmp_path / 'ct.dcm', rows=16, cols=16), 1)
        pdus = peer.stop()
    assert peer.error is None and int(status) == 0
    # The command and this small data set would fit one PDU together; they do not share.
    assert len(pdus) == 2 and len(pdus[0]) + len(pdus[1]) - 6 < MAX_PDU
    assert assert_every_data_set_starts_a_new_pdu(pdus) == 1


def test_our_scp_sends_each_c_find_match_in_a_pdu_of_its_own():
    matches = []
    for n in range(3):
        match = Dataset()
        match.QueryRetrieveLevel = 'STUDY'
        match.StudyInstanceUID = f'1.2.3.{n}'
        match.PatientName = f'DOE^{n}'
        matches.append(match)
    with Archive(matches=matches) as archive:
        sock = associate(archive.local_ae.port, 'ARCHIVE', [(1, STUDY_FIND)])
        with sock:
            wire = Wire(sock)
            wire.send(request(dimse.CFindRQMessage, STUDY_FIND, study_query()), 1)
            found = []
            for _ in range(10):
                rsp, data = wire.message()
                if rsp.status != 0xFF00:
                    break
                found.append(dsutils.decode(data, False, True).StudyInstanceUID)
            wire.sock.sendall(pdu.AReleaseRqPDU().encode())
    assert rsp.status == 0x0000 and found == ['1.2.3.0', '1.2.3.1', '1.2.3.2']
    assert assert_every_data_set_starts_a_new_pdu(wire.pdus) == 3


def test_our_c_get_scp_sends_each_sub_operation_data_set_in_a_pdu_of_its_own(tmp_path):
    with Archive(instances=[tiny_ct(tmp_path)]) as archive:
        sock = associate(archive.local_ae.port, 'ARCHIVE', [(1, STUDY_GET), (3, CT)],
                         roles=[CT])
        with sock:
            wire = Wire(sock)
            wire.send(request(dimse.CGetRQMessage, STUDY_GET, study_query()), 1)
            stored = []
            for _ in range(10):
                msg, data = wire.message()
                if isinstance(msg, dimse.CStoreRQMessage):
                    stored.append(len(data))
                    wire.send(store_response(msg), msg.context_id)
                elif msg.status != 0xFF00:
                    break
            wire.sock.sendall(pdu.AReleaseRqPDU().encode())
    assert msg.status == 0x0000 and len(stored) == 1
    store_pdus = [raw for raw in wire.pdus if pdvs_of(raw)[0][0] == 3]
    assert len(store_pdus) == 2
    assert assert_every_data_set_starts_a_new_pdu(wire.pdus) == 1


def test_our_c_move_scp_sends_each_sub_operation_data_set_in_a_pdu_of_its_own(tmp_path):
    with FakePeer(storage_destination, timeout=TIMEOUT) as destination:
        with Archive(instances=[tiny_ct(tmp_path)], destination=destination.remote_ae) \
                as archive:
            scu = ae_module.ClientAE('OUR_SCU').add_scu(sopclass.qr_move_scu)
            scu.dcm_timeout = TIMEOUT
            with scu.request_association({'aet': 'ARCHIVE', 'address': '127.0.0.1',
                                          'port': archive.local_ae.port}) as assoc:
                responses = list(assoc.get_scu(STUDY_MOVE)(study_query(), 'FAKEPEER', 1))
        pdus = destination.stop()
    assert destination.error is None
    assert int(responses[-1][0]) == 0x0000
    assert len(pdus) == 2
    assert assert_every_data_set_starts_a_new_pdu(pdus) == 1


@pytest.mark.parametrize('cls', [getattr(dimse, name) for name in (
    'CStoreRQMessage', 'CFindRSPMessage', 'CMoveRQMessage', 'NActionRQMessage')])
def test_a_fresh_message_reads_every_field_as_0_9_8_did(cls):
    # 0.9.8 scripts read msg.command_set.<Keyword> on a message they just made.
    msg = cls()
    for keyword in cls.command_fields:
        assert hasattr(msg.command_set, keyword), keyword
    assert msg.command_set.CommandField == cls.command_field
