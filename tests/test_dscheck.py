"""The integrity check of a received data set: what parses passes, what does not is named.

Valid data sets are written by pydicom in every transfer syntax; malformed ones are
built byte by byte after PS3.5 7.1 (element headers), 7.5 (sequences and items) and
A.4 (encapsulated Pixel Data), so each test shows the bytes a peer would send.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from typing import List, Optional

import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.sequence import Sequence

from pynetdicom2 import uids
from pynetdicom2.dscheck import (MAX_SEQUENCE_DEPTH, Prefix, ScanResult, scan_data_set,
                                  scan_written, walk_prefix)

IMPLICIT = str(uids.IMPLICIT_VR_LITTLE_ENDIAN)
EXPLICIT = str(uids.EXPLICIT_VR_LITTLE_ENDIAN)
BIG = str(uids.EXPLICIT_VR_BIG_ENDIAN)
DEFLATED = str(uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
JPEG = str(uids.JPEG_BASELINE_PROCESS_1)
SYNTAXES = [IMPLICIT, EXPLICIT, BIG, DEFLATED, JPEG]

CT = '1.2.840.10008.5.1.4.1.1.2'
INSTANCE = '1.2.826.0.1.3680043.8.498.1'


# -- building data sets -----------------------------------------------------------------

def deflate(raw: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate, PS3.5 A.5
    return packer.compress(raw) + packer.flush()


def encode(ds: Dataset, syntax: str) -> bytes:
    """``ds`` as a C-STORE carries it in ``syntax`` (no preamble, no file meta)."""
    fp = DicomBytesIO()
    fp.is_implicit_VR = syntax == IMPLICIT
    fp.is_little_endian = syntax != BIG
    write_dataset(fp, ds)
    raw = fp.getvalue()
    return deflate(raw) if syntax == DEFLATED else raw


def item(**attributes) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def sample(syntax: str, undefined: bool = True) -> Dataset:
    """A CT-like data set with nested sequences of both lengths and (for JPEG) fragments."""
    ds = Dataset()
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL']
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = INSTANCE
    ds.PatientName = 'DOE^JANE'
    ds.PatientID = 'P1'
    inner = item(CodeValue='121311', CodingSchemeDesignator='DCM', CodeMeaning='Localizer')
    inner.is_undefined_length_sequence_item = undefined
    ref = item(ReferencedSOPClassUID=CT, ReferencedSOPInstanceUID='1.2.3.4',
               PurposeOfReferenceCodeSequence=Sequence([inner]))
    ds.ReferencedImageSequence = Sequence([ref, item(ReferencedSOPClassUID=CT,
                                                     ReferencedSOPInstanceUID='1.2.3.5')])
    ds['ReferencedImageSequence'].is_undefined_length = undefined
    ds.ReferencedImageSequence[0]['PurposeOfReferenceCodeSequence'].is_undefined_length = \
        not undefined
    ds.add_new(0x00090010, 'LO', 'ACME 1.0')   # private creator and a private element
    ds.add_new(0x00091001, 'OB', b'\x01\x02\x03\x04')
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = 16
    if syntax == JPEG:
        ds.PixelData = encapsulate([b'\xff\xd8frame one\xff\xd9', b'\xff\xd8two\xff\xd9'])
        ds['PixelData'].VR = 'OB'
        ds['PixelData'].is_undefined_length = True
    else:
        ds.PixelData = bytes(range(32))
        ds['PixelData'].VR = 'OW'
    return ds


def tag_bytes(tag: int, little: bool = True) -> bytes:
    return struct.pack('<HH' if little else '>HH', tag >> 16, tag & 0xFFFF)


def explicit(tag: int, vr: str, value: bytes = b'', length: Optional[int] = None) -> bytes:
    """An Explicit VR Little Endian element (PS3.5 7.1.2), its length given or true."""
    length = len(value) if length is None else length
    if vr in ('OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'):
        return tag_bytes(tag) + vr.encode() + b'\0\0' + struct.pack('<L', length) + value
    return tag_bytes(tag) + vr.encode() + struct.pack('<H', length) + value


def implicit(tag: int, value: bytes = b'', length: Optional[int] = None) -> bytes:
    """An Implicit VR Little Endian element (PS3.5 7.1.3)."""
    length = len(value) if length is None else length
    return tag_bytes(tag) + struct.pack('<L', length) + value


UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def item_bytes(content: bytes = b'', length: Optional[int] = None) -> bytes:
    """An item (PS3.5 7.5.1); an undefined-length one needs ``+ ITEM_DELIM``."""
    return implicit(ITEM, content, length)


ITEM_DELIM = implicit(ITEM_END)
SEQ_DELIM = implicit(SEQ_END)
UIDS = (explicit(0x00080016, 'UI', CT.encode() + b'\0')
        + explicit(0x00080018, 'UI', INSTANCE.encode() + b'\0'))
NAME = explicit(0x00100010, 'PN', b'DOE^JANE')


def written(data: bytes, syntax: str, head: int, offset: int = 0,
            resumed: bool = False) -> ScanResult:
    """``scan_written`` of ``data`` (a data set from ``offset``) written to a file, its
    first ``head`` bytes given from memory; the file position is left where it was.
    ``resumed``: the walk resumes after ``walk_prefix`` of those bytes, as an SCP's does."""
    first = data[offset:offset + head]
    prefix = walk_prefix(first, syntax) if resumed else None
    with tempfile.TemporaryFile(buffering=0) as f:
        f.write(data)
        f.seek(3)
        result = scan_written(first, f.fileno(), len(data) - offset, syntax, offset, prefix)
        assert f.tell() == 3
    return result


