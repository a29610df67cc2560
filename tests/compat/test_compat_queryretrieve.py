"""Differential tests of query/retrieve: C-FIND answered the ways 0.9.x hooks answer,
C-MOVE to the requester's own StorageAE, C-GET into a ClientStorageAE (our SCP only:
0.9.8 had no C-GET SCP), and the bytes on the wire (AE title padding, a data set in
a PDU of its own); every (SCU, SCP) pair of the released 0.9.8 and ours."""

from __future__ import annotations

import pytest

from tests import peers
from tests.compat import harness
from tests.compat.harness import ORIG, OURS, PAIRS, plain, scp_story

SUCCESS = {'code': 0x0000, 'type': 'Success'}
PENDING = {'code': 0xFF00, 'type': 'Pending'}
CT = '1.2.840.10008.5.1.4.1.1.2'
IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2'


def match(name, uid=None) -> dict:
    found = {'QueryRetrieveLevel': 'STUDY', 'PatientName': name}
    if uid is not None:
        found['StudyInstanceUID'] = uid
    return found


# ---------------------------------------------------------------- C-FIND

@pytest.fixture(scope='module')
def find():
    # Through a recording relay: the same runs give the bytes on the wire.
    return harness.run_pairs('find', PAIRS, relay=True)


def test_our_find_scu_yields_what_0_9_8_yields_against_either_scp(find):
    for scp in (ORIG, OURS):
        assert plain(find[(OURS, scp)].scu) == plain(find[(ORIG, scp)].scu), scp
        assert scp_story(find[(OURS, scp)]) == scp_story(find[(ORIG, scp)]), scp


def test_our_find_scp_answers_as_0_9_8_where_0_9_8_was_right(find):
    for scu in (ORIG, OURS):
        ours, orig = plain(find[(scu, OURS)].scu), plain(find[(scu, ORIG)].scu)
        assert scp_story(find[(scu, OURS)]) == scp_story(find[(scu, ORIG)]), scu
        for name in ('NONE', 'ONE'):
            assert ours[name] == orig[name], (scu, name)
        assert ours['NONE'] == {'value': {'responses': [[None, SUCCESS]],
                                          'echo after': SUCCESS}}
        # (ds, SUCCESS), the 0.9.x way to answer with one match: the identifier
        # travels with that final response and the SCU yields it.
        assert ours['ONE'] == {'value': {'responses': [[match('ONLY^ONE'), SUCCESS]],
                                         'echo after': SUCCESS}}


def test_each_c_find_match_arrives_intact_when_the_hook_reuses_its_dataset(find):
    many = [[match(f'DOE^{n}', f'1.2.3.{n}'), PENDING] for n in (1, 2, 3)]
    for scu in (ORIG, OURS):
        ours = plain(find[(scu, OURS)].scu)
        assert ours['MANY'] == {'value': {'responses': [*many, [None, SUCCESS]],
                                          'echo after': SUCCESS}}, scu
        assert ours['commands.find'] == {'value': [m for m, _ in many]}, scu
        # 0.9.8 encoded a response only when its send queue got to it, after the hook
        # had changed the one Dataset again: the last match, three times.
        assert plain(find[(scu, ORIG)].scu)['MANY']['value']['responses'][0][0] == \
            match('DOE^3', '1.2.3.3')


def test_a_failing_find_hook_gets_a_failure_status_and_the_association_goes_on(find):
    for scu in (ORIG, OURS):
        ours, orig = plain(find[(scu, OURS)].scu), plain(find[(scu, ORIG)].scu)
        # EventHandlingError from the hook: 0xC000 (unable to process) and the
        # association stays usable. 0.9.8 dropped the association (API.md §2, Fix).
        assert ours['BROKEN'] == {'value': {
            'responses': [[match('BEFORE^ERROR'), PENDING],
                          [None, {'code': 0xC000, 'type': 'Failure'}]],
            'echo after': SUCCESS}}, scu
        assert orig['BROKEN']['raised']['type'] == 'AssociationAbortedError'
        # Plain ints as statuses (API.md §2, Fix): 0.9.8 broke the association on them.
        assert ours['INTS'] == {'value': {
            'responses': [[match('INT^STATUS'), PENDING], [None, SUCCESS]],
            'echo after': SUCCESS}}, scu
        assert orig['INTS']['raised']['type'] == 'AssociationAbortedError'


