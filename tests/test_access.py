"""Access by address (issue 17, item 5): ``allowed_networks``/``denied_networks`` of an
acceptor, per peer like every setting; the dual-stack default bind; ``[::1]`` peers."""

from __future__ import annotations

import logging
import socket

import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import aeserver
from pynetdicom2 import pdu, sopclass, uids, userdataitems, verify
from pynetdicom2.exceptions import AssociationRejectedError
from pynetdicom2.settings import AssociationSettings, networks, plain_address
from tests.fakepeer import read_pdu

# Network tests: our servers on loopback addresses (tests/conftest.py layers).
pytestmark = pytest.mark.socket

VERIFICATION = uids.VERIFICATION_SOP_CLASS


def server(**kwargs) -> ae_module.AE:
    kwargs.setdefault('bind_address', '127.0.0.1')
    return ae_module.AE('ACCESS_SCP', 0, **kwargs).add_scp(sopclass.verification_scp)


def associate_from(source: str, port: int, host: str = '127.0.0.1',
                   calling: str = 'RAW') -> bytes:
    """Send an A-ASSOCIATE-RQ from ``source`` (a loopback address of ours); the PDU
    answered (bytes), after releasing an accepted association."""
    sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    try:
        items = [pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'),
                 pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(VERIFICATION),
                                               [pdu.TransferSyntaxSubItem(
                                                   uids.IMPLICIT_VR_LITTLE_ENDIAN)]),
                 pdu.UserInformationItem([userdataitems.MaximumLengthSubItem(16384),
                                          userdataitems.ImplementationClassUIDSubItem('1.2')])]
        sock.sendall(pdu.AAssociateRqPDU('ACCESS_SCP', calling, items).encode())
        answer = read_pdu(sock)
        if answer is not None and answer[0] == pdu.A_ASSOCIATE_AC:
            sock.sendall(bytes.fromhex('0500000000040000 0000'.replace(' ', '')))  # A-RELEASE-RQ
            read_pdu(sock)
        return answer
    finally:
        sock.close()


def can_bind(address: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ':' in address else socket.AF_INET) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


needs_127_0_0_2 = pytest.mark.skipif(not can_bind('127.0.0.2'),
                                     reason='127.0.0.2 is not a local address here')
needs_ipv6 = pytest.mark.skipif(not socket.has_ipv6 or not can_bind('::1'),
                                reason='no IPv6 loopback')


def rejection(answer) -> tuple:
    assert answer is not None and answer[0] == pdu.A_ASSOCIATE_RJ, answer
    return answer[7], answer[8], answer[9]          # result, source, reason/diag (PS3.8 9.3.4)


@needs_127_0_0_2
def test_denied_network_refuses_127_0_0_2_while_127_0_0_1_is_served(caplog):
    ae = server()
    ae.denied_networks = {'127.0.0.2/32'}
    with ae, caplog.at_level(logging.WARNING, logger='pynetdicom2'):
        assert rejection(associate_from('127.0.0.2', ae.local_ae.port)) == (1, 1, 1)
        assert associate_from('127.0.0.1', ae.local_ae.port)[0] == pdu.A_ASSOCIATE_AC
        assert verify('WS', dict(aet='ACCESS_SCP', address='127.0.0.1',
                                 port=ae.local_ae.port)).is_success
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any('127.0.0.2' in text and 'not allowed' in text for text in warnings), warnings


@needs_127_0_0_2
def test_allowed_network_serves_only_its_members():
    ae = server()
    ae.allowed_networks = {'127.0.0.2'}
    with ae:
        assert associate_from('127.0.0.2', ae.local_ae.port)[0] == pdu.A_ASSOCIATE_AC
        assert rejection(associate_from('127.0.0.1', ae.local_ae.port)) == (1, 1, 1)
        with pytest.raises(AssociationRejectedError) as caught:
            verify('WS', dict(aet='ACCESS_SCP', address='127.0.0.1', port=ae.local_ae.port))
        assert (caught.value.result, caught.value.source, caught.value.diagnostic) == (1, 1, 1)


@needs_127_0_0_2
def test_deny_wins_over_allow_and_a_peer_rule_by_ae_title_can_lift_it():
    ae = server()
    ae.allowed_networks = {'127.0.0.0/8'}
    ae.denied_networks = {'127.0.0.2'}
    ae.add_peer_settings(ae_title='TRUSTED', denied_networks=())
    with ae:
        port = ae.local_ae.port
        assert rejection(associate_from('127.0.0.2', port)) == (1, 1, 1)
        assert associate_from('127.0.0.2', port, calling='TRUSTED')[0] == pdu.A_ASSOCIATE_AC
        assert associate_from('127.0.0.1', port)[0] == pdu.A_ASSOCIATE_AC


