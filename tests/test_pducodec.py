"""pducodec: the bounded reader and item framing under every PDU, item and sub-item."""

from __future__ import annotations

import io

import pytest

from pynetdicom2 import pducodec, userdataitems
from pynetdicom2.exceptions import PDUProcessingError


def test_reader_errors_name_the_byte_in_the_pdu():
    # base 6: the reader starts after a PDU's 6-byte header (PS3.8 9.3.1).
    reader = pducodec.ByteReader(memoryview(b'\x00\x01\x02'), base=6, context='X PDU')
    assert reader.u16('first field') == 1
    with pytest.raises(PDUProcessingError,
                       match=r'second field: 2 bytes needed, only 1 left '
                             r'\(at byte offset 8 of the X PDU\)'):
        reader.u16('second field')


def test_an_item_longer_than_its_parent_is_refused_with_its_offset():
    reader = pducodec.ByteReader(memoryview(bytes.fromhex('10 00 0009 312e32')))
    with pytest.raises(PDUProcessingError,
                       match=r'item of type 0x10 declares 9 bytes, only 3 left in its '
                             r'parent \(at byte offset 0'):
        pducodec.read_item_header(reader, 'item')


def test_a_short_stream_says_how_much_it_had():
    with pytest.raises(PDUProcessingError, match='10 bytes needed, only 4 available'):
        pducodec.read_exact(io.BytesIO(b'1234'), 10, 'value', 0)


def test_uids_are_checked_both_ways():
    assert pducodec.encode_uid('1.2.840.10008.1.1', 'uid') == b'1.2.840.10008.1.1'
    with pytest.raises(PDUProcessingError, match='invalid UID'):
        pducodec.encode_uid('1.2.abc', 'uid')
    # PS3.5 9.1: an odd-length UID padded with one NUL reads without it.
    assert pducodec.ByteReader(memoryview(b'1.2\x00')).uid(4, 'uid') == '1.2'


def test_uids_met_before_are_looked_up_and_their_number_bounded():
    # The UIDs checked once are remembered (issue 18); a wrong one never is, and UIDs
    # made up without end do not grow the memory without end.
    for _ in range(2):
        assert pducodec.ByteReader(memoryview(b'1.2.3\x00')).uid(6, 'uid') == '1.2.3'
        assert pducodec.encode_uid('1.2.3', 'uid') == b'1.2.3'
        with pytest.raises(PDUProcessingError, match='invalid UID'):
            pducodec.ByteReader(memoryview(b'1.2.x')).uid(5, 'uid')
    made_up = [f'1.2.{n}' for n in range(pducodec._KNOWN_UIDS_MAX + 10)]
    for uid in made_up:
        raw = pducodec.encode_uid(uid, 'uid')
        assert pducodec.ByteReader(memoryview(raw)).uid(len(raw), 'uid') == uid
    assert len(pducodec._ENCODED_UIDS) <= pducodec._KNOWN_UIDS_MAX
    assert len(pducodec._DECODED_UIDS) <= pducodec._KNOWN_UIDS_MAX


def test_userdataitems_still_gives_the_helpers_it_had():
    for name in pducodec.__all__:
        assert getattr(userdataitems, name) is getattr(pducodec, name), name
