"""DIMSE status codes: the ``Status`` value and the registry that gives each code its meaning.

A code's type (Success, Warning, Failure, Cancel, Pending) follows PS3.7 Annex C; its
meaning may depend on the service, so a code resolves against the response it came in.

Resolution, for ``Status(code, command)``:

1. the entry registered for exactly this code and this command;
2. a range registered for this command (e.g. C-STORE ``A7xx``; the narrowest wins);
3. the entry registered for exactly this code with no command (PS3.7 Annex C);
4. a range registered with no command: the status classes of PS3.7 Annex C
   (``01xx``/``02xx`` and ``Axxx``/``Cxxx`` failure, ``Bxxx`` warning);
5. otherwise 'Failure' with the description 'Unknown status'.

``command`` names the service by its DIMSE response: a message class such as
``CFindRSPMessage``, any object or class with an ``int`` ``command_field`` attribute, or
the command field itself (PS3.7 Annex E.1: C-STORE-RSP ``0x8001``, C-GET-RSP ``0x8010``,
C-FIND-RSP ``0x8020``, C-MOVE-RSP ``0x8021``, C-ECHO-RSP ``0x8030``, N-EVENT-REPORT-RSP
``0x8100``, N-GET-RSP ``0x8110``, N-SET-RSP ``0x8120``, N-ACTION-RSP ``0x8130``,
N-CREATE-RSP ``0x8140``, N-DELETE-RSP ``0x8150``). A request's command field names the
same service: the response's field is the request's with bit 15 set, so ``0x0001``
(C-STORE-RQ) resolves as ``0x8001``.

``add_status`` registers more codes (for a private service, say); ``KNOWN_STATUSES`` lists
every registered entry as ``(code or (first, last), type, description, command field or
None)``. A ``Status`` resolves its meaning when it is made. ``preserved_registry`` undoes
the registrations made inside a ``with`` block (for tests that register codes).
"""

from __future__ import annotations

import contextlib
import operator
import threading
from typing import Any, Iterator, List, Optional, Tuple, Union

__all__ = [
    'Status', 'add_status', 'preserved_registry', 'KNOWN_STATUSES', 'STATUS_TYPES',
    'SUCCESS', 'PROCESSING_FAILURE', 'SOP_CLASS_NOT_SUPPORTED', 'UNRECOGNIZED_OPERATION',
    'C_STORE_CANNOT_UNDERSTAND', 'C_STORE_CANNON_UNDERSTAND', 'C_STORE_OUT_OF_RESOURCES',
    'C_STORE_DATA_SET_DOES_NOT_MATCH_SOP_CLASS', 'C_STORE_COERCION_OF_DATA_ELEMENTS',
    'C_STORE_ELEMENTS_DISCARDED',
    'C_FIND_PENDING', 'C_FIND_PENDING_WARNING', 'C_FIND_UNABLE_TO_PROCESS',
    'C_FIND_OUT_OF_RESOURCES', 'C_FIND_CANCEL',
    'C_GET_PENDING', 'C_GET_WARNING', 'C_GET_UNABLE_TO_PROCESS', 'C_GET_CANCEL',
    'C_MOVE_PENDING', 'C_MOVE_WARNING', 'C_MOVE_UNABLE_TO_PROCESS',
    'C_MOVE_DESTINATION_UNKNOWN', 'C_MOVE_CANCEL',
    'UNKNOWN',
]

#: The five status types of PS3.7 Annex C.
STATUS_TYPES = ('Success', 'Warning', 'Failure', 'Cancel', 'Pending')

# Command fields of the responses, PS3.7 Annex E.1. dimse.py (above this module) owns
# the message classes; the registry is keyed by these ints so it needs none of them.
_C_STORE_RSP = 0x8001
_C_GET_RSP = 0x8010
_C_FIND_RSP = 0x8020
_C_MOVE_RSP = 0x8021
_C_CANCEL_RQ = 0x0FFF  # the one request without a response

