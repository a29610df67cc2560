"""Tests for pynetdicom2.fsm: the PS3.8 9.2 upper-layer state machine tables.

The expected values are read from the standard (PS3.8 Tables 9-1 to 9-10) and
written here in their own shape, not copied from the module's grid.
"""

from __future__ import annotations

import ast
import inspect

import pytest

from pynetdicom2 import fsm
from pynetdicom2.exceptions import NetDICOMError

ALL_STATES = [f'Sta{i}' for i in range(1, 14)]
ALL_EVENTS = [f'Evt{i}' for i in range(1, 20)]
LOCAL_PRIMITIVES = ['Evt1', 'Evt7', 'Evt8', 'Evt9', 'Evt11', 'Evt14', 'Evt15']
TRANSPORT = ['Evt2', 'Evt5', 'Evt17', 'Evt18']
RECEIVED_PDUS = ['Evt3', 'Evt4', 'Evt6', 'Evt10', 'Evt12', 'Evt13', 'Evt16', 'Evt19']

# Next state of every action, PS3.8 9.2.2 Tables 9-6 (AE), 9-7 (DT), 9-8 (AR),
# 9-9 (AA). None where the table gives two next states on a condition.
STANDARD_NEXT_STATE = {
    'AE-1': 'Sta4', 'AE-2': 'Sta5', 'AE-3': 'Sta6', 'AE-4': 'Sta1', 'AE-5': 'Sta2',
    'AE-6': None, 'AE-7': 'Sta6', 'AE-8': 'Sta13',
    'DT-1': 'Sta6', 'DT-2': 'Sta6',
    'AR-1': 'Sta7', 'AR-2': 'Sta8', 'AR-3': 'Sta1', 'AR-4': 'Sta13', 'AR-5': 'Sta1',
    'AR-6': 'Sta7', 'AR-7': 'Sta8', 'AR-8': None, 'AR-9': 'Sta11', 'AR-10': 'Sta12',
    'AA-1': 'Sta13', 'AA-2': 'Sta1', 'AA-3': 'Sta1', 'AA-4': 'Sta1', 'AA-5': 'Sta1',
    'AA-6': 'Sta13', 'AA-7': 'Sta13', 'AA-8': 'Sta13',
}


def _standard_table_9_10() -> dict[tuple[str, str], str]:
    """PS3.8 Table 9-10 as the standard's patterns: defaults per row plus exceptions."""
    cells: dict[tuple[str, str], str] = {}
    # States with an open transport connection: every PDU row is defined there.
    open_states = ['Sta2', 'Sta3'] + [f'Sta{i}' for i in range(5, 14)]
    middle = [s for s in open_states if s not in ('Sta2', 'Sta13')]

    def pdu_row(event, sta2, sta13, other, **exceptions):
        cells[('Sta2', event)] = sta2
        cells[('Sta13', event)] = sta13
        for state in middle:
            cells[(state, event)] = exceptions.get(state, other)

    pdu_row('Evt3', 'AA-1', 'AA-6', 'AA-8', Sta5='AE-3')
    pdu_row('Evt4', 'AA-1', 'AA-6', 'AA-8', Sta5='AE-4')
    pdu_row('Evt6', 'AE-6', 'AA-7', 'AA-8')
    pdu_row('Evt10', 'AA-1', 'AA-6', 'AA-8', Sta6='DT-2', Sta7='AR-6')
    pdu_row('Evt12', 'AA-1', 'AA-6', 'AA-8', Sta6='AR-2', Sta7='AR-8')
    pdu_row('Evt13', 'AA-1', 'AA-6', 'AA-8', Sta7='AR-3', Sta10='AR-10', Sta11='AR-3')
    pdu_row('Evt16', 'AA-2', 'AA-2', 'AA-3')
    pdu_row('Evt19', 'AA-1', 'AA-7', 'AA-8')
    for i in range(3, 13):                      # Evt15: Sta3..Sta12
        cells[(f'Sta{i}', 'Evt15')] = 'AA-2' if i == 4 else 'AA-1'
    for i in range(2, 14):                      # Evt17: Sta2..Sta13
        cells[(f'Sta{i}', 'Evt17')] = {2: 'AA-5', 13: 'AR-5'}.get(i, 'AA-4')
    cells.update({
        ('Sta1', 'Evt1'): 'AE-1', ('Sta4', 'Evt2'): 'AE-2', ('Sta1', 'Evt5'): 'AE-5',
        ('Sta3', 'Evt7'): 'AE-7', ('Sta3', 'Evt8'): 'AE-8',
        ('Sta6', 'Evt9'): 'DT-1', ('Sta8', 'Evt9'): 'AR-7',
        ('Sta6', 'Evt11'): 'AR-1',
        ('Sta8', 'Evt14'): 'AR-4', ('Sta9', 'Evt14'): 'AR-9', ('Sta12', 'Evt14'): 'AR-4',
        ('Sta2', 'Evt18'): 'AA-2', ('Sta13', 'Evt18'): 'AA-2',
    })
    return cells


