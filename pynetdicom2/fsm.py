"""The DICOM upper-layer state machine of PS3.8 9.2, as data: states, events, actions and
the state transition table (Table 9-10), plus ``next_step`` to look a transition up.
No sockets, no timers, no threads: the DUL (``dulprovider.py``) performs the actions.
"""

################################################################
# Rules
################################################################
#
# Rule 1: everything the standard says about which action follows which event in
# which state lives in this file, and as much of it as possible lives in tables
# that read like PS3.8 Tables 9-1 to 9-10. The few choices the standard leaves to
# a condition (AE-6, AR-8) or leaves blank (received PDUs in Sta1/Sta4) are
# written here too, next to the tables, and nowhere else.
#
# Rule 2: this file does no I/O and holds no per-association state. It answers
# "in state S, event E happened: which action, and which state next?". The caller
# keeps the current state and carries the action out.
#
#
# Theory of operation
# ===================
#
# PS3.8 9.2 describes the upper layer as one automaton per association:
#
#   * 13 states (Sta1..Sta13, Tables 9-1 to 9-5);
#   * 19 events (Evt1..Evt19, the rows of Table 9-10). They come from three
#     places: the local user issues a primitive (Evt1, 7, 8, 9, 11, 14, 15), the
#     peer sends a PDU (Evt3, 4, 6, 10, 12, 13, 16, and Evt19 for one we cannot
#     decode), or the local transport service / ARTIM timer reports something
#     (Evt2, 5, 17, 18);
#   * 28 actions (AE-1..AE-8, DT-1, DT-2, AR-1..AR-10, AA-1..AA-8, Tables 9-6 to
#     9-9). Each names what to do and the next state.
#
# Table 9-10 gives, for each (state, event) cell, the action. The next state is
# not in Table 9-10: it belongs to the action. Two actions choose between two
# next states:
#
#   * AE-6 (A-ASSOCIATE-RQ received in Sta2): Sta3 when the request is acceptable
#     to the service-provider, otherwise the provider sends A-ASSOCIATE-RJ and the
#     next state is Sta13. ``next_step`` answers Sta3; a DUL that rejects the
#     request itself moves to Sta13 (see ``associate_rq_state``).
#   * AR-8 (A-RELEASE-RQ received in Sta7, a release collision): Sta9 for the
#     association-requestor, Sta10 for the acceptor (``release_collision_state``).
#
# Blank cells. A blank cell is a pair the standard does not define:
#
#   * a local primitive or transport event in a blank cell is a programming error
#     in the caller (e.g. P-DATA before the association is established):
#     ``next_step`` raises NetDICOMError naming the state and the event;
#   * a received PDU always has an outcome, because the peer, not we, chose to
#     send it. Table 9-10 defines every PDU row for every state in which a
#     transport connection is open (Sta2, Sta3, Sta5..Sta13); it leaves blank only
#     Sta1 and Sta4, where no connection is open and no PDU can arrive. Should
#     one be reported there anyway, we treat it as the table treats an unexpected
#     PDU elsewhere: AA-8 (A-ABORT, provider source); an A-ABORT PDU is not
#     answered with another one and only closes the connection (AA-2, as in Sta2
#     and Sta13). Those two choices are ``PDU_OUTSIDE_TABLE_9_10``.

from __future__ import annotations

from typing import Any, NamedTuple

from pynetdicom2.exceptions import NetDICOMError

__all__ = [
    'STATES', 'EVENTS', 'PDU_EVENTS', 'PRIMITIVE_EVENTS', 'TRANSPORT_EVENTS',
    'EVENT_FOR_PDU_TYPE', 'Action', 'ACTIONS', 'SENDING_ACTIONS', 'CLOSING_ACTIONS',
    'TRANSITIONS',
    'PDU_OUTSIDE_TABLE_9_10', 'next_step', 'associate_rq_state',
    'release_collision_state', 'PContextDef',
]


