"""What the acceptor answers beyond presentation contexts (pynetdicom2.asceprovider),
and what the requester reads of it: SOP Class Extended Negotiation (PS3.7 D.3.3.5)
through ``on_extended_negotiation``, SOP Class Common Extended Negotiation (D.3.3.6)
recorded, SCP/SCU Role Selection (D.3.3.4) answered with the roles we can act opposite
and ``on_role_selection``, and the user identity positive response (D.3.3.7) asked
for only when the caller wants it. Over loopback, our requester against our acceptor;
every answer is read from the A-ASSOCIATE-AC the requester received.
"""

from __future__ import annotations

from pynetdicom2 import ae as ae_module
from pynetdicom2 import pdu, sopclass, uids, userdataitems
from pynetdicom2.asceprovider import RemoteAEConfig

import pytest

# Our own server and client over loopback (tests/conftest.py's layers).
pytestmark = pytest.mark.socket

VERIFICATION = uids.VERIFICATION_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
FIND = uids.STUDY_ROOT_FIND_SOP_CLASS


class Server(ae_module.AE):
    def __init__(self):
        super().__init__('NEG_SCP', 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.verification_scp)
        self.add_scp(sopclass.storage_scp)
        self.add_scp(sopclass.qr_find_scp)
        self.dcm_timeout = 5
        self.artim_timeout = 2
        self.infos = []

    def on_association_established(self, info):
        self.infos.append(info)

    def on_receive_echo(self, context):
        return 0


class Client(ae_module.ClientAE):
    def __init__(self):
        super().__init__('NEG_SCU')
        self.add_scu(sopclass.verification_scu)
        self.add_scu(sopclass.storage_scu, [CT])
        self.add_scu(sopclass.qr_find_scu, [FIND])
        self.dcm_timeout = 5


@pytest.fixture
def server():
    with Server() as srv:
        yield srv


def remote(server, **extra):
    return dict(aet='NEG_SCP', address='127.0.0.1', port=server.local_ae.port, **extra)


def ac_items(assoc, cls):
    (user_information,) = [item for item in assoc.ac.variable_items
                           if isinstance(item, pdu.UserInformationItem)]
    return [sub for sub in user_information.user_data if isinstance(sub, cls)]


def test_extended_negotiation_answered_by_the_hook(server):
    asked = []

    def answer(asce, sop_class_uid, app_info):
        asked.append((sop_class_uid, app_info))
        return b'\x01\x00' if sop_class_uid == FIND else None

    server.on_extended_negotiation = answer
    proposal = [userdataitems.SOPClassExtendedNegotiationSubItem(FIND, b'\x01\x01'),
                userdataitems.SOPClassExtendedNegotiationSubItem(VERIFICATION, b'\x07'),
                # Not proposed as a context: never asked, never answered.
                userdataitems.SOPClassExtendedNegotiationSubItem(uids.MR_IMAGE_STORAGE, b'\x01')]
    with Client().request_association(remote(server, user_data=proposal)) as assoc:
        sent = ac_items(assoc, userdataitems.SOPClassExtendedNegotiationSubItem)
        assert [(i.sop_class_uid, i.app_info) for i in sent] == [(FIND, b'\x01\x00')]
        assert assoc.extended_negotiation == {FIND: b'\x01\x00'}
        assert dict(assoc.info.extended_negotiation) == {FIND: b'\x01\x00'}
    assert sorted(asked) == sorted([(FIND, b'\x01\x01'), (VERIFICATION, b'\x07')])
    assert dict(server.infos[0].extended_negotiation) == {FIND: b'\x01\x00'}


def test_extended_negotiation_not_answered_by_default(server):
    # Our Q/R FIND SCP does no relational queries: it sends no answer (as DCMTK).
    proposal = [userdataitems.SOPClassExtendedNegotiationSubItem(FIND, b'\x01')]
    with Client().request_association(remote(server, user_data=proposal)) as assoc:
        assert ac_items(assoc, userdataitems.SOPClassExtendedNegotiationSubItem) == []
        assert assoc.extended_negotiation == {}


def test_common_extended_negotiation_recorded(server):
    proposal = [userdataitems.SOPClassCommonExtendedNegotiationSubItem(
        CT, '1.2.840.10008.4.2', ['1.2.840.10008.5.1.4.1.1.2.1'])]
    with Client().request_association(remote(server, user_data=proposal)) as assoc:
        # Informative only: the acceptor never answers it (PS3.7 D.3.3.6).
        assert ac_items(assoc, userdataitems.SOPClassCommonExtendedNegotiationSubItem) == []
    assert dict(server.infos[0].common_extended_negotiation) == {
        CT: ('1.2.840.10008.4.2', ('1.2.840.10008.5.1.4.1.1.2.1',))}