_MISSING = object()

Code = Union[int, Tuple[int, int]]
Entry = Tuple[Code, str, str, Optional[int]]

#: Every registered entry: ``(code or (first, last), type, description, command field
#: or None)``. The table below is the standard's; ``add_status`` appends to it.
KNOWN_STATUSES: List[Entry] = [
    # General statuses, PS3.7 Annex C (C.1 success, C.3 cancel, C.4 warning, C.5 failure).
    (0x0000, 'Success', 'Success', None),
    (0x0001, 'Warning', 'Requested optional attributes are not supported', None),
    (0x0105, 'Failure', 'No such attribute', None),
    (0x0106, 'Failure', 'Invalid attribute value', None),
    (0x0107, 'Warning', 'Attribute list error', None),
    (0x0110, 'Failure', 'Processing failure', None),
    (0x0111, 'Failure', 'Duplicate SOP instance', None),
    (0x0112, 'Failure', 'No such SOP instance', None),
    (0x0113, 'Failure', 'No such event type', None),
    (0x0114, 'Failure', 'No such argument', None),
    (0x0115, 'Failure', 'Invalid argument value', None),
    (0x0116, 'Warning', 'Attribute value out of range', None),
    (0x0117, 'Failure', 'Invalid object instance', None),
    (0x0118, 'Failure', 'No such SOP class', None),
    (0x0119, 'Failure', 'Class-instance conflict', None),
    (0x0120, 'Failure', 'Missing attribute', None),
    (0x0121, 'Failure', 'Missing attribute value', None),
    (0x0122, 'Failure', 'SOP class not supported', None),
    (0x0123, 'Failure', 'No such action', None),
    (0x0124, 'Failure', 'Not authorized', None),
    (0x0210, 'Failure', 'Duplicate invocation', None),
    (0x0211, 'Failure', 'Unrecognized operation', None),
    (0x0212, 'Failure', 'Mistyped argument', None),
    (0x0213, 'Failure', 'Resource limitation', None),
    (0xFE00, 'Cancel', 'Cancel', None),
    (0xFF00, 'Pending', 'Pending', None),
    (0xFF01, 'Pending', 'Pending with warnings', None),
    # The status classes, PS3.7 Annex C: codes no table above or below names.
    ((0x0100, 0x02FF), 'Failure', 'General failure', None),
    ((0xA000, 0xAFFF), 'Failure', 'Service-specific failure', None),
    ((0xB000, 0xBFFF), 'Warning', 'Service-specific warning', None),
    ((0xC000, 0xCFFF), 'Failure', 'Service-specific failure', None),

    # C-STORE, PS3.4 Table B.2-1.
    ((0xA700, 0xA7FF), 'Failure', 'Out of resources', _C_STORE_RSP),
    ((0xA900, 0xA9FF), 'Failure', 'Data set does not match SOP class', _C_STORE_RSP),
    ((0xC000, 0xCFFF), 'Failure', 'Cannot understand', _C_STORE_RSP),
    (0xB000, 'Warning', 'Coercion of data elements', _C_STORE_RSP),
    (0xB007, 'Warning', 'Data set does not match SOP class', _C_STORE_RSP),
    (0xB006, 'Warning', 'Elements discarded', _C_STORE_RSP),

    # C-FIND, PS3.4 Table C.4-1.
    (0xA700, 'Failure', 'Out of resources', _C_FIND_RSP),
    (0xA900, 'Failure', 'Identifier does not match SOP class', _C_FIND_RSP),
    ((0xC000, 0xCFFF), 'Failure', 'Unable to process', _C_FIND_RSP),
    (0xFE00, 'Cancel', 'Matching terminated due to cancel request', _C_FIND_RSP),
    (0x0000, 'Success', 'Matching is complete', _C_FIND_RSP),
    (0xFF00, 'Pending', 'Matches are continuing - current match is supplied and any '
                        'optional keys were supported in the same manner as required keys',
     _C_FIND_RSP),
    (0xFF01, 'Pending', 'Matches are continuing - warning that one or more optional keys '
                        'were not supported for existence and/or matching for this '
                        'identifier', _C_FIND_RSP),

    # C-MOVE, PS3.4 Table C.4-2; AAxx from frame-level and composite instance retrieve
    # (PS3.4 Annex Y and Z).
    (0xA701, 'Failure', 'Out of resources - unable to calculate number of matches',
     _C_MOVE_RSP),
    (0xA702, 'Failure', 'Out of resources - unable to perform sub-operations', _C_MOVE_RSP),
    (0xA801, 'Failure', 'Move destination unknown', _C_MOVE_RSP),
    (0xA900, 'Failure', 'Identifier does not match SOP class', _C_MOVE_RSP),
    ((0xC000, 0xCFFF), 'Failure', 'Unable to process', _C_MOVE_RSP),
    (0xAA00, 'Failure', 'None of the frames requested were found in the SOP instance',
     _C_MOVE_RSP),
    (0xAA01, 'Failure', 'Unable to create new object for this SOP class', _C_MOVE_RSP),
    (0xAA02, 'Failure', 'Unable to extract frames', _C_MOVE_RSP),
    (0xAA03, 'Failure', 'Time-based request received for a non-time-based original SOP '
                        'instance', _C_MOVE_RSP),
    (0xAA04, 'Failure', 'Invalid request', _C_MOVE_RSP),
    (0xFE00, 'Cancel', 'Sub-operations terminated due to cancel indication', _C_MOVE_RSP),
    (0xB000, 'Warning', 'Sub-operations complete - one or more failures', _C_MOVE_RSP),
    (0x0000, 'Success', 'Sub-operations complete - no failures', _C_MOVE_RSP),
    (0xFF00, 'Pending', 'Sub-operations are continuing', _C_MOVE_RSP),

    # C-GET, PS3.4 Table C.4-3; AAxx as for C-MOVE.
    (0xA701, 'Failure', 'Out of resources - unable to calculate number of matches',
     _C_GET_RSP),
    (0xA702, 'Failure', 'Out of resources - unable to perform sub-operations', _C_GET_RSP),
    (0xA900, 'Failure', 'Identifier does not match SOP class', _C_GET_RSP),
    ((0xC000, 0xCFFF), 'Failure', 'Unable to process', _C_GET_RSP),
    (0xAA00, 'Failure', 'None of the frames requested were found in the SOP instance',
     _C_GET_RSP),
    (0xAA01, 'Failure', 'Unable to create new object for this SOP class', _C_GET_RSP),
    (0xAA02, 'Failure', 'Unable to extract frames', _C_GET_RSP),
    (0xAA03, 'Failure', 'Time-based request received for a non-time-based original SOP '
                        'instance', _C_GET_RSP),
    (0xAA04, 'Failure', 'Invalid request', _C_GET_RSP),
    (0xFE00, 'Cancel', 'Sub-operations terminated due to cancel indication', _C_GET_RSP),
    (0xB000, 'Warning', 'Sub-operations complete - one or more failures or warnings',
     _C_GET_RSP),
    (0x0000, 'Success', 'Sub-operations complete - no failures or warnings', _C_GET_RSP),
    (0xFF00, 'Pending', 'Sub-operations are continuing', _C_GET_RSP),
]