def check(data, syntax: str = EXPLICIT, offset: int = 0) -> ScanResult:
    """Scan from bytes, from a file and as just written (headers in memory up to a
    point, the rest read back); all must agree."""
    result = scan_data_set(data, syntax, offset)
    assert scan_data_set(io.BytesIO(data), syntax, offset) == result
    size = len(data) - offset
    for head in sorted({0, 7, size // 2, size}):
        assert written(data, syntax, head, offset) == result, head
        assert written(data, syntax, head, offset, resumed=True) == result, head
    return result


# -- valid data sets pass, their UIDs are read ------------------------------------------

@pytest.mark.parametrize('syntax', SYNTAXES)
@pytest.mark.parametrize('undefined', [True, False], ids=['undefined', 'defined'])
def test_valid_data_set_passes_in_every_transfer_syntax(syntax, undefined):
    raw = encode(sample(syntax, undefined), syntax)
    assert check(raw, syntax) == ScanResult(None, CT, INSTANCE)


@pytest.mark.parametrize('kind', [bytes, bytearray, memoryview])
def test_bytes_like_sources_with_an_offset(kind):
    raw = b'\xAA' * 7 + encode(sample(EXPLICIT), EXPLICIT)
    assert scan_data_set(kind(raw), EXPLICIT, 7) == ScanResult(None, CT, INSTANCE)
    assert len(raw) % 2 == 1
    shorts = memoryview(raw[7:]).cast('H')  # a view of another item size: offset in bytes
    assert scan_data_set(shorts, EXPLICIT, 0) == ScanResult(None, CT, INSTANCE)


@pytest.mark.parametrize('syntax', SYNTAXES)
def test_part10_file_on_disk_scanned_after_its_file_meta(tmp_path, syntax):
    ds = sample(syntax)
    path = tmp_path / 'ct.dcm'
    with open(path, 'wb') as f:
        f.write(b'\0' * 128 + b'DICM')
        meta = Dataset()
        meta.MediaStorageSOPClassUID = CT
        meta.MediaStorageSOPInstanceUID = INSTANCE
        meta.TransferSyntaxUID = syntax
        pydicom.dataset.validate_file_meta(meta)
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = False, True
        pydicom.filewriter.write_file_meta_info(fp, meta)
        f.write(fp.getvalue())
        offset = f.tell()
        f.write(encode(ds, syntax))
    assert pydicom.dcmread(path).SOPInstanceUID == INSTANCE  # the file is a sound one
    with open(path, 'rb') as f:
        assert scan_data_set(f, syntax, offset) == ScanResult(None, CT, INSTANCE)


def test_uids_lose_their_padding_and_absent_ones_are_none():
    data = (explicit(0x00080016, 'UI', b' 1.2.3\0') + explicit(0x00080018, 'UI', b'4.5 ')
            + NAME)
    assert check(data) == ScanResult(None, '1.2.3', '4.5')
    assert check(NAME) == ScanResult(None, None, None)
    assert check(b'') == ScanResult(None, None, None)


def test_a_uid_cut_short_is_not_reported():
    data = explicit(0x00080016, 'UI', CT.encode()) + explicit(0x00080018, 'UI', b'1.2', 10)
    assert check(data) == ScanResult('truncated: (0008,0018) needs 10 bytes, 3 left', CT,
                                     None)
    assert check(deflate(data), DEFLATED) == check(data)


def test_uids_inside_items_are_not_the_instance_uids():
    nested = explicit(0x00081140, 'SQ', item_bytes(UIDS))
    assert check(nested + NAME) == ScanResult(None, None, None)


@pytest.mark.parametrize('syntax', [EXPLICIT, IMPLICIT])
@pytest.mark.parametrize('gap', [16360, 16376, 16380, 16384])
def test_uids_found_wherever_a_file_window_cuts_them(tmp_path, syntax, gap):
    """Headers are read from a file 16 KiB at a time: a UID whose header or value
    straddles a window's end is read as well as one inside it; the first one counts."""
    element = implicit if syntax == IMPLICIT else (lambda tag, value: explicit(tag, 'OB', value))
    uid = implicit if syntax == IMPLICIT else (lambda tag, value: explicit(tag, 'UI', value))
    data = (uid(0x00080016, CT.encode() + b'\0') + element(0x00091010, b'\0' * gap)
            + uid(0x00080018, INSTANCE.encode() + b'\0') + uid(0x00080018, b'9.9')
            + (implicit(0x00100010, b'DOE^JANE') if syntax == IMPLICIT else NAME))
    path = tmp_path / 'ds'
    path.write_bytes(b'x' * 7 + data)
    with open(path, 'rb') as fp:
        on_disk = scan_data_set(fp, syntax, 7)
    assert on_disk == check(data, syntax) == ScanResult(None, CT, INSTANCE)
    # As just written, the first 16 KiB in memory (as a storage owner keeps them):
    # the second UID's header or value lies across the end of what memory holds.
    for head in (16384, gap, gap + 20):
        assert written(b'x' * 7 + data, syntax, head, 7) == on_disk


def test_uids_read_in_implicit_big_endian_and_deflated():
    ds = sample(IMPLICIT)
    for syntax in (IMPLICIT, BIG, DEFLATED):
        assert check(encode(ds, syntax), syntax)[1:] == (CT, INSTANCE)


def test_odd_lengths_are_read_as_written():
    # PS3.5 7.1.1 asks for even lengths; DCMTK reads odd ones, and so do we.
    data = explicit(0x00100010, 'PN', b'DOE') + UIDS + explicit(0x00100020, 'LO', b'P')
    assert check(data) == ScanResult(None, CT, INSTANCE)
    assert check(implicit(0x00100010, b'DOE') + implicit(0x00080018, b'1.2.3'),
                 IMPLICIT) == ScanResult(None, None, '1.2.3')


def test_elements_out_of_order_and_wrong_group_lengths_are_accepted():
    data = (NAME + explicit(0x00080000, 'UL', struct.pack('<L', 999)) + UIDS
            + explicit(0x00080060, 'CS', b'CT'))
    assert check(data) == ScanResult(None, CT, INSTANCE)


def test_an_unknown_upper_case_vr_has_a_four_byte_length():
    # PS3.5 6.2: a VR newer than the reader has a 4-byte length (DCMTK assumes so).
    data = explicit(0x00191001, 'ZZ', b'1234') + UIDS
    data = data.replace(b'ZZ\x04\x00', b'ZZ\0\0' + struct.pack('<L', 4), 1)
    assert check(data) == ScanResult(None, CT, INSTANCE)


def test_un_of_undefined_length_holds_implicit_little_endian_items():
    # PS3.5 6.2.2: the sequence inside is Implicit VR Little Endian, even in Big Endian.
    content = item_bytes(implicit(0x00081150, CT.encode() + b'\0') + ITEM_DELIM, UNDEFINED)
    data = explicit(0x00081140, 'UN', content + SEQ_DELIM, UNDEFINED) + UIDS
    assert check(data) == ScanResult(None, CT, INSTANCE)
    big = (b'\x00\x08\x11\x40UN\0\0\xff\xff\xff\xff' + content + SEQ_DELIM
           + b'\x00\x10\x00\x10PN\x00\x02AB')
    assert check(big, BIG).problem is None


def test_implicit_vr_sequences_found_by_the_dictionary():
    # (0008,1140) is SQ in the data dictionary: its defined-length value is walked.
    good = implicit(0x00081140, item_bytes(implicit(0x00081150, b'1.2\0')))
    assert check(good + NAME[:0] + implicit(0x00100010, b'AB'), IMPLICIT).problem is None
    bad = implicit(0x00081140, b'\x10\x00\x10\x00\x02\x00\x00\x00AB')
    assert check(bad, IMPLICIT).problem == \
        'not an item: (0010,0010) in sequence (0008,1140)'
    # A private tag is unknown: its value stays opaque whatever it holds.
    opaque = implicit(0x00091010, b'\x10\x00\x10\x00\x02\x00\x00\x00AB')
    assert check(opaque, IMPLICIT).problem is None


def test_implicit_vr_undefined_length_means_a_sequence():
    private = implicit(0x00091010, item_bytes(implicit(0x00100010, b'AB') + ITEM_DELIM,
                                              UNDEFINED) + SEQ_DELIM, UNDEFINED)
    assert check(private + implicit(0x00100020, b'P1'), IMPLICIT).problem is None


def test_delimiters_closing_defined_lengths_exactly_are_accepted():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME + ITEM_DELIM) + SEQ_DELIM)
    assert check(seq + UIDS) == ScanResult(None, CT, INSTANCE)


