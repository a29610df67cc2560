"""Identifiers decode into the Dataset pydicom's reader gives for the same bytes, whole
or cut short, in every uncompressed transfer syntax; bytes pydicom cannot read raise
DIMSEProcessingError."""

from __future__ import annotations

import io
import warnings

import pytest
from hypothesis import given, settings, strategies as st
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.sequence import Sequence

from pynetdicom2 import transcode, uids
from pynetdicom2.exceptions import DIMSEProcessingError
from pynetdicom2.services.identifiers import decode_identifier, encode_identifier

SYNTAXES = [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
            uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_BIG_ENDIAN]

TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                             blacklist_characters='\\'), max_size=12)


@st.composite
def identifiers(draw) -> Dataset:
    """A query or a match: text, numbers, private elements, a character set, items."""
    ds = Dataset()
    ds.QueryRetrieveLevel = draw(st.sampled_from(['STUDY', 'SERIES', '']))
    if draw(st.booleans()):
        ds.SpecificCharacterSet = draw(st.sampled_from(['ISO_IR 100', 'ISO_IR 192', '']))
    ds.PatientName = draw(TEXT)
    ds.PatientID = draw(TEXT)
    ds.StudyInstanceUID = draw(st.sampled_from(['', '1.2.3', '1.2.840.10008.99.1']))
    if draw(st.booleans()):
        ds.NumberOfStudyRelatedInstances = draw(st.integers(0, 9999))
        ds.Rows = draw(st.integers(0, 0xFFFF))
    if draw(st.booleans()):
        block = ds.private_block(0x0009, 'SOME VENDOR', create=True)
        block.add_new(0x01, 'LO', draw(TEXT))
    if draw(st.booleans()):
        item = Dataset()
        item.ReferencedSOPInstanceUID = '1.2.3.4'
        ds.ReferencedStudySequence = Sequence([item])
    return ds


def read_by_pydicom(raw: bytes, ts: str) -> Dataset:
    """What the identifier decoded into before the fast path: pydicom's reader alone."""
    implicit, little, deflated = transcode.data_set_encoding(ts)
    if deflated:
        raw = transcode.inflate(raw)
    return read_dataset(io.BytesIO(raw), implicit, little)


@settings(max_examples=300, deadline=None)
@given(identifiers(), st.sampled_from(SYNTAXES), st.data())
def test_identifiers_decode_as_pydicom_reads_them_whole_or_cut(ds, ts, data):
    whole = encode_identifier(ds, ts)
    raw = whole[:data.draw(st.integers(0, len(whole)), label='cut')]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # pydicom warns about some cut data sets
        try:
            expected = read_by_pydicom(raw, ts)
        except Exception:
            with pytest.raises(DIMSEProcessingError, match='does not decode as a data set'):
                decode_identifier(raw, ts)
            return
        decoded = decode_identifier(raw, ts)
    # The same raw elements (offsets and lengths too), encoding and character sets.
    assert vars(decoded) == vars(expected)
    if raw == whole:
        # Every value converts as pydicom converts it: a text value loses its padding
        # spaces, and in implicit VR an element of a private creator the dictionary does
        # not know reads as UN.
        assert converted(decoded) == converted(expected)


def converted(ds: Dataset) -> list:
    return [(element.tag, element.VR, element.value) for element in ds]


def test_a_header_cut_in_its_length_raises_dimse_processing_error():
    # Explicit VR UT (PS3.5 7.1.2): tag, VR, 2 reserved bytes, then a 4-byte length.
    raw = b'\x32\x00\x00\x40UT\x00\x00\x04\x00'
    with pytest.raises(DIMSEProcessingError, match='Explicit VR Little Endian'):
        decode_identifier(raw, uids.EXPLICIT_VR_LITTLE_ENDIAN)