# (command field or None, code) -> (type, description)
_codes: dict = {}
# command field or None -> tuple of (first, last, type, description), narrowest first.
# Replaced, never mutated, so a reader always sees a whole tuple without the lock.
_ranges: dict = {}
_lock = threading.Lock()
# (code, command) -> the Status made for them, by ``Status.__new__``; replaced by a new
# one at every change to the registry (a Status made afterwards sees it), emptied when
# full (a peer may send any code).
_made: dict = {}
_MADE_SIZE = 1024


def _command_field(command: Any) -> Optional[int]:
    """The response command field that ``command`` names, or None for no command."""
    if command is None:
        return None
    if isinstance(command, int) and not isinstance(command, bool):
        field = command
    else:
        field = getattr(command, 'command_field', _MISSING)
        if field is None:  # a base message class: no particular service
            return None
        if field is _MISSING or not isinstance(field, int) or isinstance(field, bool):
            raise TypeError(
                'command must be a DIMSE message (class), an object with an int '
                f'command_field, or a command field int; got {command!r}')
    if not 0 <= field <= 0xFFFF:
        raise ValueError(f'command field 0x{field:X} is outside 0x0000-0xFFFF')
    if field != _C_CANCEL_RQ:
        field |= 0x8000  # a request names its response (PS3.7 E.1)
    return field