def test_roles_answered_with_what_we_can_act_opposite(server):
    proposal = [userdataitems.ScpScuRoleSelectionSubItem(VERIFICATION, 1, 1),
                userdataitems.ScpScuRoleSelectionSubItem(CT, 0, 1)]
    with Client().request_association(remote(server, user_data=proposal)) as assoc:
        answered = {i.sop_class_uid: (i.scu_role, i.scp_role)
                    for i in ac_items(assoc, userdataitems.ScpScuRoleSelectionSubItem)}
        # We serve Verification (its SCU role kept) but cannot send C-ECHO (SCP role
        # refused); we have no storage SCU and no C-GET here: CT's SCP role refused.
        assert answered == {VERIFICATION: (1, 0), CT: (0, 0)}
        assert assoc.roles == answered
        assert dict(assoc.info.roles) == answered
    assert dict(server.infos[0].roles) == answered


def test_role_hook_refuses_and_cannot_grant_what_was_not_proposed(server):
    calls = []

    def decide(asce, sop_class_uid, scu_role, scp_role):
        calls.append((sop_class_uid, scu_role, scp_role))
        return (0, 1) if sop_class_uid == VERIFICATION else None

    server.on_role_selection = decide
    server.add_scu(sopclass.storage_scu, [CT])   # now we could send CT C-STOREs
    proposal = [userdataitems.ScpScuRoleSelectionSubItem(VERIFICATION, 1, 0),
                userdataitems.ScpScuRoleSelectionSubItem(CT, 1, 1)]
    with Client().request_association(remote(server, user_data=proposal)) as assoc:
        assert assoc.roles == {VERIFICATION: (0, 0), CT: (1, 1)}
    assert sorted(calls) == sorted([(VERIFICATION, 1, 0), (CT, 1, 1)])


@pytest.mark.parametrize('positive', [True, False])
def test_positive_identity_response_is_the_callers_choice(server, positive):
    server.on_user_identity = lambda asce, identity: b'ok'
    config = RemoteAEConfig(**remote(server, username='alice', positive_response=positive))
    with Client().request_association(config) as assoc:
        answers = ac_items(assoc, userdataitems.UserIdentityNegotiationSubItemAc)
        assert len(answers) == (1 if positive else 0)
        assert assoc.user_identity_response == ('ok' if positive else None)
        assert assoc.info.user_identity_response == assoc.user_identity_response
    assert server.infos[0].user_identity.positive_response_requested is positive


@pytest.mark.unit
def test_positive_response_defaults_to_asked():
    assert RemoteAEConfig('A', '127.0.0.1', 104, username='u').user_identity(
    ).positive_response_req == 1


# -- the same request answered again (negotiation.prepared_ac), in this process --------

def _request(*user_data, contexts=((1, VERIFICATION, (uids.IMPLICIT_VR_LITTLE_ENDIAN,)),
                                   (3, CT, (uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                            uids.IMPLICIT_VR_LITTLE_ENDIAN)))):
    items = [pdu.ApplicationContextItem(uids.APPLICATION_CONTEXT_NAME)]
    items += [pdu.PresentationContextItemRQ(cid, pdu.AbstractSyntaxSubItem(uid),
                                            [pdu.TransferSyntaxSubItem(ts) for ts in tss])
              for cid, uid, tss in contexts]
    items.append(pdu.UserInformationItem(
        [userdataitems.MaximumLengthSubItem(32768),
         userdataitems.ImplementationClassUIDSubItem('1.2.3.4'),
         userdataitems.AsynchronousOperationsWindowSubItem(4, 4)] + list(user_data)))
    return pdu.AAssociateRqPDU('NEG_SCP', 'NEG_SCU', items)


def _answer(ae, rq, make):
    """An acceptor of ``ae`` answering ``rq``; ``make`` is prepared_ac or build_ac.
    Returns the AC's bytes (as sent) and what the acceptor recorded."""
    import socket
    from pynetdicom2 import negotiation
    from pynetdicom2.asceprovider import AssociationAcceptor
    ours, theirs = socket.socketpair()
    try:
        acceptor = AssociationAcceptor(ae, ours, ('127.0.0.1', 11112))
        acceptor.rq = rq
        identities = negotiation.sub_items(rq, userdataitems.UserIdentityNegotiationSubItem)
        acceptor.user_identity = identities[0] if identities else None
        if make == 'prepared':
            ac, encoded = negotiation.prepared_ac(acceptor, rq)
            assert encoded is None or encoded == ac.encode()
        else:
            ac, encoded = negotiation.build_ac(acceptor, rq), None
        return (encoded if encoded is not None else ac.encode(),
                dict(acceptor.accepted_contexts), acceptor.peer_max_pdu_length), encoded
    finally:
        ours.close()
        theirs.close()


def _scp_ae():
    ae = ae_module.ClientAE('NEG_SCP')
    ae.add_scp(sopclass.verification_scp)
    ae.add_scp(sopclass.storage_scp)
    return ae


@pytest.mark.unit
def test_a_repeated_request_is_answered_as_build_ac_answers_it():
    ae = _scp_ae()
    rq = _request()
    expected, _ = _answer(ae, rq, 'build')
    first, _ = _answer(ae, rq, 'prepared')
    again, kept = _answer(ae, _request(), 'prepared')
    assert first == again == expected
    assert kept is not None                   # the answer made before was sent
    assert expected[2] == 32768 and sorted(expected[1]) == [1, 3]