def test_sequences_nested_up_to_the_limit_pass_deeper_fail():
    def nested(depth: int) -> bytes:
        data = NAME
        for _ in range(depth):
            data = explicit(0x00081140, 'SQ', item_bytes(data, UNDEFINED) + ITEM_DELIM
                            + SEQ_DELIM, UNDEFINED)
        return data
    assert check(nested(MAX_SEQUENCE_DEPTH)).problem is None
    assert check(nested(MAX_SEQUENCE_DEPTH + 1)).problem == \
        f'too deep: sequences nest over {MAX_SEQUENCE_DEPTH} levels at (0008,1140)'


def test_native_pixel_data_in_a_compressed_syntax_and_fragments_in_a_native_one():
    native = explicit(0x7FE00010, 'OW', bytes(8))
    fragments = explicit(0x7FE00010, 'OB', item_bytes() + item_bytes(b'ab') + SEQ_DELIM,
                         UNDEFINED)
    assert check(native, JPEG).problem is None
    assert check(fragments, EXPLICIT).problem is None


# -- each malformation is named ---------------------------------------------------------

def test_pixel_data_cut_short():
    data = UIDS + explicit(0x7FE00010, 'OW', bytes(1000), length=524288)
    assert check(data) == ScanResult(
        'truncated: (7FE0,0010) needs 524288 bytes, 1000 left', CT, INSTANCE)