# PS3.8 9.2.1, Tables 9-1 to 9-5.
STATES: dict[str, str] = {
    # Table 9-1, no association
    'Sta1': 'Idle',
    # Table 9-2, association establishment
    'Sta2': 'Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)',
    'Sta3': 'Awaiting local A-ASSOCIATE response primitive (from local user)',
    'Sta4': 'Awaiting transport connection opening to complete '
            '(from local transport service)',
    'Sta5': 'Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU',
    # Table 9-3, data transfer
    'Sta6': 'Association established and ready for data transfer',
    # Table 9-4, association release
    'Sta7': 'Awaiting A-RELEASE-RP PDU',
    'Sta8': 'Awaiting local A-RELEASE response primitive (from local user)',
    'Sta9': 'Release collision requestor side; awaiting A-RELEASE response '
            '(from local user)',
    'Sta10': 'Release collision acceptor side; awaiting A-RELEASE-RP PDU',
    'Sta11': 'Release collision requestor side; awaiting A-RELEASE-RP PDU',
    'Sta12': 'Release collision acceptor side; awaiting A-RELEASE response '
             'primitive (from local user)',
    # Table 9-5, waiting for transport connection close
    'Sta13': 'Awaiting Transport Connection Close Indication '
             '(Association no longer exists)',
}

# PS3.8 9.2.3, the row headings of Table 9-10.
EVENTS: dict[str, str] = {
    'Evt1': 'A-ASSOCIATE request (local user)',
    'Evt2': 'Transport connect confirmation (local transport service)',
    'Evt3': 'A-ASSOCIATE-AC PDU (received on transport connection)',
    'Evt4': 'A-ASSOCIATE-RJ PDU (received on transport connection)',
    'Evt5': 'Transport connection indication (local transport service)',
    'Evt6': 'A-ASSOCIATE-RQ PDU (received on transport connection)',
    'Evt7': 'A-ASSOCIATE response primitive (accept)',
    'Evt8': 'A-ASSOCIATE response primitive (reject)',
    'Evt9': 'P-DATA request primitive',
    'Evt10': 'P-DATA-TF PDU',
    'Evt11': 'A-RELEASE request primitive',
    'Evt12': 'A-RELEASE-RQ PDU (received on open transport connection)',
    'Evt13': 'A-RELEASE-RP PDU (received on transport connection)',
    'Evt14': 'A-RELEASE response primitive',
    'Evt15': 'A-ABORT request primitive',
    'Evt16': 'A-ABORT PDU (received on open transport connection)',
    'Evt17': 'Transport connection closed indication (local transport service)',
    'Evt18': 'ARTIM timer expired (Association reject/release timer)',
    'Evt19': 'Unrecognized or invalid PDU received',
}

# Where each event comes from. Evt19 counts as a received PDU: bytes arrived that
# do not decode as a PDU (PS3.8 9.3.1).
PDU_EVENTS = frozenset({'Evt3', 'Evt4', 'Evt6', 'Evt10', 'Evt12', 'Evt13', 'Evt16',
                        'Evt19'})
PRIMITIVE_EVENTS = frozenset({'Evt1', 'Evt7', 'Evt8', 'Evt9', 'Evt11', 'Evt14',
                              'Evt15'})
TRANSPORT_EVENTS = frozenset({'Evt2', 'Evt5', 'Evt17', 'Evt18'})

# PDU-type byte (PS3.8 9.3.1, Table 9-11) -> the event its arrival is. Any other
# type byte is Evt19: EVENT_FOR_PDU_TYPE.get(pdu_type, 'Evt19').
EVENT_FOR_PDU_TYPE: dict[int, str] = {
    0x01: 'Evt6',   # A-ASSOCIATE-RQ
    0x02: 'Evt3',   # A-ASSOCIATE-AC
    0x03: 'Evt4',   # A-ASSOCIATE-RJ
    0x04: 'Evt10',  # P-DATA-TF
    0x05: 'Evt12',  # A-RELEASE-RQ
    0x06: 'Evt13',  # A-RELEASE-RP
    0x07: 'Evt16',  # A-ABORT
}