# ---------------------------------------------------------------- names


def test_states_are_the_thirteen_of_ps3_8_9_2_1():
    assert list(fsm.STATES) == ALL_STATES
    assert fsm.STATES['Sta1'] == 'Idle'
    assert fsm.STATES['Sta6'] == 'Association established and ready for data transfer'
    assert 'Awaiting Transport Connection Close' in fsm.STATES['Sta13']
    assert 'requestor' in fsm.STATES['Sta9'] and 'acceptor' in fsm.STATES['Sta10']


def test_events_are_the_nineteen_rows_of_table_9_10():
    assert list(fsm.EVENTS) == ALL_EVENTS
    assert fsm.EVENTS['Evt9'] == 'P-DATA request primitive'
    assert fsm.EVENTS['Evt18'].startswith('ARTIM timer expired')
    assert fsm.EVENTS['Evt19'] == 'Unrecognized or invalid PDU received'


def test_event_sources_partition_the_events():
    assert fsm.PDU_EVENTS == set(RECEIVED_PDUS)
    assert fsm.PRIMITIVE_EVENTS == set(LOCAL_PRIMITIVES)
    assert fsm.TRANSPORT_EVENTS == set(TRANSPORT)
    assert sorted(fsm.PDU_EVENTS | fsm.PRIMITIVE_EVENTS | fsm.TRANSPORT_EVENTS) == \
        sorted(ALL_EVENTS)


def test_event_for_pdu_type_follows_ps3_8_table_9_11():
    # PDU types: 01H A-ASSOCIATE-RQ, 02H -AC, 03H -RJ, 04H P-DATA-TF,
    # 05H A-RELEASE-RQ, 06H A-RELEASE-RP, 07H A-ABORT.
    assert fsm.EVENT_FOR_PDU_TYPE == {
        0x01: 'Evt6', 0x02: 'Evt3', 0x03: 'Evt4', 0x04: 'Evt10',
        0x05: 'Evt12', 0x06: 'Evt13', 0x07: 'Evt16'}
    assert set(fsm.EVENT_FOR_PDU_TYPE.values()) == fsm.PDU_EVENTS - {'Evt19'}


def test_actions_and_their_next_states_follow_tables_9_6_to_9_9():
    assert {name: a.next_state for name, a in fsm.ACTIONS.items()} == STANDARD_NEXT_STATE
    for name, action in fsm.ACTIONS.items():
        assert isinstance(action, fsm.Action)
        assert action.name == name
        assert action.description
    assert fsm.ACTIONS['AA-6'].description == 'Ignore PDU'
    assert 'service-provider source' in fsm.ACTIONS['AA-8'].description


