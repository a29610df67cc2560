"""Tests for pynetdicom2.statuses: codes, types and meanings from PS3.7 Annex C and PS3.4."""

from __future__ import annotations

import copy
import operator
import pickle
import struct

import pytest

from pynetdicom2 import statuses
from pynetdicom2.statuses import KNOWN_STATUSES, STATUS_TYPES, Status, add_status

C_STORE_RSP, C_GET_RSP, C_FIND_RSP, C_MOVE_RSP = 0x8001, 0x8010, 0x8020, 0x8021


class CStoreRSPMessage:
    """Stands in for dimse.CStoreRSPMessage: only command_field matters here."""
    command_field = C_STORE_RSP


class CMoveRSPMessage:
    command_field = C_MOVE_RSP


class CFindRSPMessage:
    command_field = C_FIND_RSP


class CGetRSPMessage:
    command_field = C_GET_RSP


class CStoreRQMessage:
    command_field = 0x0001


class DIMSEResponseMessage:
    """A base class names no service."""
    command_field = None


@pytest.fixture
def registry():
    """Let a test register statuses, then put the registry back as it was."""
    with statuses.preserved_registry():
        yield


# name, code, type, description, command field
CONSTANTS = [
    ('SUCCESS', 0x0000, 'Success', 'Success', None),
    ('PROCESSING_FAILURE', 0x0110, 'Failure', 'Processing failure', None),
    ('SOP_CLASS_NOT_SUPPORTED', 0x0122, 'Failure', 'SOP class not supported', None),
    ('C_STORE_CANNOT_UNDERSTAND', 0xC000, 'Failure', 'Cannot understand', C_STORE_RSP),
    ('C_STORE_CANNON_UNDERSTAND', 0xC000, 'Failure', 'Cannot understand', C_STORE_RSP),
    ('C_STORE_OUT_OF_RESOURCES', 0xA700, 'Failure', 'Out of resources', C_STORE_RSP),
    ('C_STORE_DATA_SET_DOES_NOT_MATCH_SOP_CLASS', 0xA900, 'Failure',
     'Data set does not match SOP class', C_STORE_RSP),
    ('C_STORE_COERCION_OF_DATA_ELEMENTS', 0xB000, 'Warning', 'Coercion of data elements',
     C_STORE_RSP),
    ('C_STORE_ELEMENTS_DISCARDED', 0xB006, 'Warning', 'Elements discarded', C_STORE_RSP),
    ('C_FIND_PENDING', 0xFF00, 'Pending',
     'Matches are continuing - current match is supplied and any optional keys were '
     'supported in the same manner as required keys', C_FIND_RSP),
    ('C_FIND_PENDING_WARNING', 0xFF01, 'Pending',
     'Matches are continuing - warning that one or more optional keys were not supported '
     'for existence and/or matching for this identifier', C_FIND_RSP),
    ('C_FIND_UNABLE_TO_PROCESS', 0xC000, 'Failure', 'Unable to process', C_FIND_RSP),
    ('C_FIND_OUT_OF_RESOURCES', 0xA700, 'Failure', 'Out of resources', C_FIND_RSP),
    ('C_FIND_CANCEL', 0xFE00, 'Cancel', 'Matching terminated due to cancel request',
     C_FIND_RSP),
    ('C_GET_PENDING', 0xFF00, 'Pending', 'Sub-operations are continuing', C_GET_RSP),
    ('C_GET_WARNING', 0xB000, 'Warning',
     'Sub-operations complete - one or more failures or warnings', C_GET_RSP),
    ('C_GET_UNABLE_TO_PROCESS', 0xC000, 'Failure', 'Unable to process', C_GET_RSP),
    ('C_GET_CANCEL', 0xFE00, 'Cancel', 'Sub-operations terminated due to cancel indication',
     C_GET_RSP),
    ('C_MOVE_PENDING', 0xFF00, 'Pending', 'Sub-operations are continuing', C_MOVE_RSP),
    ('C_MOVE_WARNING', 0xB000, 'Warning', 'Sub-operations complete - one or more failures',
     C_MOVE_RSP),
    ('C_MOVE_UNABLE_TO_PROCESS', 0xC000, 'Failure', 'Unable to process', C_MOVE_RSP),
    ('C_MOVE_DESTINATION_UNKNOWN', 0xA801, 'Failure', 'Move destination unknown',
     C_MOVE_RSP),
    ('C_MOVE_CANCEL', 0xFE00, 'Cancel', 'Sub-operations terminated due to cancel indication',
     C_MOVE_RSP),
    ('UNRECOGNIZED_OPERATION', 0x0211, 'Failure', 'Unrecognized operation', None),
    ('UNKNOWN', 0xFFFF, 'Failure', 'Unknown status', None),
]