def test_ae_titles_are_padded_with_spaces_on_the_wire(find):
    for (scu, scp), outcome in find.items():
        for connection in outcome.wire:
            rq = [pdu for kind, pdu in harness.pdus(connection['rq']) if kind == 0x01]
            ac = [pdu for kind, pdu in harness.pdus(connection['ac']) if kind == 0x02]
            assert len(rq) == 1 and len(ac) == 1, (scu, scp)
            called, calling = harness.ae_title_fields(rq[0])
            assert called.rstrip(b' \0') == b'FIND_SCP', (scu, scp)
            assert calling.rstrip(b' \0') in (b'FIND_SCU', b'FIND_SCU2'), (scu, scp)
            # PS3.8 9.3.2: AE titles are padded with spaces. 0.9.8 padded with NUL
            # bytes, which pynetdicom refuses (API.md §3, Fix); so did its A-ASSOCIATE-AC.
            for side, fields in ((scu, (called, calling)),
                                 (scp, harness.ae_title_fields(ac[0]))):
                padding = {byte for field in fields
                           for byte in field[len(field.rstrip(b' \0')):]}
                assert padding == ({0x20} if side == OURS else {0x00}), (scu, scp, fields)


def test_a_data_set_always_starts_in_a_p_data_pdu_of_its_own(find):
    # A command's last fragment and a data set may share a P-DATA-TF PDU (PS3.8 9.3.5),
    # but GDCM-based peers hang on it; 0.9.8, DCMTK, pynetdicom and Orthanc never do it.
    for (scu, scp), outcome in find.items():
        sent = {'rq': scu, 'ac': scp}
        checked = {'rq': 0, 'ac': 0}
        for connection in outcome.wire:
            for direction in ('rq', 'ac'):
                for kind, pdu in harness.pdus(connection[direction]):
                    if kind == 0x04:
                        kinds = harness.pdv_kinds(pdu)
                        assert len(set(kinds)) == 1, (sent[direction], direction, kinds)
                        checked[direction] += kinds == ['data set']
        # C-FIND-RQ identifiers one way, matches the other: there was something to check.
        assert checked['rq'] >= 5 and checked['ac'] >= 3, (scu, scp, checked)


# ---------------------------------------------------------------- C-MOVE

@pytest.fixture(scope='module')
def move(ct_files, tmp_path_factory):
    root = tmp_path_factory.mktemp('move')
    runs = {}
    for scp in (ORIG, OURS):
        # The SCU serves the destination, MOVE_DEST, on a port the SCP is told.
        port = ['--dest-port', str(peers.free_port())]

        def scu_args(scu, scp):
            destination = root / f'{scu}-scu-{scp}-scp'
            destination.mkdir()
            return ['--dir', str(destination), *port]
        pairs = [(scu, scp) for scu in (ORIG, OURS)]
        runs.update(harness.run_pairs('move', pairs, scp_args=[
            *port, '--files', *map(str, ct_files)], scu_args=scu_args))
    return {pair: (runs[pair], harness.listing(root / f'{pair[0]}-scu-{pair[1]}-scp'))
            for pair in PAIRS}


def test_our_move_scu_sees_what_0_9_8_sees_against_either_scp(move):
    for scp in (ORIG, OURS):
        (ours, ours_files), (orig, orig_files) = move[(OURS, scp)], move[(ORIG, scp)]
        assert plain(ours.scu) == plain(orig.scu), scp
        assert scp_story(ours) == scp_story(orig), scp
        assert ours_files == orig_files, scp