@pytest.mark.parametrize('syntax, problem', [
    (IMPLICIT, 'truncated: (7FE0,0010) needs 32 bytes, 29 left'),
    (EXPLICIT, 'truncated: (7FE0,0010) needs 32 bytes, 29 left'),
    (BIG, 'truncated: (7FE0,0010) needs 32 bytes, 29 left'),
    (JPEG, 'truncated: header of (FFFE,E0DD) cut short (5 bytes left)'),
])
def test_real_data_set_cut_inside_its_last_element(syntax, problem):
    raw = encode(sample(syntax), syntax)
    assert check(raw[:-3], syntax) == ScanResult(problem, CT, INSTANCE)
    assert check(raw[:-8], syntax, 0).problem is not None


def test_header_cut_short():
    assert check(UIDS + NAME[:6]).problem == \
        'truncated: header of (0010,0010) cut short (6 bytes left)'
    assert check(UIDS + b'\x10\x00').problem == \
        'truncated: header at byte 70 cut short (2 bytes left)'
    assert check(UIDS + explicit(0x7FE00010, 'OB', b'')[:10]).problem == \
        'truncated: header of (7FE0,0010) cut short (10 bytes left)'


def test_undefined_length_on_a_vr_that_cannot_have_it():
    # A 2-byte length field cannot say undefined: FFFFH is a length like any other.
    assert check(tag_bytes(0x00100010) + b'PN\xff\xff').problem == \
        'truncated: (0010,0010) needs 65535 bytes, 0 left'
    data = explicit(0x00100010, 'UT', b'x' * 4, UNDEFINED)
    assert check(data).problem == 'undefined length in (0010,0010), not allowed for VR UT'


def test_undefined_length_sequence_never_closed():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, UNDEFINED) + ITEM_DELIM, UNDEFINED)
    assert check(UIDS + seq).problem == \
        'unclosed: sequence (0008,1140) has no sequence delimiter'


def test_undefined_length_item_never_closed():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, UNDEFINED), UNDEFINED)
    assert check(seq).problem == 'unclosed: item 1 of (0008,1140) has no item delimiter'
    # ... also when a defined-length sequence ends first
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, UNDEFINED))
    assert check(seq + NAME).problem == \
        'unclosed: item 1 of (0008,1140) has no item delimiter'