@pytest.mark.parametrize('name, code, code_type, description, field', CONSTANTS)
def test_constant(name, code, code_type, description, field):
    status = getattr(statuses, name)
    assert isinstance(status, Status)
    assert name in statuses.__all__
    assert int(status) == status.value == code
    assert status.status_type == code_type
    assert status.description == description
    assert status.command_field == field
    assert str(status) == f'(0x{code:04X}) {code_type}: {description}'
    assert repr(status) == f'Status(0x{code:04X})'


def test_every_status_constant_is_tested():
    names = {n for n in statuses.__all__ if isinstance(getattr(statuses, n), Status)}
    assert names == {row[0] for row in CONSTANTS}


def test_old_misspelling_is_the_same_object():
    assert statuses.C_STORE_CANNON_UNDERSTAND is statuses.C_STORE_CANNOT_UNDERSTAND


def test_str_and_repr_format():
    status = Status(0xFF00, CFindRSPMessage)
    assert repr(status) == 'Status(0xFF00)'
    assert str(status).startswith('(0xFF00) Pending: Matches are continuing')
    assert repr(Status(0x0001)) == 'Status(0x0001)'
    assert str(Status(0x0110)) == '(0x0110) Failure: Processing failure'
    assert str(Status(0xA7F3, C_STORE_RSP)) == '(0xA7F3) Failure: Out of resources'


@pytest.mark.parametrize('code_type', STATUS_TYPES)
def test_exactly_one_flag_matches_the_type(code_type):
    code = {'Success': 0x0000, 'Warning': 0x0107, 'Failure': 0x0110,
            'Cancel': 0xFE00, 'Pending': 0xFF00}[code_type]
    status = Status(code)
    assert status.status_type == code_type
    flags = {'Success': status.is_success, 'Warning': status.is_warning,
             'Failure': status.is_failure, 'Cancel': status.is_cancel,
             'Pending': status.is_pending}
    assert flags == {t: t == code_type for t in STATUS_TYPES}
    assert all(type(flag) is bool for flag in flags.values())


def ps37_class(code: int) -> str:
    """The status class of a code by PS3.7 Annex C's convention; 'Unknown' when none."""
    if code == 0x0000:
        return 'Success'
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return 'Warning'
    if (0xA000 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF
            or 0x0100 <= code <= 0x02FF):
        return 'Failure'
    if code == 0xFE00:
        return 'Cancel'
    if code in (0xFF00, 0xFF01):
        return 'Pending'
    return 'Unknown'


@pytest.mark.parametrize('command', [None, C_STORE_RSP, C_GET_RSP, C_FIND_RSP, C_MOVE_RSP,
                                     0x8030, 0x8130])
def test_every_code_follows_the_ps37_status_classes(command):
    wrong = []
    for code in range(0x10000):
        status = Status(code, command)
        expected = ps37_class(code)
        if expected == 'Unknown':
            if (status.status_type, status.description) != ('Failure', 'Unknown status'):
                wrong.append(code)
        elif status.status_type != expected or status.description == 'Unknown status':
            wrong.append(code)
    assert wrong == []