def test_a_move_delivers_every_instance_byte_for_byte(move, ct_files):
    expected = {obs['sop_instance'] + '.dcm': obs for obs in map(harness.file_obs, ct_files)}
    # The scenario moves the study twice (get_scu, then commands.move): the second
    # copies get the _1 suffix (FolderStorageMixin).
    twice = {**expected, **{name.replace('.dcm', '_1.dcm'): obs
                            for name, obs in expected.items()}}
    for pair, (outcome, files) in move.items():
        assert files == twice, pair
        assert plain(outcome.scu)['files after move'] == sorted(expected), pair
        assert [e['destination'] for e in outcome.scp('move')] == [
            'MOVE_DEST', 'NOWHERE', 'MOVE_DEST'], pair


def test_our_move_scp_counts_sub_operations_as_ps3_4_says(move):
    for scu in (ORIG, OURS):
        ours = plain(move[(scu, OURS)][0].scu)
        # PS3.4 C.4.2.1.5: after each sub-operation, Remaining counts those not yet
        # started and Completed those done. 0.9.8 sent each pending response one
        # step behind (3 remaining, 0 completed after the first). Remaining goes only
        # in pending responses, so the final one has none (None; 0.9.8 sent 0).
        pending = [{'status': PENDING, 'remaining': 3 - n, 'completed': n, 'failed': 0,
                    'warning': 0} for n in (1, 2, 3)]
        final = {'status': SUCCESS, 'remaining': None, 'completed': 3, 'failed': 0,
                 'warning': 0}
        assert ours['move'] == {'value': {'responses': [*pending, final],
                                          'echo after': SUCCESS}}, scu
        assert ours['commands.move'] == {'value': {
            'num_of_remaining_sub_ops': None, 'num_of_completed_sub_ops': 3,
            'num_of_failed_sub_ops': 0, 'num_of_warning_sub_ops': 0}}, scu
        orig = plain(move[(scu, ORIG)][0].scu)
        assert orig['move']['value']['responses'][0]['completed'] == 0


def test_a_failing_move_hook_gets_a_failure_status_and_the_association_goes_on(move):
    for scu in (ORIG, OURS):
        ours = plain(move[(scu, OURS)][0].scu)
        # EventHandlingError from on_receive_move: 0xC000 and the association goes on.
        # 0.9.8 dropped the association (API.md §2, Fix).
        failed = ours['move to nowhere']['value']
        assert failed['echo after'] == SUCCESS, scu
        assert [r['status'] for r in failed['responses']] == [
            {'code': 0xC000, 'type': 'Failure'}], scu
        orig = plain(move[(scu, ORIG)][0].scu)
        assert orig['move to nowhere']['raised']['type'] == 'AssociationAbortedError'


# ---------------------------------------------------------------- C-GET (our SCP)

@pytest.fixture(scope='module')
def get(ct_files, tmp_path_factory):
    root = tmp_path_factory.mktemp('get')

    def scu_args(scu, scp):
        folder = root / scu
        folder.mkdir()
        return ['--dir', str(folder)]
    pairs = [(ORIG, OURS), (OURS, OURS)]
    runs = harness.run_pairs('get', pairs, scp_args=['--files', *map(str, ct_files)],
                             scu_args=scu_args)
    return {pair: (runs[pair], harness.listing(root / pair[0])) for pair in pairs}


def test_a_0_9_8_get_script_receives_every_instance_from_our_scp(get, ct_files):
    instances = [harness.file_obs(path)['sop_instance'] for path in ct_files]
    for pair, (outcome, files) in get.items():
        # The SCU accepts Implicit VR Little Endian only; the SCP holds Explicit VR
        # data sets in memory and encodes them for the accepted context.
        assert plain(outcome.scu) == {'get': {'value': [
            {'sop_class': CT, 'transfer_syntax': IMPLICIT_VR_LITTLE_ENDIAN, 'kind': 'file',
             'sop_instance': uid} for uid in instances]}}, pair
        assert sorted(files) == sorted(f'{uid}.dcm' for uid in instances), pair
        assert {obs['transfer_syntax'] for obs in files.values()} == {
            IMPLICIT_VR_LITTLE_ENDIAN}, pair
        assert outcome.scp('get') == [{'query': {'QueryRetrieveLevel': 'STUDY',
                                                 'StudyInstanceUID': '1.2.3'}}], pair
    assert get[(OURS, OURS)][1] == get[(ORIG, OURS)][1]