class Action(NamedTuple):
    """One action of PS3.8 9.2.2: what the provider does, and the state it goes to.

    ``next_state`` is None for the two actions whose next state depends on a
    condition (AE-6, AR-8); ``associate_rq_state`` and ``release_collision_state``
    resolve them. ``sends`` says the action puts a PDU on the wire; ``closes`` that
    the transport connection ends with it, closed by us or already by the peer
    (the DUL then closes its socket).
    """
    name: str
    description: str
    next_state: str | None
    sends: bool = False
    closes: bool = False


# The I/O column of the actions table: what the DUL does besides moving state.
_SEND, _CLOSE, _NO_IO = 'send', 'close', ''


def _actions(*rows: tuple[str, str, str | None, str]) -> dict[str, Action]:
    return {name: Action(name, description, next_state, io == _SEND, io == _CLOSE)
            for name, description, next_state, io in rows}


# PS3.8 9.2.2, Tables 9-6 to 9-9, with the I/O each action asks of the DUL: send a
# PDU, or close the transport (the actions that "close transport connection", and
# those that follow the peer's closing it: AA-4, AA-5, AR-5).
ACTIONS: dict[str, Action] = _actions(
    # Table 9-6, association establishment related actions
    ('AE-1', 'Issue TRANSPORT CONNECT request primitive to local transport service',
     'Sta4', _NO_IO),
    ('AE-2', 'Send A-ASSOCIATE-RQ PDU', 'Sta5', _SEND),
    ('AE-3', 'Issue A-ASSOCIATE confirmation (accept) primitive', 'Sta6', _NO_IO),
    ('AE-4', 'Issue A-ASSOCIATE confirmation (reject) primitive and close transport '
             'connection', 'Sta1', _CLOSE),
    ('AE-5', 'Issue transport connection response primitive; start ARTIM timer',
     'Sta2', _NO_IO),
    ('AE-6', 'Stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: '
             'issue A-ASSOCIATE indication primitive (next state Sta3); otherwise: '
             'issue A-ASSOCIATE-RJ PDU and start ARTIM timer (next state Sta13)',
     None, _NO_IO),
    ('AE-7', 'Send A-ASSOCIATE-AC PDU', 'Sta6', _SEND),
    ('AE-8', 'Send A-ASSOCIATE-RJ PDU and start ARTIM timer', 'Sta13', _SEND),
    # Table 9-7, data transfer related actions
    ('DT-1', 'Send P-DATA-TF PDU', 'Sta6', _SEND),
    ('DT-2', 'Send P-DATA indication primitive', 'Sta6', _NO_IO),
    # Table 9-8, association release related actions
    ('AR-1', 'Send A-RELEASE-RQ PDU', 'Sta7', _SEND),
    ('AR-2', 'Issue A-RELEASE indication primitive', 'Sta8', _NO_IO),
    ('AR-3', 'Issue A-RELEASE confirmation primitive, and close transport connection',
     'Sta1', _CLOSE),
    ('AR-4', 'Issue A-RELEASE-RP PDU and start ARTIM timer', 'Sta13', _SEND),
    ('AR-5', 'Stop ARTIM timer', 'Sta1', _CLOSE),
    ('AR-6', 'Issue P-DATA indication', 'Sta7', _NO_IO),
    ('AR-7', 'Issue P-DATA-TF PDU', 'Sta8', _SEND),
    ('AR-8', 'Issue A-RELEASE indication (release collision): next state Sta9 if '
             'association-requestor, Sta10 if not', None, _NO_IO),
    ('AR-9', 'Send A-RELEASE-RP PDU', 'Sta11', _SEND),
    ('AR-10', 'Issue A-RELEASE confirmation primitive', 'Sta12', _NO_IO),
    # Table 9-9, association abort related actions
    ('AA-1', 'Send A-ABORT PDU (service-user source) and start (or restart if '
             'already started) ARTIM timer', 'Sta13', _SEND),
    ('AA-2', 'Stop ARTIM timer if running. Close transport connection', 'Sta1', _CLOSE),
    ('AA-3', 'If service-user initiated abort: issue A-ABORT indication and close '
             'transport connection; otherwise (service-provider initiated abort): '
             'issue A-P-ABORT indication and close transport connection', 'Sta1', _CLOSE),
    ('AA-4', 'Issue A-P-ABORT indication primitive', 'Sta1', _CLOSE),
    ('AA-5', 'Stop ARTIM timer', 'Sta1', _CLOSE),
    ('AA-6', 'Ignore PDU', 'Sta13', _NO_IO),
    ('AA-7', 'Send A-ABORT PDU', 'Sta13', _SEND),
    ('AA-8', 'Send A-ABORT PDU (service-provider source), issue an A-P-ABORT '
             'indication, and start ARTIM timer', 'Sta13', _SEND),
)