@pytest.mark.parametrize('code, description', [
    (0x0001, 'Requested optional attributes are not supported'),
    (0x0105, 'No such attribute'), (0x0106, 'Invalid attribute value'),
    (0x0107, 'Attribute list error'), (0x0110, 'Processing failure'),
    (0x0111, 'Duplicate SOP instance'), (0x0112, 'No such SOP instance'),
    (0x0113, 'No such event type'), (0x0114, 'No such argument'),
    (0x0115, 'Invalid argument value'), (0x0116, 'Attribute value out of range'),
    (0x0117, 'Invalid object instance'), (0x0118, 'No such SOP class'),
    (0x0119, 'Class-instance conflict'), (0x0120, 'Missing attribute'),
    (0x0121, 'Missing attribute value'), (0x0122, 'SOP class not supported'),
    (0x0123, 'No such action'), (0x0124, 'Not authorized'),
    (0x0210, 'Duplicate invocation'), (0x0211, 'Unrecognized operation'),
    (0x0212, 'Mistyped argument'), (0x0213, 'Resource limitation'),
])
def test_general_statuses_of_ps37_annex_c(code, description):
    # The general codes mean the same for every service.
    for command in (None, C_STORE_RSP, C_FIND_RSP, 0x8120):
        assert Status(code, command).description == description


def test_0xb000_means_something_different_per_service():
    store = Status(0xB000, CStoreRSPMessage)
    move = Status(0xB000, CMoveRSPMessage)
    get = Status(0xB000, CGetRSPMessage)
    general = Status(0xB000)
    assert store.description == 'Coercion of data elements'
    assert move.description == 'Sub-operations complete - one or more failures'
    assert get.description == 'Sub-operations complete - one or more failures or warnings'
    assert general.description == 'Service-specific warning'
    assert {s.status_type for s in (store, move, get, general)} == {'Warning'}
    # ... and all of them are still the one code.
    assert store == move == get == general == 0xB000


@pytest.mark.parametrize('code, command, code_type, description', [
    (0xA7F3, C_STORE_RSP, 'Failure', 'Out of resources'),
    (0xA700, C_STORE_RSP, 'Failure', 'Out of resources'),
    (0xA7FF, C_STORE_RSP, 'Failure', 'Out of resources'),
    (0xA9AB, C_STORE_RSP, 'Failure', 'Data set does not match SOP class'),
    (0xC123, C_STORE_RSP, 'Failure', 'Cannot understand'),
    (0xB007, C_STORE_RSP, 'Warning', 'Data set does not match SOP class'),
    (0xC123, C_FIND_RSP, 'Failure', 'Unable to process'),
    (0xA900, C_FIND_RSP, 'Failure', 'Identifier does not match SOP class'),
    (0x0000, C_FIND_RSP, 'Success', 'Matching is complete'),
    (0xCFFF, C_MOVE_RSP, 'Failure', 'Unable to process'),
    (0xA701, C_MOVE_RSP, 'Failure', 'Out of resources - unable to calculate number of matches'),
    (0xA702, C_GET_RSP, 'Failure', 'Out of resources - unable to perform sub-operations'),
    (0xAA04, C_GET_RSP, 'Failure', 'Invalid request'),
    (0x0000, C_MOVE_RSP, 'Success', 'Sub-operations complete - no failures'),
    (0x0000, C_GET_RSP, 'Success', 'Sub-operations complete - no failures or warnings'),
    # A7xx is a range for C-STORE only; C-FIND names 0xA700 alone.
    (0xA7F3, C_FIND_RSP, 'Failure', 'Service-specific failure'),
    (0xA801, C_GET_RSP, 'Failure', 'Service-specific failure'),
    (0xA7F3, None, 'Failure', 'Service-specific failure'),
    (0xC000, None, 'Failure', 'Service-specific failure'),
    (0x0101, None, 'Failure', 'General failure'),
    (0x02FF, C_STORE_RSP, 'Failure', 'General failure'),
    (0xFF00, None, 'Pending', 'Pending'),
    (0xFF01, None, 'Pending', 'Pending with warnings'),
    (0xFE00, None, 'Cancel', 'Cancel'),
    (0xFE00, 0x8030, 'Cancel', 'Cancel'),
])
def test_resolution(code, command, code_type, description):
    status = Status(code, command)
    assert (status.status_type, status.description) == (code_type, description)


