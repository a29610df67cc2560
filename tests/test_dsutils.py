"""The flat data-set fast paths write exactly what pydicom writes and read exactly the
Dataset pydicom reads; 0.9.8's encode, decode and encode_element keep their behaviour."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings, strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
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


@settings(max_examples=100, deadline=None)
@given(flat_data_sets(), st.booleans())
def test_data_sets_read_encode_flat_as_pydicom_encodes_them(ds, implicit):
    # Read in one VR encoding, sent in the other: raw elements of implicit VR take the
    # dictionary's VR, as pydicom's writer gives them. encode_flat sends a read value's
    # bytes as they came; pydicom strips a text value's trailing spaces and pads it again
    # ('00  ' goes out as '00'). Both mean the same value, so the bytes agree whenever
    # no text value ends in more than its one padding space.
    read = dsutils.decode_flat(pydicom_bytes(ds, not implicit), not implicit)
    ours = dsutils.encode_flat(read, implicit)
    theirs = pydicom_bytes(read, implicit)
    assert values_of(ours, implicit) == values_of(theirs, implicit)
    if not any(ends_in_two_spaces(element.value) for element in ds):
        assert ours == theirs


def ends_in_two_spaces(value) -> bool:
    """Whether a text value, padded to even length, ends in two spaces."""
    text = str(value)
    return (text + ' ' * (len(text) % 2)).endswith('  ')


def values_of(encoded: bytes, implicit: bool) -> list:
    read = read_dataset(io.BytesIO(encoded), implicit, True)
    return [(element.tag, element.VR, element.value) for element in read]


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


# -- 0.9.8's public helpers: encode, decode, encode_element -----------------------------

# The three uncompressed transfer syntaxes (PS3.5 10.1-10.3): (implicit VR, little endian).
SYNTAXES = [(True, True), (False, True), (False, False)]


def small_data_set() -> Dataset:
    ds = Dataset()
    ds.PatientName = 'Doe^J'
    ds.Rows = 5
    return ds


@pytest.mark.parametrize('implicit, little, expected', [
    # (0008,0010) PN 'Doe^J ' then (0028,0010) US 5, laid out by hand from PS3.5 7.1.
    (True, True, '10001000 06000000 446f655e4a20 28001000 02000000 0500'),
    (False, True, '10001000 504e 0600 446f655e4a20 28001000 5553 0200 0500'),
    (False, False, '00100010 504e 0006 446f655e4a20 00280010 5553 0002 0005'),
])
def test_encode_lays_out_elements_as_ps35_says(implicit, little, expected):
    raw = dsutils.encode(small_data_set(), implicit, little)
    assert raw == bytes.fromhex(expected.replace(' ', ''))
    assert dsutils.encode_element(small_data_set()['Rows'], implicit, little) == raw[-10:]


@pytest.mark.parametrize('implicit, little', SYNTAXES)
def test_decode_gives_back_what_encode_wrote(implicit, little):
    ds = small_data_set()
    ds.SpecificCharacterSet = 'ISO_IR 192'
    ds.StudyDescription = 'Grüße'
    item = Dataset()
    item.ReferencedSOPInstanceUID = '1.2.3.4'
    ds.ReferencedSeriesSequence = Sequence([item])
    raw = bytearray(dsutils.encode(ds, implicit, little))
    decoded = dsutils.decode(raw, implicit, little)
    # Nothing is read later from a stream: the caller's buffer can change at once.
    raw[:] = b'\x00' * len(raw)
    assert decoded.get_item(0x00081030).is_raw  # left raw until used, as pydicom does
    assert decoded.StudyDescription == 'Grüße'
    assert decoded.ReferencedSeriesSequence[0].ReferencedSOPInstanceUID == '1.2.3.4'
    assert (decoded.PatientName, decoded.Rows) == ('Doe^J', 5)
    assert dsutils.encode(decoded, implicit, little) == dsutils.encode(ds, implicit, little)


def test_encode_converts_a_data_set_read_in_another_syntax():
    explicit_big = dsutils.encode(small_data_set(), False, False)
    read = dsutils.decode(explicit_big, False, False)
    assert dsutils.encode(read, True, True) == dsutils.encode(small_data_set(), True, True)


def test_decode_of_nothing_is_an_empty_data_set():
    assert len(dsutils.decode(b'', True, True)) == 0


def test_keyword_arguments_have_0_9_8_names():
    raw = dsutils.encode(ds=small_data_set(), is_implicit_vr=True, is_little_endian=True)
    ds = dsutils.decode(rawstr=raw, is_implicit_vr=True, is_little_endian=True)
    assert dsutils.encode_element(elem=ds['Rows'], is_implicit_vr=True,
                                  is_little_endian=True) == raw[-10:]


@pytest.mark.parametrize('implicit_vr', [True, False])
def test_values_pydicom_cannot_convert_are_encoded_verbatim(implicit_vr):
    # A peer's IS "1e999999" (an int overflow in pydicom) and DA "2020-13-45" read back
    # from a stored file must be sent on as they are (DCMTK does), not fail the send.
    def element(group, elem, vr, value):
        if implicit_vr:
            return struct.pack('<HHL', group, elem, len(value)) + value
        return struct.pack('<HH2sH', group, elem, vr, len(value)) + value

    raw = (element(0x0008, 0x0020, b'DA', b'2020-13-45')
           + element(0x0020, 0x0013, b'IS', b'1e999999'))
    ds = dsutils.decode(raw, implicit_vr, True)
    assert dsutils.encode_flat(ds, implicit_vr) == raw
    assert dsutils.encode(ds, implicit_vr, True) == raw


# -- decode_flat: the Dataset pydicom's reader gives, faster ----------------------------

# (tag, VR) of elements a peer's identifiers hold: standard and private, text and
# binary, short and long explicit-VR lengths (PS3.5 7.1.2), a sequence of defined length.
FLAT_ELEMENTS = [
    (0x00080005, b'CS'), (0x00080020, b'DA'), (0x00080052, b'CS'), (0x00080061, b'CS'),
    (0x00091010, b'LO'), (0x00091011, b'UN'), (0x00091012, b'OB'), (0x00100010, b'PN'),
    (0x00100020, b'LO'), (0x00101030, b'DS'), (0x00200013, b'IS'), (0x0020000D, b'UI'),
    (0x00280010, b'US'), (0x00081110, b'SQ'), (0x00324000, b'LT'), (0x00400275, b'UT'),
    (0x7FE00010, b'OW'),
]
CHARACTER_SETS = [b'ISO_IR 100', b'ISO_IR 192', b'', b'\\ISO 2022 IR 87', b'BOGUS ']


def element_bytes(tag: int, vr: bytes, value: bytes, implicit: bool) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack('<HHL', group, elem, len(value)) + value
    if vr in (b'OB', b'OW', b'SQ', b'UN', b'UT'):
        return struct.pack('<HH2sHL', group, elem, vr, 0, len(value)) + value
    return struct.pack('<HH2sH', group, elem, vr, len(value)) + value


@st.composite
def raw_identifiers(draw, implicit: bool) -> bytes:
    """Elements as peers write them: any order, odd and empty lengths, any bytes."""
    parts = []
    for tag, vr in draw(st.lists(st.sampled_from(FLAT_ELEMENTS), max_size=8)):
        value = (draw(st.sampled_from(CHARACTER_SETS)) if tag == 0x00080005
                 else draw(st.binary(max_size=21)))
        parts.append(element_bytes(tag, vr, value, implicit))
    return b''.join(parts)


def read_by_pydicom(raw: bytes, implicit: bool) -> Dataset:
    return read_dataset(io.BytesIO(raw), implicit, True)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.data())
def test_decode_flat_gives_what_pydicom_reads(implicit, data):
    raw = data.draw(raw_identifiers(implicit))
    decoded = dsutils.decode_flat(raw, implicit)
    assert decoded is not None
    # The same raw elements (tag, VR, length, value, offset) in the same order, the
    # same original encoding and character sets, nothing else set differently.
    assert vars(decoded) == vars(read_by_pydicom(raw, implicit))


def test_decoded_values_convert_as_pydicom_converts_them():
    raw = b''.join(element_bytes(tag, vr, value, False) for tag, vr, value in [
        (0x00080005, b'CS', b'ISO_IR 100'), (0x00100010, b'PN', 'Buc^Jérôme'.encode('latin-1')),
        (0x00200013, b'IS', b'7 '), (0x00280010, b'US', b'\x00\x02'),
        (0x00081110, b'SQ', element_bytes(0xFFFEE000, b'', element_bytes(
            0x00081155, b'UI', b'1.2.3\x00', False), True))])
    decoded, expected = dsutils.decode_flat(raw, False), read_by_pydicom(raw, False)
    assert decoded.PatientName == 'Buc^Jérôme'
    assert (decoded.InstanceNumber, decoded.Rows) == (7, 512)
    # A sequence of defined length stays raw until used, then reads as pydicom reads it.
    assert decoded.ReferencedStudySequence[0].ReferencedSOPInstanceUID == '1.2.3'
    assert decoded == expected
    assert dsutils.encode(decoded, True, True) == dsutils.encode(expected, True, True)


def undefined_length_sequence() -> bytes:
    item = element_bytes(0x00081155, b'UI', b'1.2.3\x00', False)
    return (struct.pack('<HH2sHL', 0x0008, 0x1110, b'SQ', 0, 0xFFFFFFFF)
            + struct.pack('<HHL', 0xFFFE, 0xE000, len(item)) + item
            + struct.pack('<HHL', 0xFFFE, 0xE0DD, 0))


@pytest.mark.parametrize('raw, implicit', [
    (undefined_length_sequence(), False),                       # PS3.5 7.5.2
    (element_bytes(0x00100010, b'PN', b'A^B ', False), True),   # explicit VR, said implicit
    (element_bytes(0x00100010, b'PN', b'A^B ', True), False),   # implicit VR, said explicit
    (element_bytes(0x00100010, b'PN', b'A^B ', False)[:-1], False),  # value cut short
    (element_bytes(0x00100010, b'PN', b'A^B ', False) + b'\x10\x00', False),  # header cut
    (element_bytes(0x00100010, b'XY', b'A^B ', False), False),  # no such VR (PS3.5 6.2)
])
def test_what_is_not_flat_is_left_to_pydicom_reader(raw, implicit):
    assert dsutils.decode_flat(raw, implicit) is None


def test_decode_flat_of_nothing_is_an_empty_data_set():
    for implicit in (True, False):
        assert vars(dsutils.decode_flat(b'', implicit)) == vars(read_by_pydicom(b'', implicit))


def test_each_decoded_data_set_is_its_own():
    raw = element_bytes(0x00100020, b'LO', b'12', False)
    first, second = dsutils.decode_flat(raw, False), dsutils.decode_flat(raw, False)
    first.private_block(0x0011, 'OURS', create=True).add_new(0x01, 'LO', 'x')
    first.PatientID = '34'
    assert (second.PatientID, len(second)) == ('12', 1)
    with pytest.raises(KeyError):
        second.private_block(0x0011, 'OURS')
