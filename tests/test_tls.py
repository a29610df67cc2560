"""TLS: our client and server with the DICOM profiles, failures, and a stalled handshake."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from pynetdicom2 import sopclass, tls, uids
from pynetdicom2.exceptions import AssociationAbortedError, NetDICOMError
from pynetdicom2.ssl_ae import SSLApplicationEntity, SSLClientAE


def server_ae(pki, title='TLS_SCP'):
    context = tls.make_context('server', certfile=str(pki / 'server.pem'),
                               keyfile=str(pki / 'server.key'), cafile=str(pki / 'ca.pem'))
    srv = SSLApplicationEntity(context, title, 0, bind_address='127.0.0.1')
    srv.add_scp(sopclass.verification_scp)
    srv.artim_timeout = 3
    return srv


def client_ae(pki, cafile='ca.pem', cert='client'):
    context = tls.make_context('client', certfile=str(pki / f'{cert}.pem'),
                               keyfile=str(pki / f'{cert}.key'), cafile=str(pki / cafile))
    scu = SSLClientAE(context, 'TLS_SCU').add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 5
    return scu


def echo(scu, address, port, aet='TLS_SCP'):
    with scu.request_association({'aet': aet, 'address': address, 'port': port}) as assoc:
        return assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)


@pytest.mark.unit
@pytest.mark.parametrize('profile', sorted(tls.PROFILES))
def test_profiles_refuse_anything_older_than_tls_1_2(profile):
    context = tls.make_context('client', profile=profile, verify_peer=False)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_mutual_tls_echo(pki):
    with server_ae(pki) as srv:
        assert echo(client_ae(pki), 'localhost', srv.local_ae.port).is_success
        assert echo(client_ae(pki), '127.0.0.1', srv.local_ae.port).is_success


def test_untrusted_server_is_a_netdicom_error_with_the_ssl_error_chained(pki):
    with server_ae(pki) as srv:
        with pytest.raises(NetDICOMError) as info:
            echo(client_ae(pki, cafile='rogue.pem'), 'localhost', srv.local_ae.port)
        assert isinstance(info.value.__cause__, ssl.SSLError)
        assert 'TLS' in str(info.value)
        # The server keeps serving after the failed handshake.
        assert echo(client_ae(pki), 'localhost', srv.local_ae.port).is_success


def test_client_checks_the_server_hostname(pki):
    context = tls.make_context('server', certfile=str(pki / 'other.pem'),
                               keyfile=str(pki / 'other.key'), cafile=str(pki / 'ca.pem'))
    srv = SSLApplicationEntity(context, 'TLS_SCP', 0, bind_address='127.0.0.1')
    srv.add_scp(sopclass.verification_scp)
    with srv:
        # The certificate names elsewhere.example, not localhost.
        with pytest.raises(AssociationAbortedError) as info:
            echo(client_ae(pki), 'localhost', srv.local_ae.port)
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert 'localhost' in str(info.value)


def test_client_without_a_trusted_certificate_is_refused_by_the_server(pki):
    with server_ae(pki) as srv:
        with pytest.raises(NetDICOMError):
            echo(_client_with_rogue_cert(pki), 'localhost', srv.local_ae.port)
        assert echo(client_ae(pki), 'localhost', srv.local_ae.port).is_success


def _client_with_rogue_cert(pki):
    context = tls.make_context('client', certfile=str(pki / 'rogue.pem'),
                               keyfile=str(pki / 'rogue.key'), cafile=str(pki / 'ca.pem'))
    scu = SSLClientAE(context, 'TLS_SCU').add_scu(sopclass.verification_scu)
    scu.dcm_timeout = 5
    return scu


def test_a_stalled_handshake_does_not_block_other_associations(pki):
    with server_ae(pki) as srv:
        with socket.create_connection(('127.0.0.1', srv.local_ae.port), timeout=5):
            started = time.monotonic()
            assert echo(client_ae(pki), 'localhost', srv.local_ae.port).is_success
            assert time.monotonic() - started < 2.5


def test_an_expired_server_certificate_is_refused_with_the_ssl_error_chained(pki):
    context = tls.make_context('server', certfile=str(pki / 'expired.pem'),
                               keyfile=str(pki / 'expired.key'), cafile=str(pki / 'ca.pem'))
    srv = SSLApplicationEntity(context, 'TLS_SCP', 0, bind_address='127.0.0.1')
    srv.add_scp(sopclass.verification_scp)
    with srv:
        with pytest.raises(AssociationAbortedError) as info:
            echo(client_ae(pki), 'localhost', srv.local_ae.port)
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert 'expired' in str(info.value)