@pytest.mark.unit
def test_settings_normalise_networks_and_match_ipv4_mapped_addresses():
    settings = AssociationSettings.from_values(
        {'allowed_networks': ['10.1.2.3/16', ' ::1 '], 'denied_networks': None})
    assert settings.allowed_networks == frozenset({'10.1.0.0/16', '::1/128'})
    assert settings.denied_networks == frozenset()
    assert settings.address_allowed('10.1.200.7')
    assert settings.address_allowed('::ffff:10.1.0.9')
    assert settings.address_allowed('::1')
    assert not settings.address_allowed('10.2.0.1')
    assert not settings.address_allowed(None)
    assert AssociationSettings().address_allowed(None)
    with pytest.raises(ValueError):
        networks(['10.0.0.0/33'])
    assert plain_address('::ffff:127.0.0.2') == '127.0.0.2'
    assert plain_address('::1') == '::1' and plain_address('example') == 'example'


def test_default_bind_serves_ipv4_and_reports_it_as_plain_ipv4():
    seen = []

    class Recording(ae_module.AE):
        def on_association_established(self, info):
            seen.append(info.peer_address)

    ae = Recording('ACCESS_SCP', 0).add_scp(sopclass.verification_scp)   # bind_address ''
    with ae:
        assert verify('WS', dict(aet='ACCESS_SCP', address='127.0.0.1',
                                 port=ae.local_ae.port)).is_success
    assert ae.server_address[1] == ae.local_ae.port
    assert seen == ['127.0.0.1']


@needs_ipv6
def test_default_bind_serves_ipv6_loopback_and_the_requester_takes_brackets():
    ae = ae_module.AE('ACCESS_SCP', 0).add_scp(sopclass.verification_scp)
    assert ae.socket.family == socket.AF_INET6
    with ae:
        for address in ('::1', '[::1]'):
            assert verify('WS', dict(aet='ACCESS_SCP', address=address,
                                     port=ae.local_ae.port)).is_success


@needs_ipv6
def test_denied_ipv6_network_and_ipv4_rule_on_a_dual_stack_socket():
    ae = ae_module.AE('ACCESS_SCP', 0).add_scp(sopclass.verification_scp)
    ae.denied_networks = {'::1/128', '127.0.0.0/8'}
    with ae:
        for address in ('[::1]', '127.0.0.1'):     # the second arrives as ::ffff:127.0.0.1
            with pytest.raises(AssociationRejectedError) as caught:
                verify('WS', dict(aet='ACCESS_SCP', address=address, port=ae.local_ae.port))
            assert caught.value.diagnostic == 1


@needs_ipv6
def test_echoscu_reaches_a_bracketed_ipv6_host(capsys):
    from pynetdicom2.apps import echoscu
    ae = ae_module.AE('ACCESS_SCP', 0).add_scp(sopclass.verification_scp)
    with ae:
        assert echoscu.main(['-aec', 'ACCESS_SCP', '[::1]', str(ae.local_ae.port)]) == 0


@needs_127_0_0_2
@pytest.mark.parametrize('tool', ['storescp', 'qrscp'])
def test_tools_deny_and_allow_networks(tmp_path, tool):
    from tests.test_apps import our_server
    store = ('-od', tmp_path) if tool == 'storescp' else ('--storage', tmp_path / 'pacs')
    with our_server(tool, *store, '-aet', 'ACCESS_SCP', '--allow-network', '127.0.0.0/8',
                    '--deny-network', '127.0.0.2') as (proc, port):
        assert rejection(associate_from('127.0.0.2', port)) == (1, 1, 1)
        assert associate_from('127.0.0.1', port)[0] == pdu.A_ASSOCIATE_AC


@pytest.mark.unit
def test_tool_network_option_is_checked_and_canonical():
    from pynetdicom2.apps import storescp
    parser = storescp.build_parser()
    args = parser.parse_args(['--deny-network', '10.1.2.3/16', '--allow-network', '[::1]'])
    assert args.deny_network == ['10.1.0.0/16'] and args.allow_network == ['::1/128']
    with pytest.raises(SystemExit):
        parser.parse_args(['--deny-network', 'not-a-network'])


def test_without_dual_stack_the_default_bind_is_ipv4_as_in_0_9_8(monkeypatch):
    # AE asks its own module (pynetdicom2.aeserver); pynetdicom2.ae re-exports it.
    monkeypatch.setattr(aeserver, 'dual_stack_available', lambda: False)
    ae = ae_module.AE('ACCESS_SCP', 0).add_scp(sopclass.verification_scp)
    assert ae.socket.family == socket.AF_INET and ae.server_address[0] == '0.0.0.0'
    with ae:
        assert verify('WS', dict(aet='ACCESS_SCP', address='127.0.0.1',
                                 port=ae.local_ae.port)).is_success