def _check_code(name: str, code: Any) -> int:
    try:
        if isinstance(code, bool):
            raise TypeError
        code = operator.index(code)  # int, or an int-like such as numpy.uint16
    except TypeError:
        raise TypeError(f'{name} must be an int, got {code!r}') from None
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f'{name} 0x{code:X} is outside 0x0000-0xFFFF (Status is US)')
    return code


def _register(code: int, code_type: str, description: str, end: Optional[int],
              field: Optional[int]) -> None:
    global _made
    with _lock:
        _made = {}
        if end is None or end == code:
            _codes[(field, code)] = (code_type, description)
            return
        entries = list(_ranges.get(field, ()))
        width = end - code
        # Narrowest first; a new range goes before older ones of its width, so it wins.
        at = next((i for i, e in enumerate(entries) if e[1] - e[0] >= width), len(entries))
        entries.insert(at, (code, end, code_type, description))
        _ranges[field] = tuple(entries)


def add_status(code: int, code_type: str, description: str, end: Optional[int] = None,
               command: Any = None) -> None:
    """Register a status code (or the range ``code``..``end``) with its type and meaning.

    :param code: the status code, or the first of a range when ``end`` is given
    :param code_type: 'Success', 'Warning', 'Failure', 'Cancel' or 'Pending'
    :param description: what the code means, as ``Status.description`` will say it
    :param end: last code of the range (inclusive); None registers one code
    :param command: the service the code belongs to (a DIMSE message class, an object
        with ``command_field``, or the command field int); None for every service
    :raises ValueError: unknown ``code_type``, a code outside 0x0000-0xFFFF, or
        ``end`` below ``code``
    :raises TypeError: a code that is not an int, or an unusable ``command``

    Statuses made afterwards see the new entry; existing ``Status`` objects keep the
    meaning they resolved when made.
    """
    code = _check_code('code', code)
    if end is not None:
        end = _check_code('end', end)
        if end < code:
            raise ValueError(f'end 0x{end:04X} is below code 0x{code:04X}')
    if code_type not in STATUS_TYPES:
        raise ValueError(f'code_type must be one of {STATUS_TYPES}, got {code_type!r}')
    if not isinstance(description, str):
        raise TypeError(f'description must be a str, got {description!r}')
    field = _command_field(command)
    _register(code, code_type, description, end, field)
    KNOWN_STATUSES.append(
        ((code, end) if end is not None and end != code else code,
         code_type, description, field))


@contextlib.contextmanager
def preserved_registry() -> Iterator[None]:
    """Undo, when the ``with`` block ends, every ``add_status`` made inside it.

    The registry is process-wide; a test that registers codes of its own (as
    ``warnings.catch_warnings`` does for warning filters) leaves it as it found it.
    Not for use while other threads register codes.
    """
    global _made
    with _lock:
        codes, ranges, known = dict(_codes), dict(_ranges), list(KNOWN_STATUSES)
    try:
        yield
    finally:
        with _lock:
            _made = {}
            _codes.clear()
            _codes.update(codes)
            _ranges.clear()
            _ranges.update(ranges)
            KNOWN_STATUSES[:] = known