def test_actions_say_which_send_a_pdu_and_which_end_the_transport():
    # PS3.8 Tables 9-6 to 9-9: the actions that send (or "issue") a PDU ...
    assert fsm.SENDING_ACTIONS == {'AE-2', 'AE-7', 'AE-8', 'DT-1', 'AR-1', 'AR-4',
                                   'AR-7', 'AR-9', 'AA-1', 'AA-7', 'AA-8'}
    # ... and those after which the transport connection is gone: closed by the
    # action, or the event was its closing (Evt17 -> AA-4, AA-5, AR-5).
    assert fsm.CLOSING_ACTIONS == {'AE-4', 'AR-3', 'AA-2', 'AA-3', 'AA-4', 'AA-5', 'AR-5'}
    for name, action in fsm.ACTIONS.items():
        assert action.sends == (name in fsm.SENDING_ACTIONS)
        assert action.closes == (name in fsm.CLOSING_ACTIONS)
        assert not (action.sends and action.closes), name
        if 'close transport connection' in action.description.lower():
            assert action.closes, name
    # A PDU is never sent on the way to Sta1 (no connection): closing comes after.
    assert all(fsm.ACTIONS[name].next_state != 'Sta1' for name in fsm.SENDING_ACTIONS)


def test_branching_actions_state_both_branches():
    ae6, ar8 = fsm.ACTIONS['AE-6'], fsm.ACTIONS['AR-8']
    assert ae6.next_state is None and 'Sta3' in ae6.description and \
        'Sta13' in ae6.description
    assert ar8.next_state is None and 'Sta9' in ar8.description and \
        'Sta10' in ar8.description
    assert fsm.associate_rq_state(True) == 'Sta3'
    assert fsm.associate_rq_state(False) == 'Sta13'
    assert fsm.release_collision_state(True) == 'Sta9'
    assert fsm.release_collision_state(False) == 'Sta10'


# ---------------------------------------------------------------- Table 9-10


def test_transitions_are_exactly_table_9_10():
    assert fsm.TRANSITIONS == _standard_table_9_10()


def test_number_of_defined_cells():
    # Counted by reading PS3.8 Table 9-10 row by row (non-blank cells per event):
    # Evt1 1, Evt2 1, Evt3 11, Evt4 11, Evt5 1, Evt6 11, Evt7 1, Evt8 1, Evt9 2,
    # Evt10 11, Evt11 1, Evt12 11, Evt13 11, Evt14 3, Evt15 10, Evt16 11, Evt17 12,
    # Evt18 2, Evt19 11  ->  123.
    per_row = {'Evt1': 1, 'Evt2': 1, 'Evt3': 11, 'Evt4': 11, 'Evt5': 1, 'Evt6': 11,
               'Evt7': 1, 'Evt8': 1, 'Evt9': 2, 'Evt10': 11, 'Evt11': 1, 'Evt12': 11,
               'Evt13': 11, 'Evt14': 3, 'Evt15': 10, 'Evt16': 11, 'Evt17': 12,
               'Evt18': 2, 'Evt19': 11}
    assert len(fsm.TRANSITIONS) == 123 == sum(per_row.values())
    for event, count in per_row.items():
        assert sum(1 for _, e in fsm.TRANSITIONS if e == event) == count, event


