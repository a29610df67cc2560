"""Differential tests without a network: what a 0.9.8 script reads from fresh DIMSE
messages, ``dsutils``, user identity items, statuses and an AE, under the released 0.9.8
and under ours (tests/compat/scenarios.py, scenario "api", each in its own process)."""

from __future__ import annotations

import pytest

from tests.compat import harness
from tests.compat.harness import ORIG, OURS


@pytest.fixture(scope='module')
def api() -> dict:
    return {impl: harness.run(impl, 'api', 'offline') for impl in (ORIG, OURS)}


def test_a_fresh_message_holds_every_field_0_9_8_created(api):
    orig, ours = api[ORIG]['fresh_messages'], api[OURS]['fresh_messages']
    assert len(orig) == 23 and set(orig) <= set(ours)   # 11 RQ/RSP pairs and C-CANCEL-RQ
    for name, theirs in orig.items():
        mine = ours[name]
        # Every element 0.9.8 put in a fresh command set is there (None until set), so
        # msg.command_set.AffectedSOPInstanceUID works on a fresh message. We may hold
        # more optional ones (Error Comment, Offending Element ...), also None.
        assert set(theirs['in_command_set']) <= set(mine['in_command_set']), name
        assert mine['values'] == theirs['values'], name          # CommandField, data set type
        assert mine['affected_sop_instance_uid'] == theirs['affected_sop_instance_uid'], name


def test_dsutils_encode_decode_and_encode_element_give_the_same_bytes(api):
    keys = [key for key in api[ORIG] if key.startswith('dsutils')]
    assert len(keys) == 9
    for key in keys:
        assert 'value' in api[ORIG][key], key
        assert api[OURS][key] == api[ORIG][key], key


def test_user_identity_items_round_trip_as_in_0_9_8(api):
    keys = [key for key in api[ORIG] if key.startswith('user identity')]
    assert len(keys) == 4
    for key in keys:
        assert api[ORIG][key]['value']['equal_dict'] is True, key
        assert api[OURS][key] == api[ORIG][key], key


def test_status_constants_have_the_same_codes_and_types(api):
    assert api[OURS]['statuses'] == api[ORIG]['statuses']


def test_an_ae_has_the_attributes_scripts_set(api):
    for key in ('ae attributes', 'ae.dcm_timeout', 'ae.local_ae.aet'):
        assert api[OURS][key] == api[ORIG][key], key
    assert all(api[OURS]['ae attributes'].values())


def test_a_server_on_port_0_tells_its_port_through_ae_server(api):
    # 0.9.8 kept its socketserver in ``ae.server`` and left ``local_ae.port`` at 0, so a
    # 0.9.8 script serving on port 0 reads the port as ae.server.server_address[1].
    assert api[ORIG]['ae.server.server_address port'] == {'value': True}
    assert harness.plain(api[OURS]['ae.server.server_address port']) == {'value': True}
