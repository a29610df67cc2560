"""Query keys from the command line, the way DCMTK's ``-k`` takes them.

A key is ``PATH=VALUE`` or just ``PATH`` (an empty value: universal matching, PS3.4
C.2.2.2.3). ``PATH`` is a keyword (``PatientName``) or a tag (``(0010,0010)``,
``0010,0010``, ``00100010``), with sequence items as ``Seq[0].Keyword``.

A key that cannot be read is refused (``BadKey``: "bad key '...': why"). A value that
does not suit its VR (``StudyDate=notadate``) is sent as given, as DCMTK's tools send
it, after one warning line in the log; pydicom's own warning is kept out of the way.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Iterable, List, Optional, Tuple

from pydicom import config, datadict
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

try:
    from pydicom.valuerep import validate_value
except ImportError:  # pragma: no cover - every supported pydicom (>= 2.4) has it
    validate_value = None

logger = logging.getLogger(__name__)

# ``(gggg,eeee)`` with both parentheses or neither: "(0010,0010" is a typo, not a tag.
_TAG = re.compile(r'^(?:\((?P<g1>[0-9A-Fa-f]{4}),?(?P<e1>[0-9A-Fa-f]{4})\)'
                  r'|(?P<g2>[0-9A-Fa-f]{4}),?(?P<e2>[0-9A-Fa-f]{4}))$')
# VRs whose query values may hold the wildcards * and ? (PS3.4 C.2.2.2.4).
_WILDCARD_VRS = frozenset({'AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT'})
_COMPONENT = re.compile(r'^(?P<name>[^\[\]]+)(?:\[(?P<index>\d+)\])?$')
_INT_VRS = frozenset({'IS', 'SL', 'SS', 'UL', 'US', 'SV', 'UV'})
_FLOAT_VRS = frozenset({'DS', 'FL', 'FD'})
# Items a path may create in one sequence; a larger index is surely a typo.
_MAX_ITEM_INDEX = 1000


class BadKey(ValueError):
    """A ``-k`` key that cannot be understood.

    ``reason`` says why; ``spec`` is the key as typed (None when only a part of it was
    read, e.g. by ``parse_tag``). ``str()`` is "bad key '<spec>': <reason>".
    """

    def __init__(self, reason: str, spec: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.spec = spec

    def __str__(self) -> str:
        return self.reason if self.spec is None else f'bad key {self.spec!r}: {self.reason}'


def parse_tag(name: str) -> int:
    """The tag a keyword or ``(gggg,eeee)`` / ``gggg,eeee`` / ``ggggeeee`` names."""
    name = name.strip()
    match = _TAG.match(name)
    if match:
        group, element = match.group('g1', 'e1') if match.group('g1') else match.group('g2', 'e2')
        return int(group + element, 16)
    tag = datadict.tag_for_keyword(name)
    if tag is not None:
        return tag
    if name.startswith('(') or name.endswith(')'):
        raise BadKey(f'{name!r} is not a tag; write (gggg,eeee)')
    raise BadKey(f'unknown attribute {name!r}{_suggestion(name)}')


def _suggestion(name: str) -> str:
    """"; did you mean Keyword?" for a misspelt keyword, or nothing."""
    keywords = [entry[4] for entry in datadict.DicomDictionary.values() if entry[4]]
    same = [k for k in keywords if k.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, keywords, n=1, cutoff=0.8)
    return f'; did you mean {close[0]}?' if close else ''


def _vr_of(tag: int) -> str:
    try:
        vr = datadict.dictionary_VR(tag)
    except KeyError:
        if Tag(tag).is_private:
            raise BadKey(f'private attribute {Tag(tag)} has no known VR') from None
        raise BadKey(f'attribute {Tag(tag)} is not in the DICOM dictionary') from None
    return vr.split(' or ')[0]  # 'US or SS': the first is as good as any for a query


def parse_key(spec: str) -> Tuple[List[Tuple[int, Optional[int]]], Optional[str]]:
    """``(path, value)`` of one key: path items are ``(tag, item index or None)``."""
    path_text, sep, value = spec.partition('=')
    if not path_text.strip():
        raise BadKey('names no attribute', spec)
    path = []
    for component in path_text.strip().split('.'):
        match = _COMPONENT.match(component.strip())
        if not match:
            raise BadKey(f'cannot read {component!r}', spec)
        index = match.group('index')
        try:
            tag = parse_tag(match.group('name'))
        except BadKey as exc:
            raise BadKey(exc.reason, spec) from None
        path.append((tag, None if index is None else int(index)))
    for tag, index in path[:-1]:
        if index is None:
            raise BadKey(f'{Tag(tag)} needs an item index, e.g. [0]', spec)
    return path, (value if sep else None)


def _convert(vr: str, value: Optional[str], spec: str):
    if value is None or value == '':
        return None
    parts = value.split('\\')
    try:
        if vr in _INT_VRS:
            numbers = [int(part) for part in parts]
        elif vr in _FLOAT_VRS:
            numbers = [float(part) for part in parts]
        else:
            return value
    except ValueError:
        raise BadKey(f'{value!r} is not a valid {vr} value', spec) from None
    return numbers[0] if len(numbers) == 1 else numbers


def apply_key(ds: Dataset, spec: str) -> None:
    """Set one ``-k`` key in ``ds`` (replacing what was there).

    Raises ``BadKey`` for a key that cannot be read; a value unfit for its VR is set
    all the same, with a warning logged (``check_value``).
    """
    try:
        _apply(ds, spec)
    except BadKey as exc:
        if exc.spec is None:
            raise BadKey(exc.reason, spec) from None
        raise


def _apply(ds: Dataset, spec: str) -> None:
    path, value = parse_key(spec)
    current = ds
    for tag, index in path[:-1]:
        if _vr_of(tag) != 'SQ':
            raise BadKey(f'{Tag(tag)} is not a sequence', spec)
        if index > _MAX_ITEM_INDEX:
            raise BadKey(f'item index {index} is too large', spec)
        if tag not in current or current[tag].VR != 'SQ':
            current.add_new(tag, 'SQ', Sequence())
        items = current[tag].value
        while len(items) <= index:
            items.append(Dataset())
        current = items[index]
    tag, index = path[-1]
    vr = _vr_of(tag)
    if vr == 'SQ':
        if value:
            raise BadKey('a sequence takes no value; set its items\' attributes, e.g. '
                         'Seq[0].Keyword=VALUE', spec)
        if tag not in current:
            current.add_new(tag, 'SQ', Sequence())
        if index is not None:
            items = current[tag].value
            while len(items) <= min(index, _MAX_ITEM_INDEX):
                items.append(Dataset())
        return
    if index is not None:
        raise BadKey(f'{Tag(tag)} is not a sequence', spec)
    converted = _convert(vr, value, spec)
    problem = check_value(vr, converted)
    if problem:
        logger.warning('key %r: %s; sent as given', spec, problem)
    # Validation is done above, once and in our words: pydicom's would print its
    # warning (with a file path) on top of ours.
    current[tag] = DataElement(tag, vr, converted, validation_mode=config.IGNORE)


def check_value(vr: str, value) -> Optional[str]:
    """Why ``value`` does not suit ``vr`` as a query value, or None when it does.

    The query forms of PS3.4 C.2.2.2 pass: ranges of DA, TM and DT (pydicom accepts
    them) and the wildcards ``*`` and ``?`` where they are allowed.
    """
    if validate_value is None or not isinstance(value, str) or not value:
        return None
    for part in value.split('\\'):
        if vr in _WILDCARD_VRS:
            part = part.replace('*', '').replace('?', '')
        try:
            validate_value(vr, part, config.RAISE)
        except ValueError as exc:
            text = str(exc).split(' Please see ')[0].rstrip('.')
            if text.startswith('Invalid value for VR'):
                return f'{part!r} is not a valid {vr} value'
            return text[:1].lower() + text[1:]
    return None


def build_identifier(specs: Iterable[str], base: Optional[Dataset] = None) -> Dataset:
    """A query identifier: ``base`` (e.g. read from a query file) with the keys applied."""
    ds = Dataset() if base is None else base
    for spec in specs:
        apply_key(ds, spec)
    return ds