def test_item_ends_with_a_sequence_delimiter():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, UNDEFINED) + SEQ_DELIM, UNDEFINED)
    assert check(seq + ITEM_DELIM).problem == \
        'stray sequence delimiter (FFFE,E0DD) in item 1 of (0008,1140)'


def test_item_overruns_its_defined_length_sequence():
    items = item_bytes(NAME) + item_bytes(NAME)
    seq = explicit(0x00081140, 'SQ', items, length=len(items) - 4)
    assert check(seq + NAME).problem == \
        'overrun: item 2 of (0008,1140) needs 16 bytes, 12 left in sequence (0008,1140)'


def test_element_overruns_its_defined_length_item():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, length=len(NAME) - 2) + b'\0\0')
    assert check(seq).problem == \
        'overrun: (0010,0010) needs 8 bytes, 6 left in item 1 of (0008,1140)'
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, length=6) + NAME[6:])
    assert check(seq).problem == \
        'overrun: header of (0010,0010) crosses the end of item 1 of (0008,1140)'


def test_defined_length_sequence_cut_short():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME), length=100)
    assert check(UIDS + seq).problem == 'truncated: (0008,1140) needs 100 bytes, 24 left'


def test_fragment_overruns_the_data():
    pixels = explicit(0x7FE00010, 'OB', item_bytes() + item_bytes(b'ab' * 10, length=40),
                      UNDEFINED)
    assert check(UIDS + pixels, JPEG).problem == \
        'truncated: fragment 2 of (7FE0,0010) needs 40 bytes, 20 left'


def test_pixel_data_without_sequence_delimiter():
    pixels = explicit(0x7FE00010, 'OB', item_bytes() + item_bytes(b'ab'), UNDEFINED)
    assert check(UIDS + pixels, JPEG) == ScanResult(
        'unclosed: pixel data (7FE0,0010) has no sequence delimiter', CT, INSTANCE)


def test_fragment_of_undefined_length():
    pixels = explicit(0x7FE00010, 'OB', item_bytes() + item_bytes(b'ab', UNDEFINED)
                      + SEQ_DELIM, UNDEFINED)
    assert check(pixels, JPEG).problem == \
        'undefined length in fragment 2 of (7FE0,0010)'


def test_non_item_inside_a_sequence():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME) + NAME + SEQ_DELIM, UNDEFINED)
    assert check(seq).problem == 'not an item: (0010,0010) in sequence (0008,1140)'
    pixels = explicit(0x7FE00010, 'OB', item_bytes() + NAME + SEQ_DELIM, UNDEFINED)
    assert check(pixels, JPEG).problem == \
        'not an item: (0010,0010) in pixel data (7FE0,0010)'


@pytest.mark.parametrize('tag, name', [(ITEM_END, 'item delimiter'),
                                       (SEQ_END, 'sequence delimiter'), (ITEM, 'item')])
def test_stray_delimiters_and_items_at_top_level(tag, name):
    t = f'(FFFE,{tag & 0xFFFF:04X})'
    assert check(UIDS + implicit(tag) + NAME) == \
        ScanResult(f'stray {name} {t} at top level', CT, INSTANCE)
    assert check(implicit(tag), IMPLICIT).problem == f'stray {name} {t} at top level'


def test_item_delimiter_inside_a_defined_length_item():
    seq = explicit(0x00081140, 'SQ', item_bytes(ITEM_DELIM + NAME))
    assert check(seq).problem == \
        'stray item delimiter (FFFE,E00D) in item 1 of (0008,1140)'


def test_vr_bytes_that_are_no_vr():
    # Implicit VR elements inside an Explicit VR data set, or a stream out of step.
    data = UIDS + implicit(0x00100010, b'DOE^JANE')
    assert check(data).problem == 'invalid VR 0x0800 in (0010,0010)'


def test_deflate_stream_truncated_or_corrupt():
    packed = encode(sample(DEFLATED), DEFLATED)
    assert check(packed[:-5], DEFLATED).problem == \
        'deflate stream truncated: it has no final block'
    assert check(b'\xff' * 40, DEFLATED).problem == \
        'deflate stream corrupt: invalid block type'
    assert check(b'', DEFLATED).problem == 'deflate stream truncated: it has no final block'
    # What follows the end of the stream is padding (PS3.5 A.5), not data.
    assert check(packed + b'\0', DEFLATED) == ScanResult(None, CT, INSTANCE)


def test_deflated_data_set_cut_inside_an_element():
    raw = encode(sample(EXPLICIT), EXPLICIT)
    result = check(deflate(raw[:-3]), DEFLATED)
    assert result == ScanResult('truncated: (7FE0,0010) needs 32 bytes, 29 left', CT,
                                INSTANCE)