def _resolve(code: int, field: Optional[int]) -> Tuple[str, str]:
    scopes = (None,) if field is None else (field, None)
    for scope in scopes:
        hit = _codes.get((scope, code))
        if hit is not None:
            return hit
        for first, last, code_type, description in _ranges.get(scope, ()):
            if first <= code <= last:
                return code_type, description
    return 'Failure', 'Unknown status'


class Status:
    """A DIMSE status code (Status (0000,0900)) with its type and meaning.

    :param value: the code, 0x0000-0xFFFF (an int or another ``Status``)
    :param command: the service it answers (see the module docstring); codes such as
        0xB000, 0xCxxx and 0xFF00 mean different things for different services

    Compares equal to, and hashes like, its code as an int, whatever the command:
    ``Status(0xFF00, CFindRSPMessage) == 0xFF00 == Status(0xFF00)``. It is immutable
    and picklable, and ``int(status)`` (also ``struct.pack``, ``hex``) gives the code.
    """

    __slots__ = ('_value', '_command_field', '_status_type', '_description')

    def __new__(cls, value: Union[int, Status], command: Any = None) -> Status:
        # Every response makes one: an int code with no command, a command field or a
        # message class is looked up among those already made (a Status is immutable).
        if type(value) is Status:
            # Its code, for its service unless told another (the field names the same
            # service as the message class it was made with).
            if command is None:
                command = value._command_field
            value = value._value
        cached = cls is Status and type(value) is int and (
            command is None or type(command) is int or isinstance(command, type))
        if cached:
            # This dict, even if a registration replaces it meanwhile (then what is
            # made now is not kept for later).
            known = _made
            made = known.get((value, command))
            if made is not None:
                return made
        if isinstance(value, Status):
            field = value._command_field if command is None else _command_field(command)
            code = value._value
        else:
            field = _command_field(command)
            code = _check_code('status value', value)
        status_type, description = _resolve(code, field)
        self = object.__new__(cls)
        set_ = object.__setattr__
        set_(self, '_value', code)
        set_(self, '_command_field', field)
        set_(self, '_status_type', status_type)
        set_(self, '_description', description)
        if cached:
            if len(known) >= _MADE_SIZE:
                known.clear()
            known[(value, command)] = self
        return self

    def __init__(self, value: Union[int, Status], command: Any = None) -> None:
        """Made by ``__new__``; kept for subclasses that call it."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f'Status is immutable; cannot set {name!r}')

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f'Status is immutable; cannot delete {name!r}')

    def __reduce__(self):
        return type(self), (self._value, self._command_field)

    @property
    def value(self) -> int:
        """The code as an int."""
        return self._value

    @property
    def command_field(self) -> Optional[int]:
        """The response command field the code was resolved for, or None."""
        return self._command_field

    @property
    def status_type(self) -> str:
        """'Success', 'Warning', 'Failure', 'Cancel' or 'Pending'."""
        return self._status_type

    @property
    def description(self) -> str:
        """What the code means for its service (or in general)."""
        return self._description

    @property
    def is_success(self) -> bool:
        return self._status_type == 'Success'

    @property
    def is_pending(self) -> bool:
        return self._status_type == 'Pending'

    @property
    def is_failure(self) -> bool:
        return self._status_type == 'Failure'

    @property
    def is_warning(self) -> bool:
        return self._status_type == 'Warning'

    @property
    def is_cancel(self) -> bool:
        return self._status_type == 'Cancel'

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Status):
            return self._value == other._value
        if isinstance(other, int) and not isinstance(other, bool):
            return self._value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f'Status(0x{self._value:04X})'

    def __str__(self) -> str:
        return f'(0x{self._value:04X}) {self._status_type}: {self._description}'


for _code, _type, _description, _field in KNOWN_STATUSES:
    if isinstance(_code, tuple):
        _register(_code[0], _type, _description, _code[1], _field)
    else:
        _register(_code, _type, _description, None, _field)
del _code, _type, _description, _field

#: (0x0000) Success
SUCCESS = Status(0x0000)
#: (0x0110) Processing failure
PROCESSING_FAILURE = Status(0x0110)
#: (0x0122) SOP class not supported
SOP_CLASS_NOT_SUPPORTED = Status(0x0122)
#: (0x0211) Unrecognized operation: not one the SOP class supports (PS3.7 C.5.6, C.5.29)
UNRECOGNIZED_OPERATION = Status(0x0211)

#: (0xC000) Cannot understand (C-STORE)
C_STORE_CANNOT_UNDERSTAND = Status(0xC000, _C_STORE_RSP)
#: The 0.9.x spelling of ``C_STORE_CANNOT_UNDERSTAND``
C_STORE_CANNON_UNDERSTAND = C_STORE_CANNOT_UNDERSTAND
#: (0xA700) Out of resources (C-STORE)
C_STORE_OUT_OF_RESOURCES = Status(0xA700, _C_STORE_RSP)
#: (0xA900) Data set does not match SOP class (C-STORE)
C_STORE_DATA_SET_DOES_NOT_MATCH_SOP_CLASS = Status(0xA900, _C_STORE_RSP)
#: (0xB000) Coercion of data elements (C-STORE)
C_STORE_COERCION_OF_DATA_ELEMENTS = Status(0xB000, _C_STORE_RSP)
#: (0xB006) Elements discarded (C-STORE)
C_STORE_ELEMENTS_DISCARDED = Status(0xB006, _C_STORE_RSP)

#: (0xFF00) Matches are continuing, optional keys supported (C-FIND)
C_FIND_PENDING = Status(0xFF00, _C_FIND_RSP)
#: (0xFF01) Matches are continuing, one or more optional keys not supported (C-FIND)
C_FIND_PENDING_WARNING = Status(0xFF01, _C_FIND_RSP)
#: (0xC000) Unable to process (C-FIND)
C_FIND_UNABLE_TO_PROCESS = Status(0xC000, _C_FIND_RSP)
#: (0xA700) Out of resources (C-FIND)
C_FIND_OUT_OF_RESOURCES = Status(0xA700, _C_FIND_RSP)
#: (0xFE00) Matching terminated due to cancel request (C-FIND)
C_FIND_CANCEL = Status(0xFE00, _C_FIND_RSP)

#: (0xFF00) Sub-operations are continuing (C-GET)
C_GET_PENDING = Status(0xFF00, _C_GET_RSP)
#: (0xB000) Sub-operations complete - one or more failures or warnings (C-GET)
C_GET_WARNING = Status(0xB000, _C_GET_RSP)
#: (0xC000) Unable to process (C-GET)
C_GET_UNABLE_TO_PROCESS = Status(0xC000, _C_GET_RSP)
#: (0xFE00) Sub-operations terminated due to cancel indication (C-GET)
C_GET_CANCEL = Status(0xFE00, _C_GET_RSP)

#: (0xFF00) Sub-operations are continuing (C-MOVE)
C_MOVE_PENDING = Status(0xFF00, _C_MOVE_RSP)
#: (0xB000) Sub-operations complete - one or more failures (C-MOVE)
C_MOVE_WARNING = Status(0xB000, _C_MOVE_RSP)
#: (0xC000) Unable to process (C-MOVE)
C_MOVE_UNABLE_TO_PROCESS = Status(0xC000, _C_MOVE_RSP)
#: (0xA801) Move destination unknown (C-MOVE)
C_MOVE_DESTINATION_UNKNOWN = Status(0xA801, _C_MOVE_RSP)
#: (0xFE00) Sub-operations terminated due to cancel indication (C-MOVE)
C_MOVE_CANCEL = Status(0xFE00, _C_MOVE_RSP)

#: A status of unknown meaning: 'Failure', 'Unknown status'. PS3.7 Annex C defines no
#: 0xFFFF and forbids codes outside its classes, so no peer can send a real 0xFFFF.
UNKNOWN = Status(0xFFFF)