@pytest.mark.parametrize('state, event, is_requestor, action, next_state', [
    ('Sta1', 'Evt1', True, 'AE-1', 'Sta4'),      # A-ASSOCIATE request: connect
    ('Sta4', 'Evt2', True, 'AE-2', 'Sta5'),      # connected: send A-ASSOCIATE-RQ
    ('Sta5', 'Evt3', True, 'AE-3', 'Sta6'),      # A-ASSOCIATE-AC: established
    ('Sta5', 'Evt4', True, 'AE-4', 'Sta1'),      # A-ASSOCIATE-RJ: close
    ('Sta1', 'Evt5', False, 'AE-5', 'Sta2'),     # incoming connection, ARTIM
    ('Sta2', 'Evt6', False, 'AE-6', 'Sta3'),     # A-ASSOCIATE-RQ, acceptable branch
    ('Sta3', 'Evt7', False, 'AE-7', 'Sta6'),     # user accepts: A-ASSOCIATE-AC
    ('Sta3', 'Evt8', False, 'AE-8', 'Sta13'),    # user rejects: A-ASSOCIATE-RJ
    ('Sta6', 'Evt9', True, 'DT-1', 'Sta6'),
    ('Sta6', 'Evt10', False, 'DT-2', 'Sta6'),
    ('Sta6', 'Evt11', True, 'AR-1', 'Sta7'),
    ('Sta6', 'Evt12', False, 'AR-2', 'Sta8'),
    ('Sta7', 'Evt10', True, 'AR-6', 'Sta7'),     # P-DATA still arrives after RQ
    ('Sta7', 'Evt13', True, 'AR-3', 'Sta1'),
    ('Sta8', 'Evt9', False, 'AR-7', 'Sta8'),     # may still send before answering
    ('Sta8', 'Evt14', False, 'AR-4', 'Sta13'),
    ('Sta7', 'Evt12', True, 'AR-8', 'Sta9'),     # release collision, requestor
    ('Sta7', 'Evt12', False, 'AR-8', 'Sta10'),   # release collision, acceptor
    ('Sta9', 'Evt14', True, 'AR-9', 'Sta11'),
    ('Sta10', 'Evt13', False, 'AR-10', 'Sta12'),
    ('Sta11', 'Evt13', True, 'AR-3', 'Sta1'),
    ('Sta12', 'Evt14', False, 'AR-4', 'Sta13'),
    ('Sta13', 'Evt17', False, 'AR-5', 'Sta1'),
    ('Sta2', 'Evt18', False, 'AA-2', 'Sta1'),    # no A-ASSOCIATE-RQ in time
    ('Sta13', 'Evt18', True, 'AA-2', 'Sta1'),
    ('Sta2', 'Evt3', False, 'AA-1', 'Sta13'),
    ('Sta2', 'Evt17', False, 'AA-5', 'Sta1'),
    ('Sta4', 'Evt15', True, 'AA-2', 'Sta1'),
    ('Sta6', 'Evt15', True, 'AA-1', 'Sta13'),
    ('Sta6', 'Evt16', True, 'AA-3', 'Sta1'),
    ('Sta6', 'Evt17', True, 'AA-4', 'Sta1'),
    ('Sta6', 'Evt6', False, 'AA-8', 'Sta13'),    # unexpected PDU
    ('Sta6', 'Evt19', True, 'AA-8', 'Sta13'),
    ('Sta13', 'Evt3', True, 'AA-6', 'Sta13'),    # ignored once released/aborted
    ('Sta13', 'Evt10', True, 'AA-6', 'Sta13'),
    ('Sta13', 'Evt6', False, 'AA-7', 'Sta13'),
    ('Sta13', 'Evt16', True, 'AA-2', 'Sta1'),
])
def test_hand_checked_cells(state, event, is_requestor, action, next_state):
    assert fsm.next_step(state, event, is_requestor) == (action, next_state)


def test_every_action_in_the_table_exists_and_every_action_is_used():
    used = set(fsm.TRANSITIONS.values())
    assert used <= set(fsm.ACTIONS)
    assert used == set(fsm.ACTIONS)
    assert set(fsm.PDU_OUTSIDE_TABLE_9_10.values()) <= set(fsm.ACTIONS)


def test_every_step_leads_to_a_real_state():
    for (state, event) in fsm.TRANSITIONS:
        assert state in fsm.STATES and event in fsm.EVENTS
        for is_requestor in (True, False):
            action, next_state = fsm.next_step(state, event, is_requestor)
            assert action == fsm.TRANSITIONS[(state, event)]
            assert next_state in fsm.STATES