#: The actions that put a PDU on the wire, and those after which the transport is
#: closed (``Action.sends``, ``Action.closes``), as sets for the DUL's lookup.
SENDING_ACTIONS = frozenset(name for name, action in ACTIONS.items() if action.sends)
CLOSING_ACTIONS = frozenset(name for name, action in ACTIONS.items() if action.closes)


# PS3.8 9.2.3, Table 9-10, transcribed row by row: one row per event, one column
# per state, '.' for a blank cell (the event is not defined in that state).
_TABLE_9_10 = """
        Sta1  Sta2  Sta3  Sta4  Sta5  Sta6  Sta7  Sta8  Sta9  Sta10 Sta11 Sta12 Sta13
Evt1    AE-1  .     .     .     .     .     .     .     .     .     .     .     .
Evt2    .     .     .     AE-2  .     .     .     .     .     .     .     .     .
Evt3    .     AA-1  AA-8  .     AE-3  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt4    .     AA-1  AA-8  .     AE-4  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt5    AE-5  .     .     .     .     .     .     .     .     .     .     .     .
Evt6    .     AE-6  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
Evt7    .     .     AE-7  .     .     .     .     .     .     .     .     .     .
Evt8    .     .     AE-8  .     .     .     .     .     .     .     .     .     .
Evt9    .     .     .     .     .     DT-1  .     AR-7  .     .     .     .     .
Evt10   .     AA-1  AA-8  .     AA-8  DT-2  AR-6  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt11   .     .     .     .     .     AR-1  .     .     .     .     .     .     .
Evt12   .     AA-1  AA-8  .     AA-8  AR-2  AR-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt13   .     AA-1  AA-8  .     AA-8  AA-8  AR-3  AA-8  AA-8  AR-10 AR-3  AA-8  AA-6
Evt14   .     .     .     .     .     .     .     AR-4  AR-9  .     .     AR-4  .
Evt15   .     .     AA-1  AA-2  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  .
Evt16   .     AA-2  AA-3  .     AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-2
Evt17   .     AA-5  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AR-5
Evt18   .     AA-2  .     .     .     .     .     .     .     .     .     .     AA-2
Evt19   .     AA-1  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
"""


def _read_table(text: str) -> dict[tuple[str, str], str]:
    header, *rows = text.split('\n')[1:-1]
    states = header.split()
    cells = {}
    for row in rows:
        event, *actions = row.split()
        cells.update({(state, event): action
                      for state, action in zip(states, actions)
                      if action != '.'})
    return cells


# (state, event) -> action name, for every non-blank cell of Table 9-10.
TRANSITIONS: dict[tuple[str, str], str] = _read_table(_TABLE_9_10)