def test_large_deflated_data_set_streams():
    pixel = explicit(0x7FE00010, 'OW', bytes(3 * 1024 * 1024 + 2))
    packed = deflate(UIDS + NAME + pixel + NAME)
    assert len(packed) < 20000  # zeros compress well: several inflate windows, one skip
    assert check(packed, DEFLATED) == ScanResult(None, CT, INSTANCE)
    short = deflate(UIDS + pixel[:-100])
    assert check(short, DEFLATED).problem == \
        f'truncated: (7FE0,0010) needs {len(pixel) - 12} bytes, {len(pixel) - 112} left'


def test_file_errors_become_a_problem():
    class Failing(io.BytesIO):
        def read(self, size=-1):
            raise OSError(5, 'Input/output error')
    assert scan_data_set(Failing(UIDS), EXPLICIT).problem == \
        'cannot read the data set: [Errno 5] Input/output error'


def test_messages_put_the_essence_in_the_first_64_characters():
    seq = explicit(0x00081140, 'SQ', item_bytes(NAME, length=len(NAME) - 2) + b'\0\0')
    problem = check(seq).problem
    assert problem[:64].startswith('overrun: (0010,0010) needs 8 bytes, 6 left in item')


def test_a_data_set_just_written_is_read_only_past_its_head(tmp_path, monkeypatch):
    """Headers in memory are not read again; past them, 16 KiB reads at their place
    (os.pread: the file position never moves); the size given bounds the data set."""
    pixel = explicit(0x7FE00010, 'OW', b'', 64 * 1024 * 1024)
    path = tmp_path / 'big.dcm'
    with open(path, 'wb') as f:
        f.write(b'\0' * 132 + UIDS + pixel)
        f.truncate(132 + len(UIDS) + len(pixel) + 64 * 1024 * 1024)
        f.seek(0, os.SEEK_END)
        f.write(NAME)  # after the pixel data: read with one more chunk
    size = len(UIDS) + len(pixel) + 64 * 1024 * 1024 + len(NAME)
    reads = []
    real_pread = os.pread

    def counting(fd, count, at):
        reads.append((count, at))
        return real_pread(fd, count, at)

    monkeypatch.setattr(os, 'pread', counting)
    with open(path, 'rb', buffering=0) as f:
        head = UIDS + pixel
        assert scan_written(head, f.fileno(), size, EXPLICIT, 132) == \
            ScanResult(None, CT, INSTANCE)
        assert reads == [(len(NAME), 132 + size - len(NAME))]
        assert f.tell() == 0
        reads.clear()
        # Told it is shorter, the data set ends inside the pixel data, as a file would.
        assert scan_written(head, f.fileno(), size - len(NAME) - 2, EXPLICIT, 132) == \
            ScanResult(f'truncated: (7FE0,0010) needs {64 * 1024 * 1024} bytes, '
                       f'{64 * 1024 * 1024 - 2} left', CT, INSTANCE)
        assert reads == []
        # Told it is longer than the file: the file's end is the data set's end.
        assert scan_written(head, f.fileno(), size + 8, EXPLICIT, 132) == \
            scan_data_set(f, EXPLICIT, 132) == ScanResult(None, CT, INSTANCE)


def test_big_file_on_disk_costs_a_few_reads(tmp_path):
    path = tmp_path / 'big.dcm'
    with open(path, 'wb') as f:
        f.write(UIDS + explicit(0x7FE00010, 'OW', b'', 64 * 1024 * 1024))
        f.truncate(len(UIDS) + 12 + 64 * 1024 * 1024)
        f.write(NAME)  # after the pixel data: read with one more chunk

    class Counting(io.FileIO):
        reads = 0

        def read(self, size=-1):
            Counting.reads += 1
            return super().read(size)

    with Counting(path, 'rb') as f:
        assert scan_data_set(f, EXPLICIT) == ScanResult(None, CT, INSTANCE)
    assert Counting.reads <= 3


# -- pydicom's own test files -----------------------------------------------------------

# Files pydicom reads but that do not parse to their end, and why.
KNOWN_BAD = {
    # pixel data (resp. a sequence) cut short; pydicom reads what is there
    'MR_truncated.dcm': 'truncated: (7FE0,0010) needs 8192 bytes, 8130 left',
    'rtplan_truncated.dcm': 'truncated: (300A,00B0) needs 976 bytes, 711 left',
    # the data set is Implicit VR although the file meta says JPEG Baseline (Explicit
    # VR); pydicom guesses the switch, DCMTK's dcmdump fails on it as we do
    'SC_rgb_jpeg.dcm': 'invalid VR 0x1800 in (0008,0008)',
    # the last directory record runs 24 bytes past its sequence's defined length
    'DICOMDIR-nooffset': 'overrun: item 52 of (0004,1220) needs 248 bytes, 224 left in '
                         'sequence (0004,1220)',
}


