"""Negotiation answers against pynetdicom 3 (issue 17, item 4): pynetdicom's requester
proposes SOP Class Extended Negotiation for Study Root FIND (relational queries),
Common Extended Negotiation for CT and role selection, and reads our A-ASSOCIATE-AC:
the answer our ``on_extended_negotiation`` gave, the roles we refused (the SCP role
of Verification and CT: we send neither C-ECHO nor C-STORE), and our acceptor records
the common extended negotiation. (DCMTK getscu's SCP role for storage, accepted for
C-GET, is proven by test_negotiation_interop.py's getscu test.)
"""

from __future__ import annotations

import json
import pathlib

import pytest

from pynetdicom2 import uids
from tests.peers import describe, require_pynetdicom, run_tool
from tests.test_negotiation_answers import Server

SCRIPT = pathlib.Path(__file__).resolve().parent / 'peers' / 'negotiation_pynetdicom.py'
FIND = uids.STUDY_ROOT_FIND_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
VERIFICATION = uids.VERIFICATION_SOP_CLASS


def ask(server) -> dict:
    result = run_tool([require_pynetdicom(), str(SCRIPT), str(server.local_ae.port),
                       'NEG_SCP'])
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def server():
    with Server() as srv:
        yield srv


def test_pynetdicom_reads_our_relational_query_answer(server):
    asked = []

    def answer(asce, sop_class_uid, app_info):
        asked.append((sop_class_uid, app_info))
        return b'\x00'    # relational queries: not supported (PS3.4 C.3.1)

    server.on_extended_negotiation = answer
    seen = ask(server)
    assert asked == [(FIND, b'\x01')]
    assert seen['extended'] == {FIND: '00'}
    assert dict(server.infos[0].extended_negotiation) == {FIND: b'\x00'}
    assert dict(server.infos[0].common_extended_negotiation) == {
        CT: ('1.2.840.10008.4.2', ())}


def test_pynetdicom_sees_the_roles_we_refuse(server):
    seen = ask(server)
    # Verification: its SCU role kept (we are its SCP), its SCP role refused (we send
    # no C-ECHO); CT: only the SCP role proposed, and refused (no storage SCU, no C-GET).
    assert seen['roles'][VERIFICATION] == [True, False]
    assert seen['roles'][CT] == [False, False]
    assert seen['contexts'][VERIFICATION] == [True, False]
    assert seen['contexts'][CT] == [False, False]   # accepted, but usable in no role
    assert seen['extended'] == {}          # our default: no answer (as DCMTK)


def test_the_role_hook_answer_reaches_pynetdicom(server):
    server.on_role_selection = lambda asce, uid, scu, scp: (0, 0) if uid == VERIFICATION else None
    seen = ask(server)
    assert seen['roles'][VERIFICATION] == [False, False]
