"""The flat data-set fast path writes exactly what pydicom writes."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from pynetdicom2 import dsutils


def pydicom_bytes(ds: Dataset, implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = True
    write_dataset(fp, ds)
    return fp.getvalue()


ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                              blacklist_characters='\\'), max_size=20)
UIDS = st.from_regex(r'\A[1-9][0-9]{0,5}(\.[1-9][0-9]{0,5}){0,6}\Z')

# keyword -> strategy for its value (every VR the fast path writes).
ELEMENTS = {
    'PatientName': ASCII.map(lambda t: t.replace('=', '')),
    'PatientID': ASCII.map(lambda t: t[:16]),
    'StudyDescription': ASCII,
    'QueryRetrieveLevel': st.sampled_from(['PATIENT', 'STUDY', 'SERIES', 'IMAGE', '']),
    'StudyInstanceUID': UIDS,
    'SOPClassesInStudy': st.lists(UIDS, max_size=3),
    'StudyDate': st.sampled_from(['20240101', '20240101-20241231', '']),
    'StudyTime': st.sampled_from(['120000', '1200', '']),
    'NumberOfStudyRelatedInstances': st.integers(0, 99999),
    'ModalitiesInStudy': st.lists(st.sampled_from(['CT', 'MR', 'US']), max_size=3),
    'Rows': st.integers(0, 0xFFFF),
    'PatientWeight': st.sampled_from(['70.5', '0', '', '1e3']),
    'ReferencedFrameNumber': st.lists(st.integers(1, 999), max_size=3),
    'RealWorldValueSlope': st.floats(allow_nan=False, allow_infinity=False, width=64),
}


@st.composite
def flat_data_sets(draw) -> Dataset:
    ds = Dataset()
    for keyword in draw(st.sets(st.sampled_from(sorted(ELEMENTS)), min_size=1)):
        setattr(ds, keyword, draw(ELEMENTS[keyword]))
    return ds


@settings(max_examples=300, deadline=None)
@given(flat_data_sets(), st.booleans())
def test_flat_data_sets_encode_as_pydicom_encodes_them(ds, implicit):
    assert dsutils.encode_flat(ds, implicit) == pydicom_bytes(ds, implicit)


def test_what_is_not_flat_is_left_to_pydicom():
    with_sequence = Dataset()
    with_sequence.PatientID = '1'
    with_sequence.ReferencedStudySequence = Sequence([Dataset()])
    accented = Dataset()
    accented.SpecificCharacterSet = 'ISO_IR 100'
    accented.PatientName = 'Buc^Jérôme'
    binary = Dataset()
    binary.PixelData = b'\x00\x01'
    binary.BitsAllocated = 8
    for ds in (with_sequence, accented, binary):
        assert dsutils.encode_flat(ds, False) is None
        assert dsutils.encode_flat(ds, True) is None
