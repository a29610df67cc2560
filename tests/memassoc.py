"""An established association in memory: services tested with bytes alone.

``MemoryDUL`` stands where the DUL provider stands under an ``Association``: what the
peer sends is bytes given to ``feed``, what we send collects in ``sent``, and no socket,
thread or timer is involved (as h11 tests its state machine). ``memory_association``
gives an ``Association`` in Sta6 over it with the contexts asked for; ``pdus_of``
frames a DIMSE message as a peer would send it; ``messages_in`` reads back what we sent.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from pynetdicom2 import pdu, reassembly
from pynetdicom2.association import Association
from pynetdicom2.exceptions import DCMTimeoutError
from pynetdicom2.fragmentation import PDataFragments
from pynetdicom2.fsm import PContextDef


class MemoryDUL:
    """The DUL of an established association (Sta6), in memory."""

    is_requestor = False

    def __init__(self, peer: str = 'MEMORY-PEER') -> None:
        self.peer = peer
        self.state = 'Sta6'
        self.inbox = bytearray()
        self.sent = bytearray()
        self.max_pdu_length = 0
        self.artim_timeout = None
        self.sock = None
        self.aborted = None

    def feed(self, data: bytes) -> None:
        """Bytes the peer sent."""
        self.inbox += data

    # -- what Association calls -----------------------------------------------------

    def send_pdata(self, buffers, timeout) -> None:
        for buffer in buffers:
            self.sent += buffer

    def buffered_pdv(self):
        return None  # every PDU takes receive_pdu here

    def buffered_data_run(self, context_id):
        return []

    def receive_data_run(self, context_id, timeout):
        return self.buffered_data_run(context_id)  # no waiting in memory

    def data_waiting(self) -> bool:
        return bool(self.inbox)

    def receive_pdu(self, timeout):
        if len(self.inbox) < pdu.PDU_HEADER_LENGTH:
            raise DCMTimeoutError(f'nothing more from {self.peer}')
        pdu_type, length = pdu.parse_pdu_header(bytes(self.inbox[:pdu.PDU_HEADER_LENGTH]))
        end = pdu.PDU_HEADER_LENGTH + length
        if len(self.inbox) < end:
            raise DCMTimeoutError(f'{self.peer} sent part of a PDU')
        raw = bytes(self.inbox[:end])
        del self.inbox[:end]
        if pdu_type == pdu.P_DATA_TF:
            return PDataFragments(memoryview(raw)[pdu.PDU_HEADER_LENGTH:])
        return pdu.decode_pdu(raw)

    def send_release_rp(self, *args, **kwargs) -> None:
        self.sent += pdu.AReleaseRpPDU().encode()
        self.state = 'Sta1'

    def abort(self, *args, **kwargs) -> None:
        self.aborted = args
        self.state = 'Sta1'

    def close(self) -> None:
        self.state = 'Sta1'


def memory_association(ae, contexts: Dict[int, Tuple[str, str]]) -> Tuple[Association,
                                                                            MemoryDUL]:
    """An established ``Association`` of ``ae`` over a ``MemoryDUL``, with the
    presentation contexts ``{id: (SOP class, transfer syntax)}`` accepted."""
    dul = MemoryDUL()
    assoc = Association(ae, dul)
    for pc_id, (sop_class, ts) in contexts.items():
        assoc.accepted_contexts[pc_id] = PContextDef(pc_id, sop_class, ts)
    assoc.association_established = True
    return assoc, dul


def pdus_of(msg, pc_id: int, max_pdu_length: int = 16384) -> bytes:
    """The P-DATA-TF PDUs a peer sends for the DIMSE message ``msg`` on ``pc_id``."""
    return b''.join(bytes(buffer) for batch in msg.iter_pdu_batches(pc_id, max_pdu_length)
                    for buffer in batch)


def messages_in(sent: bytes) -> List[Tuple[object, int]]:
    """The DIMSE messages (with their context IDs) in bytes of P-DATA-TF PDUs."""
    assembler = reassembly.MessageAssembler(None, None)
    found = []
    view = memoryview(bytes(sent))
    while view:
        pdu_type, length = pdu.parse_pdu_header(view[:pdu.PDU_HEADER_LENGTH])
        assert pdu_type == pdu.P_DATA_TF, f'PDU type 0x{pdu_type:02X} among the DIMSE messages'
        body = view[pdu.PDU_HEADER_LENGTH:pdu.PDU_HEADER_LENGTH + length]
        for context_id, control, fragment in PDataFragments(body):
            msg = assembler.feed(context_id, control, fragment)
            if msg is not None:
                found.append((msg, context_id))
        view = view[pdu.PDU_HEADER_LENGTH + length:]
    return found