def test_abort_request_and_connection_closed_per_state():
    # Evt15 (A-ABORT request) is defined in Sta3..Sta12, Evt17 (transport closed)
    # in Sta2..Sta13 (PS3.8 Table 9-10).
    for state in ALL_STATES:
        number = int(state[3:])
        if 3 <= number <= 12:
            expected = ('AA-2', 'Sta1') if state == 'Sta4' else ('AA-1', 'Sta13')
            assert fsm.next_step(state, 'Evt15', True) == expected
        else:
            with pytest.raises(NetDICOMError, match='abort the association'):
                fsm.next_step(state, 'Evt15', True)
        if number >= 2:
            action, next_state = fsm.next_step(state, 'Evt17', False)
            assert next_state == 'Sta1'
            assert action == {'Sta2': 'AA-5', 'Sta13': 'AR-5'}.get(state, 'AA-4')
        else:
            with pytest.raises(NetDICOMError, match='Sta1'):
                fsm.next_step(state, 'Evt17', False)


@pytest.mark.parametrize('event', RECEIVED_PDUS)
@pytest.mark.parametrize('state', ALL_STATES)
def test_a_received_pdu_always_has_an_outcome(state, event):
    for is_requestor in (True, False):
        action, next_state = fsm.next_step(state, event, is_requestor)
        assert action in fsm.ACTIONS
        assert next_state in fsm.STATES
        if state in ('Sta1', 'Sta4'):
            # Blank in Table 9-10: unexpected PDU -> A-ABORT; an A-ABORT -> close.
            expected = ('AA-2', 'Sta1') if event == 'Evt16' else ('AA-8', 'Sta13')
            assert (action, next_state) == expected
        else:
            assert action == fsm.TRANSITIONS[(state, event)]


_BLANK_LOCAL_CELLS = [(s, e) for e in LOCAL_PRIMITIVES + TRANSPORT for s in ALL_STATES
                      if (s, e) not in _standard_table_9_10()]


@pytest.mark.parametrize('state, event', _BLANK_LOCAL_CELLS)
def test_local_event_in_a_blank_cell_raises_a_useful_error(state, event):
    with pytest.raises(NetDICOMError) as info:
        fsm.next_step(state, event, True)
    message = str(info.value)
    assert message.startswith('cannot ')
    assert f'{state} ({fsm.STATES[state]})' in message
    assert f'{event} ({fsm.EVENTS[event]})' in message
    assert 'Table 9-10' in message


def test_blank_local_cells_are_counted():
    # 11 local/transport rows x 13 states, minus their 1+1+1+1+1+2+1+3+10+12+2 = 35
    # defined cells.
    assert len(_BLANK_LOCAL_CELLS) == 11 * 13 - 35


def test_error_message_wording():
    with pytest.raises(NetDICOMError) as info:
        fsm.next_step('Sta1', 'Evt9', True)
    assert str(info.value).startswith('cannot send P-DATA in Sta1 (Idle): Evt9 '
                                      '(P-DATA request primitive)')
    with pytest.raises(NetDICOMError, match=r'cannot request release .* in Sta5'):
        fsm.next_step('Sta5', 'Evt11', True)


@pytest.mark.parametrize('state, event', [('Sta0', 'Evt1'), ('Sta14', 'Evt1'),
                                          ('Sta1', 'Evt20'), ('Sta1', 'Evt0'),
                                          ('sta1', 'Evt1'), ('Sta1', '')])
def test_unknown_names_raise(state, event):
    with pytest.raises(NetDICOMError, match='unknown upper-layer'):
        fsm.next_step(state, event, True)


# ---------------------------------------------------------------- walks


def _walk(start, events, is_requestor):
    state, path = start, []
    for event in events:
        action, state = fsm.next_step(state, event, is_requestor)
        path.append((action, state))
    return path


