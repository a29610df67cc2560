"""qrscp's C-FIND answers: the response identifier of one index match, every
requested key with the archive's value (as it keeps it) or empty, plus the level and
its unique keys (PS3.4 C.4.1.1.3.2).
"""

from __future__ import annotations

from typing import Optional

from pydicom import config as pydicom_config
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import IS, DSfloat

from pynetdicom2.apps.qrquery import IN_STUDY, Match, identifier_elements, levels_up_to
from pynetdicom2.apps.qrschema import COLUMNS, UNIQUE_KEYS

def match_dataset(match: Match, identifier: Dataset, retrieve_aet: Optional[str] = None
                  ) -> Dataset:
    """The C-FIND response identifier for ``match``: every requested key, with the
    archive's value or empty, plus the level and its unique keys (PS3.4 C.4.1.1.3.2).

    Values go back as the archive keeps them, also those that do not parse as their
    VR (IS "abc" is sent as ``abc``), as DCMTK's archive does.
    """
    ds = Dataset()
    values = match.values
    for tag, keyword, vr in identifier_elements(identifier):
        if keyword in ('QueryRetrieveLevel', 'SpecificCharacterSet'):
            continue
        if vr == 'SQ':
            ds.add_new(tag, 'SQ', [])  # sequences are not matched: returned empty
        elif keyword == 'RetrieveAETitle' and retrieve_aet:
            _set(ds, tag, 'AE', retrieve_aet)
        elif keyword == 'InstanceAvailability':
            _set(ds, tag, 'CS', 'ONLINE')
        elif keyword in values:
            _set(ds, tag, vr, _answer_text(keyword, values[keyword]))
        else:
            _set(ds, tag, vr, None)
    for level in levels_up_to(match.level):
        keyword = UNIQUE_KEYS[level]
        tag = tag_for_keyword(keyword)
        if tag not in ds:
            _set(ds, tag, COLUMNS[keyword][1], values.get(keyword))
    ds.QueryRetrieveLevel = match.level
    text = ''.join(str(v) for v in values.values() if isinstance(v, str))
    if not text.isascii():
        # The index keeps text decoded; what is not ASCII goes out as UTF-8.
        ds.SpecificCharacterSet = 'ISO_IR 192'
    return ds


def _answer_text(keyword: str, value) -> Optional[str]:
    if value is None or value == '':
        return None
    if keyword in IN_STUDY:
        return '\\'.join(sorted(set(str(value).split(','))))
    return str(value)


def _number(vr: str, text: str):
    """An IS or DS value that writes ``text`` as it is, whether it parses or not."""
    kind = IS if vr == 'IS' else DSfloat
    try:
        number = kind(text, validation_mode=pydicom_config.IGNORE)
        if number == number and abs(float(number)) != float('inf'):
            return number
    except (ValueError, OverflowError, ArithmeticError):
        pass
    number = kind(0)
    number.original_string = text  # what pydicom writes for a value it read
    return number


def _set(ds: Dataset, tag: int, vr: str, text: Optional[str]) -> None:
    """Put ``text`` into ``ds`` as it is, without pydicom refusing or re-checking it."""
    value = text if text not in (None, '') else None
    if value is not None and vr in ('IS', 'DS'):
        numbers = [_number(vr, part) for part in value.split('\\')]
        value = numbers if len(numbers) > 1 else numbers[0]
    ds[tag] = DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)
