"""TLS against DCMTK: our TLS client to storescp +tls, echoscu +tls to our TLS AE."""

from __future__ import annotations

import pydicom

from pynetdicom2 import sopclass, tls, uids
from pynetdicom2.ssl_ae import SSLApplicationEntity, SSLClientAE
from tests.peers import dcmtk, run_tool, start_dcmtk_scp


def test_our_tls_client_to_dcmtk_storescp(pki):
    args = ['--ignore', '-aet', 'TLS_SCP', '+tls', str(pki / 'server.key'),
            str(pki / 'server.pem'), '+cf', str(pki / 'ca.pem')]
    with start_dcmtk_scp('storescp', args) as (_, port):
        context = tls.make_context('client', certfile=str(pki / 'client.pem'),
                                   keyfile=str(pki / 'client.key'), cafile=str(pki / 'ca.pem'))
        scu = SSLClientAE(context, 'TLS_SCU').add_scu(sopclass.verification_scu)
        remote = {'aet': 'TLS_SCP', 'address': 'localhost', 'port': port}
        with scu.request_association(remote) as assoc:
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1).is_success


def test_dcmtk_echoscu_over_tls_to_our_ae(pki):
    context = tls.make_context('server', certfile=str(pki / 'server.pem'),
                               keyfile=str(pki / 'server.key'), cafile=str(pki / 'ca.pem'))
    srv = SSLApplicationEntity(context, 'TLS_SCP', 0, bind_address='127.0.0.1')
    srv.add_scp(sopclass.verification_scp)
    with srv:
        result = run_tool([dcmtk('echoscu'), '-to', '5', '-ta', '5', '-td', '5', '-aec',
                           'TLS_SCP', '+tls', str(pki / 'client.key'), str(pki / 'client.pem'),
                           '+cf', str(pki / 'ca.pem'), '127.0.0.1', str(srv.local_ae.port)])
        plain = run_tool([dcmtk('echoscu'), '-to', '5', '-ta', '5', '-td', '5', '-aec',
                          'TLS_SCP', '127.0.0.1', str(srv.local_ae.port)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert plain.returncode != 0        # no TLS, no association


def test_dcmtk_storescu_over_tls_to_our_ae(pki, tmp_path):
    from tests.peers import make_ct_file
    received = []

    class Receiver(SSLApplicationEntity):
        def on_receive_store(self, context, ds):
            received.append(pydicom.dcmread(ds))
            return 0

    ct = make_ct_file(tmp_path / 'ct.dcm')
    context = tls.make_context('server', certfile=str(pki / 'server.pem'),
                               keyfile=str(pki / 'server.key'), cafile=str(pki / 'ca.pem'))
    srv = Receiver(context, 'TLS_SCP', 0, bind_address='127.0.0.1')
    srv.add_scp(sopclass.storage_scp)
    with srv:
        result = run_tool([dcmtk('storescu'), '-to', '5', '-ta', '5', '-td', '5', '-aec',
                           'TLS_SCP', '+tls', str(pki / 'client.key'), str(pki / 'client.pem'),
                           '+cf', str(pki / 'ca.pem'), '127.0.0.1', str(srv.local_ae.port),
                           str(ct)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(received) == 1
    assert received[0].PixelData == pydicom.dcmread(ct).PixelData