# What we do with a received PDU in a blank cell of Table 9-10 (only Sta1 and Sta4
# have any; see "Blank cells" above): answer as to an unexpected PDU (AA-8), but
# never answer an A-ABORT with an A-ABORT (AA-2 closes, as Sta2/Sta13 do).
PDU_OUTSIDE_TABLE_9_10: dict[str, str] = {
    event: 'AA-2' if event == 'Evt16' else 'AA-8' for event in sorted(PDU_EVENTS)
}

# For the message when the caller asks for something the state does not allow.
_ATTEMPTS = {
    'Evt1': 'request an association',
    'Evt2': 'complete a transport connection',
    'Evt5': 'accept a transport connection',
    'Evt7': 'accept the association',
    'Evt8': 'reject the association',
    'Evt9': 'send P-DATA',
    'Evt11': 'request release of the association',
    'Evt14': 'answer an A-RELEASE request',
    'Evt15': 'abort the association',
    'Evt17': 'report the transport connection closed',
    'Evt18': 'report ARTIM timer expiry',
}


def associate_rq_state(acceptable: bool) -> str:
    """AE-6's next state (PS3.8 Table 9-6).

    Sta3 when the A-ASSOCIATE-RQ is acceptable to the service-provider (the local
    user is asked); otherwise the provider sends A-ASSOCIATE-RJ itself, starts
    ARTIM and the next state is Sta13.
    """
    return 'Sta3' if acceptable else 'Sta13'


def release_collision_state(is_requestor: bool) -> str:
    """AR-8's next state (PS3.8 Table 9-8): A-RELEASE-RQ crossed ours in Sta7.

    Sta9 on the association-requestor's side, Sta10 on the acceptor's; the two
    sides then finish the release in a fixed order (PS3.8 7.2.2).
    """
    return 'Sta9' if is_requestor else 'Sta10'


def next_step(state: str, event: str, is_requestor: bool) -> tuple[str, str]:
    """Return ``(action_name, next_state)`` for ``event`` arriving in ``state``.

    ``is_requestor`` says which side of the association we are; only AR-8 (release
    collision) needs it. For AE-6 the next state is Sta3, the branch where the
    A-ASSOCIATE-RQ is acceptable to the provider: a DUL that rejects the request
    at provider level sends A-ASSOCIATE-RJ and moves to Sta13 itself.

    A received PDU (``PDU_EVENTS``) always has an answer: the cell of Table 9-10,
    or ``PDU_OUTSIDE_TABLE_9_10`` in its two blank columns. A local primitive or
    transport event in a blank cell raises ``NetDICOMError`` naming the state and
    the event: the caller asked for something the protocol does not allow there.
    """
    if state not in STATES:
        raise NetDICOMError(f'unknown upper-layer state {state!r}: expected one of '
                            f'Sta1..Sta13 (PS3.8 9.2.1)')
    if event not in EVENTS:
        raise NetDICOMError(f'unknown upper-layer event {event!r}: expected one of '
                            f'Evt1..Evt19 (PS3.8 9.2.3)')
    action = TRANSITIONS.get((state, event))
    if action is None:
        if event not in PDU_EVENTS:
            raise NetDICOMError(
                f'cannot {_ATTEMPTS[event]} in {state} '
                f'({STATES[state]}): {event} ({EVENTS[event]}) is not defined in '
                f'that state (PS3.8 Table 9-10)')
        action = PDU_OUTSIDE_TABLE_9_10[event]
    if action == 'AR-8':
        return action, release_collision_state(is_requestor)
    if action == 'AE-6':
        return action, associate_rq_state(True)
    return action, ACTIONS[action].next_state


class PContextDef(NamedTuple):
    """A presentation context definition: ID, abstract syntax, transfer syntaxes.

    ``sop_class`` is the abstract syntax (a SOP class UID); ``supported_ts`` the
    transfer syntaxes proposed, or, for a negotiated context, the single accepted
    transfer syntax (PS3.8 9.3.2.2, 9.3.3.2).
    """
    id: int
    sop_class: str
    supported_ts: Any
