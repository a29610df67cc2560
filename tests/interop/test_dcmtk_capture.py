"""Decode the A-ASSOCIATE-RQ that DCMTK's echoscu really sends, and answer it with our RJ."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from pynetdicom2 import pdu
from pynetdicom2 import userdataitems as udi

ECHOSCU = '/usr/bin/echoscu'   # by path: pynetdicom installs an 'echoscu' of its own

pytestmark = pytest.mark.skipif(not os.access(ECHOSCU, os.X_OK),
                                reason='DCMTK echoscu missing (apt-get install dcmtk)')


def receive_pdu(conn: socket.socket, timeout: float = 10.0) -> bytes:
    """One whole PDU from ``conn``, bounded in time and in reads."""
    deadline = time.monotonic() + timeout
    data = b''
    needed = pdu.PDU_HEADER_LENGTH
    for _ in range(1000):
        if len(data) >= needed:
            break
        conn.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = conn.recv(65536)
        assert chunk, f'peer closed after {len(data)} bytes'
        data += chunk
        if len(data) >= pdu.PDU_HEADER_LENGTH:
            needed = pdu.PDU_HEADER_LENGTH + pdu.parse_pdu_header(data[:6])[1]
        assert time.monotonic() < deadline, 'no whole PDU in time'
    assert len(data) == needed
    return data


def without_dcmtk_reserved_quirk(raw: bytes) -> bytes:
    """``raw`` with the reserved fields of each presentation context item set to zero.

    DCMTK sends 0xFF in the third reserved byte of an A-ASSOCIATE-RQ presentation
    context item; PS3.8 9.3.2.2 says "sent with a value 00H but not tested", and we
    send zeros. Every other byte must round-trip exactly.
    """
    data = bytearray(raw)
    pos = 74   # first variable item, PS3.8 9.3.2
    for _ in range(300):
        if pos >= len(data):
            break
        item_type = data[pos]
        length = int.from_bytes(data[pos + 2:pos + 4], 'big')
        if item_type == pdu.PRESENTATION_CONTEXT_ITEM_RQ:
            assert set(data[pos + 5:pos + 8]) <= {0x00, 0xFF}
            data[pos + 5:pos + 8] = bytes(3)
        pos += 4 + length
    return bytes(data)


def test_echoscu_association_request():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(('127.0.0.1', 0))
        server.listen(1)
        server.settimeout(10)
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [ECHOSCU, '-aet', 'CAPTURE_SCU', '-aec', 'CAPTURE_SCP', '-to', '5', '-ta', '5',
             '127.0.0.1', str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            conn, _ = server.accept()
            with conn:
                raw = receive_pdu(conn)
                # Called AE title not recognized: source 1, diagnostic 7 (PS3.8 9.3.4).
                conn.sendall(pdu.AAssociateRjPDU(1, 1, 7).encode())
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)

    rq = pdu.decode_pdu(raw)
    assert isinstance(rq, pdu.AAssociateRqPDU)
    assert (rq.called_ae_title, rq.calling_ae_title) == ('CAPTURE_SCP', 'CAPTURE_SCU')
    assert rq.protocol_version == 1
    assert rq.application_context_name == '1.2.840.10008.3.1.1.1'

    contexts = rq.presentation_context_items
    assert len(contexts) == 1
    assert contexts[0].context_id == 1
    assert contexts[0].abs_sub_item.name == '1.2.840.10008.1.1'
    assert '1.2.840.10008.1.2' in [ts.name for ts in contexts[0].ts_sub_items]

    user_data = {type(sub): sub for sub in rq.user_information.user_data}
    assert user_data[udi.MaximumLengthSubItem].maximum_length_received == 16384
    assert user_data[udi.ImplementationClassUIDSubItem].implementation_class_uid.startswith(
        '1.2.276.0.7230010.3')
    assert user_data[udi.ImplementationVersionNameSubItem].implementation_version_name \
        .startswith('OFFIS_DCMTK')

    assert rq.encode() == without_dcmtk_reserved_quirk(raw)
    assert pdu.decode_pdu(rq.encode()) == rq

    # echoscu understood our A-ASSOCIATE-RJ.
    assert proc.returncode != 0
    assert b'Called AE Title Not Recognized' in out + err