@pytest.mark.parametrize('code', [0x0002, 0x00FF, 0x0300, 0x1234, 0x9FFF, 0xD000,
                                  0xFDFF, 0xFE01, 0xFF02, 0xFFFF])
def test_codes_outside_every_class_are_unknown_failures(code):
    for command in (None, C_STORE_RSP, C_MOVE_RSP):
        status = Status(code, command)
        assert status.status_type == 'Failure'
        assert status.is_failure
        assert status.description == 'Unknown status'
        assert str(status) == f'(0x{code:04X}) Failure: Unknown status'


def test_command_given_as_class_instance_int_or_request():
    expected = 'Coercion of data elements'
    assert Status(0xB000, CStoreRSPMessage).description == expected
    assert Status(0xB000, CStoreRSPMessage()).description == expected
    assert Status(0xB000, 0x8001).description == expected
    # A request names its response's service (PS3.7 E.1: bit 15 set on the response).
    assert Status(0xB000, CStoreRQMessage).description == expected
    assert Status(0xB000, CStoreRQMessage).command_field == C_STORE_RSP
    assert Status(0xB000, 0x0001).command_field == C_STORE_RSP


def test_command_with_no_command_field_value_is_general():
    status = Status(0xB000, DIMSEResponseMessage)
    assert status.command_field is None
    assert status.description == 'Service-specific warning'


@pytest.mark.parametrize('command', [object(), 'C-STORE', 1.5, True])
def test_unusable_command_is_a_type_error(command):
    with pytest.raises(TypeError, match='command'):
        Status(0x0000, command)


def test_command_field_out_of_range_is_a_value_error():
    with pytest.raises(ValueError, match='0x10000'):
        Status(0x0000, 0x10000)


@pytest.mark.parametrize('value', [-1, 0x10000])
def test_code_out_of_range_is_a_value_error(value):
    with pytest.raises(ValueError, match='outside 0x0000-0xFFFF'):
        Status(value)


@pytest.mark.parametrize('value', ['0xFF00', 1.0, None, True])
def test_code_that_is_not_an_int_is_a_type_error(value):
    with pytest.raises(TypeError, match='must be an int'):
        Status(value)


def test_int_index_and_packing():
    status = Status(0xFF01, C_FIND_RSP)
    assert int(status) == 0xFF01
    assert operator.index(status) == 0xFF01
    assert hex(status) == '0xff01'
    assert struct.pack('<H', status) == b'\x01\xff'


def test_equality_and_hash_by_code():
    assert Status(0xFF00) == 0xFF00
    assert 0xFF00 == Status(0xFF00)
    assert Status(0xFF00, C_FIND_RSP) == Status(0xFF00, C_MOVE_RSP)
    assert statuses.C_FIND_PENDING == statuses.C_GET_PENDING
    assert Status(0xFF00) != 0xFF01
    assert Status(0xFF00) != Status(0xFF01)
    assert Status(0xFF00) != '0xFF00'
    assert Status(0x0001) != True  # noqa: E712 - a bool is no status code
    assert hash(Status(0xC000, C_STORE_RSP)) == hash(0xC000) == hash(Status(0xC000))
    assert {0xC000: 'x'}[statuses.C_STORE_CANNOT_UNDERSTAND] == 'x'
    assert len({Status(0xB000), Status(0xB000, C_STORE_RSP), 0xB000}) == 1


