"""Attribute values as qrscp's archive index reads and keeps them: read from a data
set without ever failing (a value that does not parse as its VR is kept as written),
and normalised so that stored values and query values compare as text (dates
without dots, times padded to seconds, person names without trailing ``^``;
PS3.5 6.2).
"""

from __future__ import annotations

import datetime
import re
from typing import Optional

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pynetdicom2.apps.qrschema import COLUMNS

# The VRs whose values use the default repertoire only (PS3.5 6.2): read straight
# from the file's bytes, never through a conversion that may fail.
_ASCII_VRS = frozenset({'AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'TM', 'UI'})


def is_multiple(value) -> bool:
    """Whether ``value`` holds several values (pydicom's MultiValue, a list)."""
    return isinstance(value, (list, tuple, MultiValue))


def clean(text: str) -> str:
    """``text`` without the padding (NUL or space) and the spaces around it."""
    return text.rstrip('\x00 ').strip()


def element_text(ds: Dataset, tag: int, vr: str) -> str:
    """The value of ``ds``'s element ``tag`` as text (values joined by ``\\``).

    Never raises: a value that does not parse as its VR (IS "abc") is given as it
    was written. Default-repertoire VRs are read from the raw bytes, so pydicom
    never converts them; other text goes through pydicom (character sets).
    """
    elem = ds.get_item(tag)
    if elem is None:
        return ''
    if elem.is_raw:
        raw = elem.value
        if raw is None:
            return ''
        if vr in _ASCII_VRS:
            return clean(bytes(raw).decode('latin-1'))
        try:
            elem = ds[tag]
        except Exception:  # pydicom raises many kinds on a value it cannot convert
            return clean(bytes(raw).decode('latin-1'))
    value = elem.value
    if value is None:
        return ''
    if isinstance(value, (bytes, bytearray)):
        return clean(bytes(value).decode('latin-1'))
    if is_multiple(value):
        return '\\'.join(clean(str(v)) for v in value)
    return clean(str(value))


def element_vr(ds: Dataset, tag: int) -> str:
    """The VR of ``ds``'s element ``tag``: its own, or the dictionary's when it is
    unknown or ambiguous (an implicit VR data set)."""
    elem = ds.get_item(tag)
    vr = getattr(elem, 'VR', None)
    if vr and vr not in ('UN', 'OB or OW', 'US or SS'):
        return vr
    try:
        return dictionary_VR(tag)
    except KeyError:
        return vr or 'UN'


def keyword_text(ds: Dataset, keyword: str) -> str:
    """``element_text`` of the attribute ``keyword``, with the VR the index gives it."""
    vr = COLUMNS[keyword][1] if keyword in COLUMNS else dictionary_VR(keyword)
    return element_text(ds, tag_for_keyword(keyword), vr)


# -- normalising values --------------------------------------------------------------------

_DATE = re.compile(r'(\d{4})\.?(\d{2})\.?(\d{2})')
_TIME = re.compile(r'(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?')
_DATETIME = re.compile(r'\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?'
                       r'(?:[+-]\d{4})?')
_INTEGER = re.compile(r'[+-]?\d+')


def _date_value(text: str) -> Optional[str]:
    """``YYYYMMDD`` for a valid DA (or the ACR-NEMA ``YYYY.MM.DD``), else None."""
    found = _DATE.fullmatch(text)
    if found is None or ('.' in text and text.count('.') != 2):
        return None
    try:
        datetime.date(*map(int, found.groups()))
    except ValueError:
        return None
    return ''.join(found.groups())


def _time_value(text: str) -> Optional[str]:
    """``HHMMSS[.F]`` for a valid TM (or the old ``HH:MM:SS``), else None."""
    found = _TIME.fullmatch(text.replace(':', ''))
    if found is None:
        return None
    hours, minutes, seconds, _ = found.groups()
    if int(hours) > 23 or int(minutes or 0) > 59 or int(seconds or 0) > 60:
        return None
    return _pad_time(text.replace(':', ''))


def _pad_time(text: str) -> str:
    """``HH``/``HHMM`` -> ``HHMMSS`` so that times compare as text (PS3.5 6.2, TM)."""
    whole, dot, fraction = text.partition('.')
    if whole and len(whole) < 6 and whole.isdigit() and len(whole) % 2 == 0:
        whole = whole + '0' * (6 - len(whole))
    return whole + dot + fraction


def time_upper_bound(text: str) -> str:
    """The last time an upper bound with less precision still covers (``13`` ->
    ``135959.999999``)."""
    whole, _, fraction = text.replace(':', '').partition('.')
    if len(whole) == 2:
        return whole + '5959.999999'
    if len(whole) == 4:
        return whole + '59.999999'
    if len(whole) == 6:
        return whole + '.' + (fraction + '999999')[:6]
    return text


def range_value(vr: str, text: str) -> Optional[str]:
    """The form of a DA, TM or DT value that range matching compares; None when the
    value does not parse (it then takes part in no range)."""
    if vr == 'DA':
        return _date_value(text)
    if vr == 'TM':
        return _time_value(text)
    if vr == 'DT':
        return text if _DATETIME.fullmatch(text) else None
    return None


def normalise(vr: str, value) -> str:
    """The text the index keeps for one attribute value (and compares queries with).

    Values that parse take one form (dates without dots, times padded to seconds,
    integers without leading zeros, names without trailing ``^``); values that do
    not parse are kept as they were written. Multi-valued: the first value.
    """
    if value is None:
        return ''
    if is_multiple(value):
        value = value[0] if len(value) else ''
    text = str(value)
    if vr not in ('LT', 'ST', 'UT'):
        text = text.split('\\')[0]
    text = clean(text)
    if vr in ('DA', 'TM'):
        return range_value(vr, text) or text
    if vr == 'PN':
        return '='.join(group.rstrip('^ ') for group in text.split('=')).rstrip('=')
    if vr == 'IS' and _INTEGER.fullmatch(text) and -2**31 <= int(text) < 2**31:
        return str(int(text))
    return text