@pytest.mark.unit
def test_every_change_of_the_ae_reaches_the_repeated_answer(monkeypatch):
    from pynetdicom2 import asceprovider
    ae = _scp_ae()
    # Both contexts propose implicit first; which one we take depends on the AE.
    implicit_first = (uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    rq = _request(contexts=((1, VERIFICATION, implicit_first), (3, CT, implicit_first)))
    changes = [
        lambda: setattr(ae, 'supported_ts', [uids.IMPLICIT_VR_LITTLE_ENDIAN]),
        lambda: setattr(ae, 'supported_ts', [uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                             uids.IMPLICIT_VR_LITTLE_ENDIAN]),
        lambda: ae.store_in_file.add(VERIFICATION),     # kept as it comes: implicit
        lambda: setattr(ae, 'max_pdu_length', 4096),
        lambda: setattr(ae, 'prefer_proposed_ts_for_storage', False),
        lambda: ae.ts_preferences.update({CT: (uids.IMPLICIT_VR_LITTLE_ENDIAN,)}),
        lambda: ae.ts_preferences.clear(),
        lambda: monkeypatch.setattr(asceprovider, 'IMPLEMENTATION_UID', '1.2.826.0.1.99'),
        lambda: ae.add_peer_settings(address='127.0.0.1', max_pdu_length=8192),
    ]
    answers = []
    for change in changes:
        _answer(ae, rq, 'prepared')
        change()
        expected, _ = _answer(ae, rq, 'build')
        got, _ = _answer(ae, rq, 'prepared')
        assert got == expected
        answers.append(got[0])
    # Each change but clearing ts_preferences (back to the answer before) changed
    # the bytes sent.
    assert all(answers[i] != answers[i + 1] for i in range(len(answers) - 1) if i != 5)
    other = _request(contexts=((1, VERIFICATION, (uids.IMPLICIT_VR_LITTLE_ENDIAN,)),))
    assert _answer(ae, other, 'prepared')[0] == _answer(ae, other, 'build')[0]


@pytest.mark.unit
def test_an_ae_choosing_its_own_way_is_asked_for_every_request():
    asked = []

    class Choosy(ae_module.ClientAE):
        def choose_transfer_syntax(self, sop_class, proposed, storage=False):
            asked.append(sop_class)
            return proposed[-1]

    ae = Choosy('NEG_SCP')
    ae.add_scp(sopclass.verification_scp)
    for _ in range(2):
        got, kept = _answer(ae, _request(contexts=(
            (1, VERIFICATION, (uids.EXPLICIT_VR_LITTLE_ENDIAN,
                               uids.IMPLICIT_VR_LITTLE_ENDIAN)),)), 'prepared')
        assert kept is None
        assert got[1][1].supported_ts == uids.IMPLICIT_VR_LITTLE_ENDIAN
    assert asked == [VERIFICATION, VERIFICATION]


@pytest.mark.unit
def test_a_chooser_set_on_the_ae_itself_is_asked_for_every_request():
    ae = _scp_ae()
    rq = _request(contexts=((1, VERIFICATION, (uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                              uids.IMPLICIT_VR_LITTLE_ENDIAN)),))
    first, _ = _answer(ae, rq, 'prepared')        # kept for the AE as its class chooses
    asked = []

    def choose(sop_class, proposed, storage=False):
        asked.append(sop_class)
        return proposed[-1]

    ae.choose_transfer_syntax = choose
    for _ in range(2):
        got, kept = _answer(ae, rq, 'prepared')
        assert kept is None
        assert got[1][1].supported_ts == uids.IMPLICIT_VR_LITTLE_ENDIAN
    assert first[1][1].supported_ts == uids.EXPLICIT_VR_LITTLE_ENDIAN
    assert asked == [VERIFICATION, VERIFICATION]


@pytest.mark.unit
@pytest.mark.parametrize('extra', [
    userdataitems.ScpScuRoleSelectionSubItem(CT, 1, 1),
    userdataitems.UserIdentityNegotiationSubItem('user', 'secret', 2, 1),
    userdataitems.SOPClassExtendedNegotiationSubItem(CT, b'\x01'),
], ids=['roles', 'identity', 'extended'])
def test_requests_with_hooks_or_identity_are_answered_afresh(extra):
    ae = _scp_ae()
    calls = []
    ae.on_role_selection = lambda *args: calls.append('roles')
    ae.on_extended_negotiation = lambda *args: calls.append('extended')
    rq = _request(extra)
    for _ in range(2):
        got, kept = _answer(ae, rq, 'prepared')
        assert kept is None
        assert got == _answer(ae, rq, 'build')[0]
    if not isinstance(extra, userdataitems.UserIdentityNegotiationSubItem):
        assert len(calls) == 4                # twice prepared, twice built