def test_status_from_status_keeps_its_command_unless_given_one():
    again = Status(statuses.C_MOVE_WARNING)
    assert again.command_field == C_MOVE_RSP
    assert again.description == statuses.C_MOVE_WARNING.description
    other = Status(statuses.C_MOVE_WARNING, C_STORE_RSP)
    assert other.description == 'Coercion of data elements'


def test_immutable():
    status = Status(0x0000)
    for name in ('status_type', 'description', 'value', 'anything'):
        with pytest.raises(AttributeError):
            setattr(status, name, 'Failure')
        with pytest.raises(AttributeError):
            delattr(status, name)
    assert status.status_type == 'Success' and status.value == 0


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_code_and_meaning(protocol):
    status = statuses.C_MOVE_WARNING
    back = pickle.loads(pickle.dumps(status, protocol))
    assert type(back) is Status
    assert back == status
    assert back.command_field == C_MOVE_RSP
    assert str(back) == str(status)


def test_copy():
    status = Status(0xA7F3, C_STORE_RSP)
    for clone in (copy.copy(status), copy.deepcopy(status)):
        assert str(clone) == str(status) and clone.command_field == C_STORE_RSP


def test_known_statuses_shape():
    assert len(KNOWN_STATUSES) > 50
    for code, code_type, description, field in KNOWN_STATUSES:
        codes = code if isinstance(code, tuple) else (code,)
        assert all(0 <= c <= 0xFFFF for c in codes)
        if isinstance(code, tuple):
            assert len(code) == 2 and code[0] < code[1]
        assert code_type in STATUS_TYPES
        assert isinstance(description, str) and description
        assert field is None or field & 0x8000
    assert (0x0110, 'Failure', 'Processing failure', None) in KNOWN_STATUSES
    assert ((0xA700, 0xA7FF), 'Failure', 'Out of resources', C_STORE_RSP) in KNOWN_STATUSES


def test_add_status_for_one_command(registry):
    before = Status(0xC201, C_STORE_RSP)
    add_status(0xC201, 'Failure', 'Disk full', command=CStoreRSPMessage)
    assert Status(0xC201, C_STORE_RSP).description == 'Disk full'
    assert Status(0xC201, CStoreRQMessage).description == 'Disk full'
    assert Status(0xC201, 0x8030).description == 'Service-specific failure'
    assert Status(0xC201).description == 'Service-specific failure'
    # A status made earlier keeps the meaning it resolved.
    assert before.description == 'Cannot understand'
    assert KNOWN_STATUSES[-1] == (0xC201, 'Failure', 'Disk full', C_STORE_RSP)


def test_add_status_general_code_and_range(registry):
    add_status(0x0300, 'Warning', 'Private warning')
    assert str(Status(0x0300)) == '(0x0300) Warning: Private warning'
    assert Status(0x0300, C_MOVE_RSP).description == 'Private warning'
    add_status(0xD000, 'Failure', 'Private failure', end=0xD0FF)
    assert Status(0xD080).description == 'Private failure'
    assert Status(0xD100).description == 'Unknown status'
    assert KNOWN_STATUSES[-1] == ((0xD000, 0xD0FF), 'Failure', 'Private failure', None)


def test_a_status_given_again_resolves_against_the_registry_of_now(registry):
    before = Status(0xC202, C_STORE_RSP)
    add_status(0xC202, 'Warning', 'Kept with changes', command=CStoreRSPMessage)
    assert Status(before).status_type == 'Warning'
    assert Status(before.value, CStoreRSPMessage).status_type == 'Warning'
    assert before.status_type == 'Failure'


def test_add_status_range_of_one_is_a_code(registry):
    add_status(0xD200, 'Warning', 'One', end=0xD200)
    assert KNOWN_STATUSES[-1] == (0xD200, 'Warning', 'One', None)
    assert Status(0xD200).description == 'One'