def pydicom_test_files():
    from pydicom.data import get_testdata_files
    from pydicom.filereader import _read_file_meta_info, read_preamble
    found = []
    for path in sorted(get_testdata_files()):
        try:
            with open(path, 'rb') as f:
                read_preamble(f, False)
                meta = _read_file_meta_info(f)
                offset = f.tell()
        except Exception:  # no preamble or no meta: not a Part-10 file to split
            continue
        syntax = meta.get('TransferSyntaxUID')
        if syntax is not None:
            found.append((path, str(syntax), offset))
    return found


def test_pydicom_test_files_pass_unless_known_bad():
    files = pydicom_test_files()
    assert len(files) > 50
    flagged = {}
    for path, syntax, offset in files:
        name = path.rsplit('/', 1)[-1]
        with open(path, 'rb') as f:
            result = scan_data_set(f, syntax, offset)
        with open(path, 'rb') as f:
            assert scan_data_set(f.read(), syntax, offset) == result
        if result.problem is not None:
            flagged[name] = result.problem
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert result.sop_class_uid == ds.get('SOPClassUID'), name
        assert result.sop_instance_uid == ds.get('SOPInstanceUID'), name
    assert flagged == {k: v for k, v in KNOWN_BAD.items() if k in flagged}
    assert set(flagged) == set(KNOWN_BAD) & {p.rsplit('/', 1)[-1] for p, _, _ in files}


# -- properties: never raises; a data set passes exactly when cut at an element boundary

TEXT = st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A), max_size=12)


