"""Associations against real peers: DCMTK's tools and pynetdicom, as separate processes."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import pdu, sopclass, uids, userdataitems
from pynetdicom2.asceprovider import IMPLEMENTATION_UID
from pynetdicom2.exceptions import AssociationAbortedError, AssociationRejectedError
from tests.peers import dcmtk, make_ct_file, run_tool, start_dcmtk_scp, start_pynetdicom_peer


def make_server(ae_class=ae_module.AE, title='OUR_SCP'):
    server = ae_class(title, 0, bind_address='127.0.0.1')
    server.add_scp(sopclass.verification_scp)
    server.dcm_timeout = 5
    return server


def echo(remote_ae, calling='OUR_SCU'):
    scu = ae_module.ClientAE(calling).add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 10
    with scu.request_association(remote_ae) as assoc:
        return assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)


def echoscu(port, *extra):
    return run_tool([dcmtk('echoscu'), '-to', '5', '-ta', '5', '-td', '5', *extra,
                     '-aet', 'DCMTK_SCU', '-aec', 'OUR_SCP', '127.0.0.1', str(port)])


# -- DCMTK and pynetdicom requesting from our AE ---------------------------------------

def test_dcmtk_echoscu_to_our_ae():
    with make_server() as srv:
        result = echoscu(srv.local_ae.port)
    assert result.returncode == 0, result.stdout + result.stderr


def test_our_rejection_reaches_echoscu_with_our_values():
    class Picky(ae_module.AE):
        def on_association_request(self, asce, assoc):
            raise AssociationRejectedError(1, 1, 3)

    with make_server(Picky) as srv:
        result = echoscu(srv.local_ae.port, '-v')
    output = (result.stdout + result.stderr).lower()
    assert result.returncode != 0
    assert 'rejected permanent' in output
    assert 'service user' in output
    assert 'calling ae title not recognized' in output


def test_storescu_user_identity_is_seen_and_can_be_refused(tmp_path):
    seen = []

    class Guarded(ae_module.AE):
        def on_association_request(self, asce, assoc):
            identity = asce.user_identity
            seen.append(identity)
            if identity is None or identity.secondary_field != 'right':
                raise AssociationRejectedError(1, 1, 1)

    ct = make_ct_file(tmp_path / 'ct.dcm')
    with make_server(Guarded) as srv:
        srv.add_scp(sopclass.verification_scp)
        base = [dcmtk('storescu'), '-to', '5', '-ta', '5', '-td', '5', '-aec', 'OUR_SCP',
                '-usr', 'doctor']
        good = run_tool(base + ['-pwd', 'right', '127.0.0.1', str(srv.local_ae.port), str(ct)])
        bad = run_tool(base + ['-pwd', 'wrong', '127.0.0.1', str(srv.local_ae.port), str(ct)])
    assert [(i.user_identity_type, i.primary_field, i.secondary_field) for i in seen] == [
        (2, 'doctor', 'right'), (2, 'doctor', 'wrong')]
    assert 'reject' in (bad.stdout + bad.stderr).lower()
    assert 'reject' not in (good.stdout + good.stderr).lower()


def test_pynetdicom_requester_echo_to_our_ae():
    with make_server() as srv:
        result = run_pynetdicom_echo(srv.local_ae.port)
    assert result.returncode == 0, result.stdout + result.stderr


def run_pynetdicom_echo(port):
    from tests.peers import run_pynetdicom_scu
    return run_pynetdicom_scu(['--scu', 'echo', '--host', '127.0.0.1', '--port', str(port),
                               '--called-aet', 'OUR_SCP'])


# -- our requester against DCMTK and pynetdicom ----------------------------------------

def test_our_echo_to_dcmtk_storescp():
    with start_dcmtk_scp('storescp', ['--ignore', '-aet', 'STORESCP']) as (_, port):
        status = echo({'aet': 'STORESCP', 'address': '127.0.0.1', 'port': port})
    assert status.is_success


def test_our_echo_to_pynetdicom():
    with start_pynetdicom_peer(['--ae-title', 'PYNETDICOM']) as (_, port):
        status = echo({'aet': 'PYNETDICOM', 'address': '127.0.0.1', 'port': port})
    assert status.is_success


def test_pynetdicom_rejection_of_the_called_title_has_its_values():
    with start_pynetdicom_peer(['--ae-title', 'RIGHT', '--require-called-aet']) as (_, port):
        with pytest.raises(AssociationRejectedError) as info:
            echo({'aet': 'WRONG', 'address': '127.0.0.1', 'port': port})
    assert (info.value.result, info.value.source, info.value.diagnostic) == (1, 1, 7)


def test_pynetdicom_rejection_of_the_calling_title_has_its_values():
    args = ['--ae-title', 'PYNETDICOM', '--require-calling-aet', 'FRIEND']
    with start_pynetdicom_peer(args) as (_, port):
        with pytest.raises(AssociationRejectedError) as info:
            echo({'aet': 'PYNETDICOM', 'address': '127.0.0.1', 'port': port}, calling='STRANGER')
    assert (info.value.result, info.value.source, info.value.diagnostic) == (1, 1, 3)


def test_pynetdicom_abort_from_its_handler_is_an_aborted_error():
    with start_pynetdicom_peer(['--ae-title', 'PYNETDICOM', '--abort-on-echo']) as (_, port):
        with pytest.raises(AssociationAbortedError) as info:
            echo({'aet': 'PYNETDICOM', 'address': '127.0.0.1', 'port': port})
    assert info.value.source in (0, 2)


def test_dcmtk_rejection_is_a_rejected_error():
    with start_dcmtk_scp('storescp', ['--refuse', '-aet', 'STORESCP']) as (_, port):
        with pytest.raises(AssociationRejectedError) as info:
            echo({'aet': 'STORESCP', 'address': '127.0.0.1', 'port': port})
    assert info.value.result in (1, 2) and info.value.source in (1, 2, 3)


# -- the AE keeps serving after hostile bytes --------------------------------------------

@pytest.mark.parametrize('payload', [
    b'\x09\x00\x00\x00\x00\x04abcd',
    b'\x01\x00\x7f\xff\xff\xff',
    b'\x01\x00\x00\x00\x00\x40' + b'\x00' * 10,
])
def test_ae_serves_echoscu_after_a_bad_connection(payload):
    with make_server() as srv:
        with socket.create_connection(('127.0.0.1', srv.local_ae.port), timeout=5) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(5)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
        result = echoscu(srv.local_ae.port)
    assert result.returncode == 0, result.stdout + result.stderr


# -- what our A-ASSOCIATE-AC looks like on the wire ------------------------------------

class Proxy:
    """Relay one connection to ``port``, recording the bytes the server sends back."""

    def __init__(self, port):
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.from_server = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(('127.0.0.1', self.target), timeout=10)
        upstream = threading.Thread(target=self._pump, args=(client, server, None), daemon=True)
        upstream.start()
        self._pump(server, client, self.from_server)
        upstream.join(10)
        client.close()
        server.close()

    @staticmethod
    def _pump(src, dst, record):
        src.settimeout(10)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    record.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        self.thread.join(15)
        self.listener.close()


def test_our_ac_to_storescu_carries_our_identity_not_a_copy_of_theirs(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm')
    with make_server() as srv:
        proxy = Proxy(srv.local_ae.port)
        run_tool([dcmtk('storescu'), '-to', '5', '-ta', '5', '-td', '5', '-aet', 'DCMTK_SCU',
                  '-aec', 'OUR_SCP', '-usr', 'doctor', '-pwd', 'secret', '127.0.0.1',
                  str(proxy.port), str(ct)])
        proxy.stop()
    raw = bytes(proxy.from_server)
    assert raw[0] == pdu.A_ASSOCIATE_AC
    length = int.from_bytes(raw[2:6], 'big')
    ac = pdu.AAssociateAcPDU.decode(raw[:6 + length])
    assert raw[10:26] == b'OUR_SCP'.ljust(16)          # called AE title, space padded
    assert raw[26:42] == b'DCMTK_SCU'.ljust(16)        # calling AE title, space padded
    info = ac.user_information.user_data
    assert not any(isinstance(i, userdataitems.UserIdentityNegotiationSubItem) for i in info)
    impl = [i for i in info if isinstance(i, userdataitems.ImplementationClassUIDSubItem)]
    assert impl[0].implementation_class_uid == IMPLEMENTATION_UID
    assert not IMPLEMENTATION_UID.startswith('1.2.276.0.7230010')


def test_identity_reaches_pynetdicom_scp(tmp_path):
    log = tmp_path / 'identity.json'
    args = ['--ae-title', 'PYNETDICOM', '--user-identity-log', str(log)]
    with start_pynetdicom_peer(args) as (_, port):
        status = echo({'aet': 'PYNETDICOM', 'address': '127.0.0.1', 'port': port,
                       'username': 'nurse', 'password': 'pw'})
    assert status.is_success
    record = json.loads(log.read_text().splitlines()[0])
    assert record['type'] == 2
    assert 'nurse' in str(record['primary']) and 'pw' in str(record['secondary'])