def test_requestor_normal_life():
    path = _walk('Sta1', ['Evt1', 'Evt2', 'Evt3', 'Evt9', 'Evt10', 'Evt11', 'Evt10',
                          'Evt13'], True)
    assert path == [('AE-1', 'Sta4'), ('AE-2', 'Sta5'), ('AE-3', 'Sta6'),
                    ('DT-1', 'Sta6'), ('DT-2', 'Sta6'), ('AR-1', 'Sta7'),
                    ('AR-6', 'Sta7'), ('AR-3', 'Sta1')]


def test_acceptor_normal_life():
    path = _walk('Sta1', ['Evt5', 'Evt6', 'Evt7', 'Evt10', 'Evt9', 'Evt12', 'Evt14',
                          'Evt17'], False)
    assert path == [('AE-5', 'Sta2'), ('AE-6', 'Sta3'), ('AE-7', 'Sta6'),
                    ('DT-2', 'Sta6'), ('DT-1', 'Sta6'), ('AR-2', 'Sta8'),
                    ('AR-4', 'Sta13'), ('AR-5', 'Sta1')]


def test_release_collision_on_both_sides():
    # PS3.8 7.2.2: both sides sent A-RELEASE-RQ; the requestor answers first.
    requestor = _walk('Sta6', ['Evt11', 'Evt12', 'Evt14', 'Evt13'], True)
    assert [s for _, s in requestor] == ['Sta7', 'Sta9', 'Sta11', 'Sta1']
    acceptor = _walk('Sta6', ['Evt11', 'Evt12', 'Evt13', 'Evt14', 'Evt17'], False)
    assert [s for _, s in acceptor] == ['Sta7', 'Sta10', 'Sta12', 'Sta13', 'Sta1']


def test_rejected_association_on_both_sides():
    assert _walk('Sta1', ['Evt1', 'Evt2', 'Evt4'], True)[-1] == ('AE-4', 'Sta1')
    assert _walk('Sta1', ['Evt5', 'Evt6', 'Evt8', 'Evt18'], False)[-2:] == \
        [('AE-8', 'Sta13'), ('AA-2', 'Sta1')]


def test_every_state_is_reachable_from_idle():
    seen, frontier = {'Sta1'}, ['Sta1']
    while frontier and len(seen) < 100:
        state = frontier.pop()
        for event in ALL_EVENTS:
            for is_requestor in (True, False):
                try:
                    _, nxt = fsm.next_step(state, event, is_requestor)
                except NetDICOMError:
                    continue
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
    assert seen == set(ALL_STATES)


# ---------------------------------------------------------------- the rest


def test_pcontextdef():
    ctx = fsm.PContextDef(1, '1.2.840.10008.1.1', '1.2.840.10008.1.2')
    assert ctx._fields == ('id', 'sop_class', 'supported_ts')
    assert ctx.id == 1 and ctx.sop_class == '1.2.840.10008.1.1'
    assert ctx.supported_ts == '1.2.840.10008.1.2'
    assert ctx == (1, '1.2.840.10008.1.1', '1.2.840.10008.1.2')
    ident, sop_class, ts = fsm.PContextDef(id=3, sop_class='1.2', supported_ts=['1.2.3'])
    assert (ident, sop_class, ts) == (3, '1.2', ['1.2.3'])


def test_all_names_exist():
    assert len(set(fsm.__all__)) == len(fsm.__all__)
    for name in fsm.__all__:
        assert hasattr(fsm, name), name
    assert {'STATES', 'EVENTS', 'ACTIONS', 'TRANSITIONS', 'PDU_EVENTS',
            'EVENT_FOR_PDU_TYPE', 'next_step', 'PContextDef', 'Action'} <= set(fsm.__all__)


def test_module_does_no_io():
    # fsm.py is pure data: it imports nothing that touches sockets, threads or files.
    tree = ast.parse(inspect.getsource(fsm))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {'__future__', 'typing', 'pynetdicom2.exceptions'}
