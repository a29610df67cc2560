"""Query keys from the command line, the way DCMTK's ``-k`` takes them.

A key is ``PATH=VALUE`` or just ``PATH`` (an empty value: universal matching, PS3.4
C.2.2.2.3). ``PATH`` is a keyword (``PatientName``) or a tag (``(0010,0010)``,
``0010,0010``, ``00100010``), with sequence items as ``Seq[0].Keyword``.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional, Tuple

from pydicom import datadict
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

_TAG = re.compile(r'^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$')
_COMPONENT = re.compile(r'^(?P<name>[^\[\]]+)(?:\[(?P<index>\d+)\])?$')
_INT_VRS = frozenset({'IS', 'SL', 'SS', 'UL', 'US', 'SV', 'UV'})
_FLOAT_VRS = frozenset({'DS', 'FL', 'FD'})
# Items a path may create in one sequence; a larger index is surely a typo.
_MAX_ITEM_INDEX = 1000


class BadKey(ValueError):
    """A ``-k`` key that cannot be understood; the message says why."""


def parse_tag(name: str) -> int:
    """The tag a keyword or ``(gggg,eeee)`` / ``gggg,eeee`` / ``ggggeeee`` names."""
    match = _TAG.match(name.strip())
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = datadict.tag_for_keyword(name.strip())
    if tag is None:
        raise BadKey(f'unknown attribute {name.strip()!r}')
    return tag


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
        raise BadKey(f'key {spec!r} names no attribute')
    path = []
    for component in path_text.strip().split('.'):
        match = _COMPONENT.match(component.strip())
        if not match:
            raise BadKey(f'key {spec!r}: cannot read {component!r}')
        index = match.group('index')
        path.append((parse_tag(match.group('name')), None if index is None else int(index)))
    for tag, index in path[:-1]:
        if index is None:
            raise BadKey(f'key {spec!r}: {Tag(tag)} needs an item index, e.g. [0]')
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
        raise BadKey(f'key {spec!r}: {value!r} is not a valid {vr} value') from None
    return numbers[0] if len(numbers) == 1 else numbers


def apply_key(ds: Dataset, spec: str) -> None:
    """Set one ``-k`` key in ``ds`` (replacing what was there)."""
    path, value = parse_key(spec)
    current = ds
    for tag, index in path[:-1]:
        if _vr_of(tag) != 'SQ':
            raise BadKey(f'key {spec!r}: {Tag(tag)} is not a sequence')
        if index > _MAX_ITEM_INDEX:
            raise BadKey(f'key {spec!r}: item index {index} is too large')
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
            raise BadKey(f'key {spec!r}: a sequence takes no value; set its items\' '
                            'attributes, e.g. Seq[0].Keyword=VALUE')
        if tag not in current:
            current.add_new(tag, 'SQ', Sequence())
        if index is not None:
            items = current[tag].value
            while len(items) <= min(index, _MAX_ITEM_INDEX):
                items.append(Dataset())
        return
    if index is not None:
        raise BadKey(f'key {spec!r}: {Tag(tag)} is not a sequence')
    current.add_new(tag, vr, _convert(vr, value, spec))


def build_identifier(specs: Iterable[str], base: Optional[Dataset] = None) -> Dataset:
    """A query identifier: ``base`` (e.g. read from a query file) with the keys applied."""
    ds = Dataset() if base is None else base
    for spec in specs:
        apply_key(ds, spec)
    return ds