def test_narrowest_range_wins_then_latest(registry):
    add_status(0xC500, 'Failure', 'Wide', end=0xC5FF, command=C_FIND_RSP)
    add_status(0xC510, 'Failure', 'Narrow', end=0xC51F, command=C_FIND_RSP)
    assert Status(0xC515, C_FIND_RSP).description == 'Narrow'
    assert Status(0xC520, C_FIND_RSP).description == 'Wide'
    # The wide C-FIND range (0xC000-0xCFFF) still covers the rest.
    assert Status(0xC600, C_FIND_RSP).description == 'Unable to process'
    add_status(0xC510, 'Warning', 'Newer', end=0xC51F, command=C_FIND_RSP)
    assert Status(0xC515, C_FIND_RSP).description == 'Newer'
    assert Status(0xC515, C_FIND_RSP).status_type == 'Warning'


def test_exact_code_beats_range_and_command_beats_general(registry):
    add_status(0xC515, 'Failure', 'Exact', command=C_FIND_RSP)
    add_status(0xC510, 'Failure', 'Range', end=0xC51F, command=C_FIND_RSP)
    assert Status(0xC515, C_FIND_RSP).description == 'Exact'
    add_status(0xC700, 'Failure', 'General exact')
    assert Status(0xC700, C_FIND_RSP).description == 'Unable to process'
    assert Status(0xC700).description == 'General exact'


def test_preserved_registry_undoes_what_was_added_inside_it():
    known = list(KNOWN_STATUSES)
    before = Status(0xC7F1, C_FIND_RSP).description, Status(0xD0F0).description
    with statuses.preserved_registry():
        add_status(0xC7F1, 'Warning', 'Temporary', command=C_FIND_RSP)
        add_status(0xD0F0, 'Warning', 'Temporary range', end=0xD0FF)
        assert Status(0xC7F1, C_FIND_RSP).status_type == 'Warning'
        assert Status(0xD0F0).description == 'Temporary range'
    assert (Status(0xC7F1, C_FIND_RSP).description, Status(0xD0F0).description) == before
    assert KNOWN_STATUSES == known


@pytest.mark.parametrize('args, kwargs, error, match', [
    ((0xC000, 'Fail', 'x'), {}, ValueError, 'code_type'),
    ((0x10000, 'Failure', 'x'), {}, ValueError, 'outside'),
    ((0xC010, 'Failure', 'x'), {'end': 0xC000}, ValueError, 'below'),
    ((0xC000, 'Failure', 'x'), {'end': 0x10000}, ValueError, 'outside'),
    (('0xC000', 'Failure', 'x'), {}, TypeError, 'must be an int'),
    ((0xC000, 'Failure', None), {}, TypeError, 'description'),
    ((0xC000, 'Failure', 'x'), {'command': 'C-STORE'}, TypeError, 'command'),
])
def test_add_status_rejects_bad_arguments(registry, args, kwargs, error, match):
    known = list(KNOWN_STATUSES)
    with pytest.raises(error, match=match):
        add_status(*args, **kwargs)
    assert KNOWN_STATUSES == known


def test_statuses_made_again_and_subclasses():
    # Every response makes a Status; the same code and service give an equal one.
    for _ in range(3):
        status = Status(0xFF00, 0x8020)
        assert (status.status_type, status.description, status.command_field) == \
            ('Pending', statuses.C_FIND_PENDING.description, 0x8020)
        assert Status(0xFF00).command_field is None
        # The service still decides the meaning of a code made before for another.
        assert Status(0xB000, 0x8001).description == 'Coercion of data elements'
        assert Status(0xB000, 0x8021).description.startswith('Sub-operations complete')

    class Mine(Status):
        __slots__ = ()

        def __init__(self, value, command=None):
            super().__init__(value, command)

    # A Status given again keeps its service unless told another.
    coercion = Status(0xB000, 0x8001)
    assert Status(coercion).description == 'Coercion of data elements'
    assert Status(coercion, 0x8021).description.startswith('Sub-operations complete')

    mine = Mine(0xFF00, 0x8020)
    assert type(mine) is Mine and mine.is_pending and mine == 0xFF00
    assert type(Status(0xFF00, 0x8020)) is Status