@st.composite
def data_sets(draw, depth: int = 0) -> Dataset:
    ds = Dataset()
    if depth == 0:
        ds.SOPClassUID = CT
        ds.SOPInstanceUID = draw(st.sampled_from([INSTANCE, '1.2.3', '1.2.840.1.12']))
    if draw(st.booleans()):
        ds.PatientName = draw(TEXT)
    if draw(st.booleans()):
        ds.Rows = draw(st.integers(0, 0xFFFF))
    if draw(st.booleans()):
        ds.add_new(0x00091001, 'OB', draw(st.binary(max_size=9)).ljust(2, b'\0')[:8])
    if depth < 3 and draw(st.booleans()):
        items = draw(st.lists(data_sets(depth + 1), max_size=3))
        for child in items:
            child.is_undefined_length_sequence_item = draw(st.booleans())
        ds.ReferencedImageSequence = Sequence(items)
        ds['ReferencedImageSequence'].is_undefined_length = draw(st.booleans())
    if depth == 0 and draw(st.booleans()):
        ds.add_new(0x7FE00010, 'OW', draw(st.binary(min_size=2, max_size=40).map(
            lambda b: b[:len(b) // 2 * 2])))
    return ds


def boundaries(ds: Dataset, syntax: str) -> List[int]:
    """Where each top-level element starts and ends, written one by one with pydicom."""
    fp = DicomBytesIO()
    fp.is_implicit_VR = syntax == IMPLICIT
    fp.is_little_endian = syntax != BIG
    marks = [0]
    for elem in ds:
        write_data_element(fp, elem)
        marks.append(fp.tell())
    return marks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=data_sets(), syntax=st.sampled_from([IMPLICIT, EXPLICIT, BIG]))
def test_every_prefix_passes_exactly_at_top_level_element_boundaries(ds, syntax):
    raw = encode(ds, syntax)
    marks = boundaries(ds, syntax)
    assert marks[-1] == len(raw)
    assert check(raw, syntax) == ScanResult(None, CT, ds.SOPInstanceUID)
    cut_points = set(marks)
    for cut in range(len(raw)):
        result = scan_data_set(raw[:cut], syntax)
        if cut in cut_points:
            assert result.problem is None, (cut, result)
        else:
            assert result.problem is not None, cut


@pytest.mark.skipif(int(pydicom.__version__.split('.')[0]) < 3,
                    reason="pydicom 2 cannot write the generated OB/OW pixel data in "
                           "implicit VR without Bits Allocated")
@settings(max_examples=40, deadline=None)
@given(ds=data_sets(), syntax=st.sampled_from(SYNTAXES))
def test_pydicom_reads_what_passes_in_every_syntax(ds, syntax):
    raw = encode(ds, syntax)
    assert check(raw, syntax) == ScanResult(None, CT, ds.SOPInstanceUID)
    if syntax == DEFLATED:
        raw, syntax = zlib.decompress(raw, -zlib.MAX_WBITS), EXPLICIT
    fp = DicomBytesIO(raw)
    back = pydicom.filereader.read_dataset(fp, syntax == IMPLICIT, syntax != BIG)
    for _ in back.iterall():
        pass
    assert back.SOPInstanceUID == ds.SOPInstanceUID


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), syntax=st.sampled_from(SYNTAXES),
       offset=st.integers(0, 4))
def test_random_bytes_never_raise(data, syntax, offset):
    result = scan_data_set(data, syntax, offset)
    assert isinstance(result, ScanResult)
    assert result.problem is None or isinstance(result.problem, str)
    assert scan_data_set(io.BytesIO(data), syntax, offset) == result


@settings(max_examples=200, deadline=None)
@given(ds=data_sets(), syntax=st.sampled_from(SYNTAXES), data=st.data())
def test_damaged_data_sets_never_raise(ds, syntax, data):
    raw = bytearray(encode(ds, syntax))
    assume(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    result = scan_data_set(bytes(raw[:cut]), syntax)
    assert isinstance(result, ScanResult)
    assert scan_data_set(io.BytesIO(bytes(raw[:cut])), syntax) == result


@settings(max_examples=300, deadline=None)
@given(ds=data_sets(), syntax=st.sampled_from(SYNTAXES), data=st.data())
def test_a_data_set_just_written_gets_the_verdict_of_a_read_back(ds, syntax, data):
    """The check of a data set just written (its first bytes in memory, the rest read
    with os.pread, its size known) says what reading the whole file says, for valid,
    cut and damaged data sets alike, wherever the bytes in memory end."""
    raw = bytearray(encode(ds, syntax))
    if raw and data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    offset = data.draw(st.sampled_from([0, 132, 331]))
    file = bytes(offset) + bytes(raw[:cut])
    head = data.draw(st.integers(0, cut))
    expected = scan_data_set(io.BytesIO(file), syntax, offset)
    assert written(file, syntax, head, offset) == expected


# -- the walk of a data set's first bytes, made while the rest arrives -----------------

def test_walk_prefix_stops_at_the_first_element_not_plain_and_whole():
    pixel = explicit(0x7FE00010, 'OW', b'\0' * 64)
    # Stops at pixel data running past the bytes given, with the UIDs read.
    head = UIDS + NAME + pixel[:20]
    assert walk_prefix(head, EXPLICIT) == Prefix(len(UIDS + NAME),
                                                 {0x00080016: CT, 0x00080018: INSTANCE})
    # Stops at a sequence, even a whole one; and at a header cut short.
    sequence = explicit(0x00081115, 'SQ', b'', 0)
    assert walk_prefix(UIDS + sequence + NAME, EXPLICIT).pos == len(UIDS)
    assert walk_prefix(UIDS + NAME[:6], EXPLICIT).pos == len(UIDS)
    assert walk_prefix(implicit(0x00100010, b'DOE^JANE') + implicit(0x00081115, b''),
                       IMPLICIT).pos == 16
    assert walk_prefix(deflate(UIDS), DEFLATED) is None


def test_a_resumed_walk_reads_nothing_before_its_prefix_again():
    pixel = explicit(0x7FE00010, 'OW', b'\0' * 4096)
    data = UIDS + NAME + pixel
    head = data[:1000]
    prefix = walk_prefix(head, EXPLICIT)
    assert prefix.pos == len(UIDS + NAME)
    # The file's first bytes now say nonsense; resumed past them, the walk never sees it.
    spoiled = b'\xff' * prefix.pos + data[prefix.pos:]
    with tempfile.TemporaryFile(buffering=0) as f:
        f.write(spoiled)
        fd = f.fileno()
        assert scan_written(spoiled[:1000], fd, len(data), EXPLICIT, 0, prefix) == \
            ScanResult(None, CT, INSTANCE)
        assert scan_written(spoiled[:1000], fd, len(data), EXPLICIT).problem is not None
        # What follows the prefix is still checked: pixel data cut short.
        assert scan_written(spoiled[:1000], fd, len(data) - 10, EXPLICIT, 0, prefix) == \
            ScanResult('truncated: (7FE0,0010) needs 4096 bytes, 4086 left', CT, INSTANCE)
