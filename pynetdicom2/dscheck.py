"""Integrity check of a received data set: does it parse to its end?

``scan_data_set`` walks the element headers of a data set (tag, VR, length) in its
transfer syntax, skips every value by seeking, and says in a few words what is wrong
when the data set does not parse to its end; on the way it reads the SOP Class and SOP
Instance UIDs at the top level. A storage SCP runs it before it answers Success (a
Success promises the instance is stored whole). It reads nothing but headers,
so a 256 MiB instance costs a few seeks, and it never raises for what the data hold.
``walk_prefix`` walks the first bytes of a data set while the rest is still arriving;
the check of the complete data set (``scan_written``) then resumes after them.

What is checked (PS3.5 7.1, 7.5, A.4):

- every value length fits in what holds it: the data set, the item, the sequence;
- every header is complete; a data set may end only at an element boundary;
- an undefined length only where it may stand (SQ, UN; OB/OW and Pixel Data hold
  encapsulated fragments or items); every undefined-length sequence and item is closed
  by its delimitation item (FFFE,E0DD) / (FFFE,E00D) before its container ends;
- a sequence holds items only, an encapsulated Pixel Data holds defined-length fragments
  only, and no item or delimitation item stands outside a sequence;
- a deflated data set (PS3.5 A.5) inflates without error up to the end of its stream.

What is accepted, like DCMTK (be liberal in what you accept): odd value lengths (read
as written), elements out of ascending order, group lengths that disagree with their
group (DCMTK recalculates them), unknown VRs made of two upper-case letters (read with
a 4-byte length, the form of every VR added since PS3.5 7.1.2 listed the short ones, as
DCMTK assumes), an item or sequence delimiter
that closes a defined-length item or sequence exactly at its end, undefined-length
Pixel Data in a native transfer syntax and defined-length Pixel Data in an encapsulated
one, bytes after the end of a deflate stream (a pad byte to even length; zlib and
pydicom ignore them).

Stricter than DCMTK, which reads to the end of the stream and stops there: an
undefined-length sequence or item the data end inside, and a sequence or item whose
defined length runs past the data, are refused (the sender lost data). VR bytes that
are not two upper-case letters in an explicit VR syntax are refused too: readers part
ways there (pydicom reads an Implicit VR element, DCMTK a 2-byte length), so the file
would mean different things to different readers. Sequences nested deeper than
``MAX_SEQUENCE_DEPTH`` are refused, which bounds the memory a hostile peer can make us
spend.

In Implicit VR the VR is not on the wire: an undefined length means a sequence (or
encapsulated Pixel Data), and a defined-length element is walked as a sequence when
pydicom's data dictionary says its tag is SQ; private tags stay opaque. Inside an
undefined-length UN element the items are Implicit VR Little Endian (PS3.5 6.2.2).
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Union

from pydicom.datadict import DicomDictionary, RepeatersDictionary

__all__ = ['ScanResult', 'Prefix', 'scan_data_set', 'scan_written', 'walk_prefix',
           'MAX_SEQUENCE_DEPTH']

IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2'
EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2'
# Transfer syntaxes whose whole data set is a raw deflate stream (PS3.5 A.5, A.6):
# Deflated Explicit VR LE, JPIP Referenced Deflate, JPIP HTJ2K Referenced Deflate.
DEFLATED_TRANSFER_SYNTAXES = frozenset((
    '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.4.95', '1.2.840.10008.1.2.4.205'))

#: How deep sequences may nest (real data sets stay under 20 levels; pydicom's own
#: recursion gives up at a few hundred).
MAX_SEQUENCE_DEPTH = 128

_SOP_CLASS_UID = 0x00080016
_SOP_INSTANCE_UID = 0x00080018
_PIXEL_DATA = 0x7FE00010
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_DELIMITER_ELEMENTS = frozenset((0xE000, 0xE00D, 0xE0DD))  # in group FFFE: no VR
_UNDEFINED = 0xFFFFFFFF

# Explicit VR: these VRs have 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(vr.encode() for vr in (
    'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'))
_SHORT_VRS = frozenset(vr.encode() for vr in (
    'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH',
    'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US'))
_SQ, _UN, _OB, _OW = b'SQ', b'UN', b'OB', b'OW'
# Header size of the elements the fast path skips (every VR but SQ).
_PLAIN_HEADER_SIZES = {vr: 12 if vr in _LONG_VRS else 8 for vr in _LONG_VRS | _SHORT_VRS}
del _PLAIN_HEADER_SIZES[_SQ]



def _expand(mask: str) -> List[int]:
    """The tags a repeating-group mask such as '50xx2600' stands for."""
    tags = ['']
    for char in mask:
        tags = [t + c for t in tags for c in ('0123456789ABCDEF' if char == 'x' else char)]
    return [int(t, 16) for t in tags]


# Tags the data dictionary knows as SQ, for Implicit VR (repeating groups expanded).
_SQ_TAGS = frozenset(
    [tag for tag, entry in DicomDictionary.items() if entry[0] == 'SQ']
    + [tag for mask, entry in RepeatersDictionary.items() if entry[0] == 'SQ'
       for tag in _expand(mask)])

_DATA_SET, _SEQUENCE, _FRAGMENTS = 0, 1, 2
_MAX_FRAMES = 2 * MAX_SEQUENCE_DEPTH + 1   # a sequence and its item are two frames

_FILE_CHUNK = 16384       # bytes read from a file at a time for headers
_DEFLATED_CHUNK = 65536   # compressed bytes fed to zlib at a time
_INFLATED_CHUNK = 262144  # most inflated bytes held at a time
_UID_MAX = 1024           # a UI value is at most 64 bytes; never read a huge one


class ScanResult(NamedTuple):
    """What ``scan_data_set`` found.

    ``problem`` is None when the data set parses to its end, else a short reason with
    the essence first (it becomes an Error Comment, at most 64 characters), e.g.
    ``"truncated: (7FE0,0010) needs 524288 bytes, 1000 left"``. The UIDs are the
    top-level (0008,0016) and (0008,0018) values, padding (NUL, space) stripped, None
    when absent (or, with a problem, not reached).
    """

    problem: Optional[str]
    sop_class_uid: Optional[str]
    sop_instance_uid: Optional[str]


class Prefix(NamedTuple):
    """Where the walk of a data set may resume (``walk_prefix``): the end of its first
    top-level elements, each whole and plain, and the SOP UIDs among them."""

    pos: int
    found: Dict[int, str]


class _Problem(Exception):
    """Raised inside the walk; its message is the ScanResult's problem."""


# -- Sources: a window of data-set bytes at positions counted from the data set's start


def _byte_view(data):
    """``data`` indexed by byte: a memoryview of another format or shape is cast."""
    if isinstance(data, memoryview) and (data.itemsize != 1 or data.ndim != 1):
        return data.cast('B')
    return data


class _InMemory:
    """The whole data set is in memory: one window that never moves."""

    def __init__(self, data: Union[bytes, bytearray, memoryview], offset: int) -> None:
        data = _byte_view(data)
        self.buf = data
        self.base = -offset
        self.end = max(len(data) - offset, 0)

    def window(self, pos: int, size: int):
        return self.buf, self.base

    def reach(self, pos: int) -> bool:
        return pos <= self.end


class _OnDisk:
    """A seekable file: the size is known, headers are read in chunks, values skipped."""

    def __init__(self, fileobj: BinaryIO, offset: int) -> None:
        fileobj.seek(0, 2)
        self.end = max(fileobj.tell() - offset, 0)
        self.file = fileobj
        self.offset = offset
        self.buf = b''
        self.base = 0

    def window(self, pos: int, size: int):
        want = min(max(size, _FILE_CHUNK), self.end - pos)
        data = self._read(pos, want) if want > 0 else b''
        while len(data) < want:  # a raw file may return less than asked
            more = self._read(pos + len(data), want - len(data))
            if not more:
                self.end = pos + len(data)  # the file is shorter than it said
                break
            data += more
        self.buf, self.base = data, pos
        return data, pos

    def _read(self, pos: int, count: int) -> bytes:
        self.file.seek(self.offset + pos)
        return self.file.read(count)

    def reach(self, pos: int) -> bool:
        return pos <= self.end


class _Written(_OnDisk):
    """A data set just written to a file whose first bytes are still in memory
    (``head``): those are read where they are, the rest with ``os.pread`` (the file
    position is never moved); the size is known, so nothing asks the file for it."""

    def __init__(self, head, fd: int, offset: int, size: int) -> None:
        head = _byte_view(head)
        if len(head) > size:
            head = head[:size]
        self.head = head
        self.buf = head
        self.base = 0
        self.end = size
        self.fd = fd
        self.offset = offset

    def window(self, pos: int, size: int):
        if pos + size <= len(self.head):
            self.buf, self.base = self.head, 0
            return self.head, 0
        return super().window(pos, size)

    def _read(self, pos: int, count: int) -> bytes:
        return os.pread(self.fd, count, self.offset + pos)


def _pread_chunks(fd: int, offset: int, size: int) -> Iterator[bytes]:
    end = offset + size
    while offset < end:
        chunk = os.pread(fd, min(_DEFLATED_CHUNK, end - offset), offset)
        if not chunk:
            return
        yield chunk
        offset += len(chunk)


def _compressed_chunks(source, offset: int) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = _byte_view(memoryview(source))
        for start in range(offset, len(view), _DEFLATED_CHUNK):
            yield view[start:start + _DEFLATED_CHUNK]
        return
    source.seek(offset)
    while True:
        chunk = source.read(_DEFLATED_CHUNK)
        if not chunk:
            return
        yield chunk


class _Inflated:
    """A deflate stream inflated on demand, in bounded chunks; skipped bytes are dropped.

    The size is unknown (``end`` is None) until the stream ends.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, PS3.5 A.5
        self.buf = b''
        self.base = 0
        self.end: Optional[int] = None

    def _inflate(self) -> bytes:
        """The next inflated bytes; b'' once the stream has ended (then ``end`` is set)."""
        inflater = self.inflater
        while True:
            if inflater.eof:  # what may follow the final block is padding
                self.end = self.base + len(self.buf)
                return b''
            if inflater.unconsumed_tail:
                out = inflater.decompress(inflater.unconsumed_tail, _INFLATED_CHUNK)
            else:
                chunk = next(self.chunks, None)
                if chunk is None:
                    raise _Problem('deflate stream truncated: it has no final block')
                out = inflater.decompress(chunk, _INFLATED_CHUNK)
            if out:
                return out

    def window(self, pos: int, size: int):
        self.reach(pos)
        while self.end is None and self.base + len(self.buf) < pos + size:
            more = self._inflate()
            keep = self.buf[pos - self.base:]
            self.buf = bytes(keep) + more if keep else more
            self.base = pos
        return self.buf, self.base

    def reach(self, pos: int) -> bool:
        """Inflate (dropping what lies before ``pos``) until ``pos`` is inside the data."""
        while self.base + len(self.buf) < pos:
            if self.end is not None:
                return False
            produced = self.base + len(self.buf)
            more = self._inflate()
            self.base, self.buf = produced, more
        return True


# -- Open containers, and what the messages call them


def _tag(tag: int) -> str:
    return f'({tag >> 16:04X},{tag & 0xFFFF:04X})'


class _Frame:
    """One open container: the data set, an item, a sequence or encapsulated fragments.

    ``end`` is its own end when its length is defined (None when undefined, or for the
    top level); ``limit`` is where its content must stop (the nearest defined end, or
    the end of the data), and ``limit_frame`` the frame that sets it (None: the data).
    """

    __slots__ = ('kind', 'end', 'limit', 'limit_frame', 'owner', 'number', 'explicit',
                 'little', 'items')

    def __init__(self, kind, end, limit, limit_frame, owner, number, explicit, little):
        self.kind = kind
        self.end = end
        self.limit = limit
        self.limit_frame = self if end is not None else limit_frame
        self.owner = owner
        self.number = number
        self.explicit = explicit
        self.little = little
        self.items = 0

    def describe(self) -> str:
        if self.kind == _DATA_SET:
            return f'item {self.number} of {_tag(self.owner)}' if self.owner else 'data set'
        if self.kind == _FRAGMENTS:
            return f'pixel data {_tag(self.owner)}'
        return f'sequence {_tag(self.owner)}'


def _bytes(count: int) -> str:
    return '1 byte' if count == 1 else f'{count} bytes'


def _too_long(what: str, needed: int, left: int, frame: _Frame) -> _Problem:
    """A value (or item) longer than what holds it: the data, or a defined-length container."""
    left = max(left, 0)
    if frame.limit_frame is None:
        return _Problem(f'truncated: {what} needs {_bytes(needed)}, {left} left')
    return _Problem(f'overrun: {what} needs {_bytes(needed)}, {left} left in '
                    f'{frame.limit_frame.describe()}')


def _header_cut(frame: _Frame, pos: int, have: int, tag: Optional[int]) -> _Problem:
    what = f'header of {_tag(tag)}' if tag is not None else f'header at byte {pos}'
    if frame.limit_frame is None:
        return _Problem(f'truncated: {what} cut short ({_bytes(have)} left)')
    return _Problem(f'overrun: {what} crosses the end of {frame.limit_frame.describe()}')


def _item_name(frame: _Frame) -> str:
    """The latest item of a sequence (or fragment of pixel data)."""
    kind = 'fragment' if frame.kind == _FRAGMENTS else 'item'
    return f'{kind} {frame.items} of {_tag(frame.owner)}'


def _unclosed(frame: _Frame) -> _Problem:
    if frame.kind == _DATA_SET:
        return _Problem(f'unclosed: {frame.describe()} has no item delimiter')
    return _Problem(f'unclosed: {frame.describe()} has no sequence delimiter')


# -- The walk

# little endian? -> unpackers of an explicit VR header, an implicit VR (or item)
# header, a 4-byte length; and of a tag alone.
_STRUCTS = {
    little: (struct.Struct(e + 'HH2sH').unpack_from, struct.Struct(e + 'HHL').unpack_from,
             struct.Struct(e + 'L').unpack_from)
    for little, e in ((True, '<'), (False, '>'))
}
_TAG_STRUCTS = {little: struct.Struct(e + 'HH').unpack_from
                for little, e in ((True, '<'), (False, '>'))}


def _uid_text(raw: bytes) -> str:
    return raw.decode('latin-1').strip('\0 ')


def _plain_run(buf, base: int, pos: int, stop: int, last: int, at_top: bool,
               found: Dict[int, str], explicit: bool, little: bool) -> int:
    """Walk the plain elements from ``pos``: headers before ``stop``, values ending by
    ``last``, no sequence, no undefined length, no delimiter. Returns where it
    stopped; the walk's long way takes the element there.

    ``buf`` holds the data from ``base``. At the top level (``at_top``) the SOP Class
    and Instance UIDs go into ``found`` when their values lie in ``buf``.
    """
    unpack_explicit, unpack_implicit, unpack_long = _STRUCTS[little]
    window_end = base + len(buf)
    if explicit:
        header_sizes = _PLAIN_HEADER_SIZES
        while pos + 12 <= stop:
            i = pos - base
            group, element, vr, length = unpack_explicit(buf, i)
            header = header_sizes.get(vr)
            if header is None or group == 0xFFFE:
                break  # SQ, an unknown VR, a delimiter
            if header == 12:
                length = unpack_long(buf, i + 8)[0]
            after = pos + header + length
            if after > last:
                break  # undefined or too long
            if group == 8 and (element == 0x16 or element == 0x18) and at_top:
                if after > window_end or length > _UID_MAX:
                    break
                tag = 0x00080000 | element
                if tag not in found:
                    found[tag] = _uid_text(bytes(buf[i + header:after - base]))
            pos = after
    else:
        sq_tags = _SQ_TAGS
        while pos + 8 <= stop:
            group, element, length = unpack_implicit(buf, pos - base)
            after = pos + 8 + length
            if after > last or group == 0xFFFE or \
                    (group << 16 | element) in sq_tags:
                break
            if group == 8 and (element == 0x16 or element == 0x18) and at_top:
                if after > window_end or length > _UID_MAX:
                    break
                tag = 0x00080000 | element
                if tag not in found:
                    found[tag] = _uid_text(bytes(buf[pos - base + 8:after - base]))
            pos = after
    return pos


def _walk(src, explicit: bool, little: bool, prefix: Optional[Prefix] = None) -> ScanResult:
    found: Dict[int, str] = dict(prefix.found) if prefix is not None else {}
    top = _Frame(_DATA_SET, None, src.end, None, 0, 0, explicit, little)
    stack: List[_Frame] = [top]
    frame = top
    pos = prefix.pos if prefix is not None else 0
    buf, base = src.buf, src.base
    unpack_explicit, unpack_implicit, unpack_long = _STRUCTS[little]
    try:
        while True:
            end = frame.end
            if end is not None and pos == end:  # a defined-length item or sequence is done
                stack.pop()
                frame = stack[-1]
                unpack_explicit, unpack_implicit, unpack_long = _STRUCTS[frame.little]
                continue
            limit = frame.limit
            i = pos - base
            if i + 12 > len(buf) and (src.end is None or base + len(buf) < src.end):
                buf, base = src.window(pos, 12)
                i = pos - base
            have = len(buf) - i
            if limit is not None and limit - pos < have:
                have = limit - pos
            if have <= 0:
                if frame is top:
                    break
                raise _unclosed(frame)
            if have < 8:
                tag = None
                if have >= 4:
                    group, element = _TAG_STRUCTS[frame.little](buf, i)
                    tag = group << 16 | element
                raise _header_cut(frame, pos, have, tag)

            if frame.kind == _DATA_SET:
                explicit = frame.explicit
                # Fast path: plain elements whose headers lie in the window and whose
                # values end inside the container; anything else takes the long way.
                stop = base + len(buf)
                if limit is not None and limit < stop:
                    stop = limit
                after = _plain_run(buf, base, pos, stop, limit if limit is not None else stop,
                                   frame is top, found, explicit, frame.little)
                if after != pos:
                    pos = after
                    continue
                if explicit:
                    group, element, vr, length = unpack_explicit(buf, i)
                else:
                    group, element, length = unpack_implicit(buf, i)
                    vr = None
                tag = group << 16 | element
                if group == 0xFFFE and element in _DELIMITER_ELEMENTS:
                    if tag == _ITEM_DELIMITER and frame is not top and (
                            end is None or pos + 8 == end):
                        pos += 8
                        if end is None:
                            stack.pop()
                            frame = stack[-1]
                            unpack_explicit, unpack_implicit, unpack_long = \
                                _STRUCTS[frame.little]
                        continue
                    what = {_ITEM: 'item', _ITEM_DELIMITER: 'item delimiter',
                            _SEQUENCE_DELIMITER: 'sequence delimiter'}[tag]
                    where = 'at top level' if frame is top else f'in {frame.describe()}'
                    raise _Problem(f'stray {what} {_tag(tag)} {where}')
                if explicit:
                    if vr in _LONG_VRS:
                        if have < 12:
                            raise _header_cut(frame, pos, have, tag)
                        length = unpack_long(buf, i + 8)[0]
                        header = 12
                    elif vr in _SHORT_VRS:
                        header = 8
                    elif 65 <= vr[0] <= 90 and 65 <= vr[1] <= 90:
                        # A VR newer than us: new VRs have a 4-byte length (PS3.5 7.1.2).
                        if have < 12:
                            raise _header_cut(frame, pos, have, tag)
                        length = unpack_long(buf, i + 8)[0]
                        header = 12
                    else:
                        raise _Problem(f'invalid VR 0x{vr.hex().upper()} in {_tag(tag)}')
                value = pos + header if explicit else pos + 8

                if length == _UNDEFINED:
                    if tag == _PIXEL_DATA:
                        kind, inner_explicit, inner_little = _FRAGMENTS, explicit, frame.little
                    elif not explicit or vr == _SQ or vr == _OB or vr == _OW:
                        # OB/OW of undefined length: items, as DCMTK reads them.
                        kind, inner_explicit, inner_little = _SEQUENCE, explicit, frame.little
                    elif vr == _UN or vr not in _SHORT_VRS and vr not in _LONG_VRS:
                        # UN (or a future VR) of undefined length holds a sequence
                        # in Implicit VR Little Endian (PS3.5 6.2.2).
                        kind, inner_explicit, inner_little = _SEQUENCE, False, True
                    else:
                        raise _Problem(f'undefined length in {_tag(tag)}, '
                                       f'not allowed for VR {vr.decode()}')
                    if len(stack) >= _MAX_FRAMES:
                        raise _Problem(f'too deep: sequences nest over '
                                       f'{MAX_SEQUENCE_DEPTH} levels at {_tag(tag)}')
                    frame = _Frame(kind, None, limit, frame.limit_frame, tag, 0,
                                   inner_explicit, inner_little)
                    stack.append(frame)
                    unpack_explicit, unpack_implicit, unpack_long = _STRUCTS[inner_little]
                    pos = value
                    continue

                uid = None
                if frame is top and (tag == _SOP_CLASS_UID or tag == _SOP_INSTANCE_UID) \
                        and tag not in found:
                    # Read before the length check: a deflate window moves forward only.
                    size = min(length, _UID_MAX)
                    if value + size > base + len(buf):
                        buf, base = src.window(value, size)
                    uid = _uid_text(bytes(buf[value - base:value - base + size]))
                value_end = value + length
                if limit is not None:
                    if value_end > limit:
                        raise _too_long(_tag(tag), length, limit - value, frame)
                elif not src.reach(value_end):
                    raise _too_long(_tag(tag), length, src.end - value, frame)
                else:
                    buf, base = src.buf, src.base
                if uid is not None:
                    found[tag] = uid
                if length and (vr == _SQ if explicit else
                               tag in _SQ_TAGS):
                    if len(stack) >= _MAX_FRAMES:
                        raise _Problem(f'too deep: sequences nest over '
                                       f'{MAX_SEQUENCE_DEPTH} levels at {_tag(tag)}')
                    frame = _Frame(_SEQUENCE, value_end, value_end, None, tag, 0,
                                   explicit, frame.little)
                    stack.append(frame)
                    pos = value
                    continue
                pos = value_end
                continue

            # A sequence or encapsulated fragments: items and a delimiter only.
            group, element, length = unpack_implicit(buf, i)
            tag = group << 16 | element
            if tag == _ITEM:
                frame.items += 1
                if length == _UNDEFINED:
                    if frame.kind == _FRAGMENTS:
                        raise _Problem(f'undefined length in fragment {frame.items} '
                                       f'of {_tag(frame.owner)}')
                    if len(stack) >= _MAX_FRAMES:
                        raise _Problem(f'too deep: sequences nest over '
                                       f'{MAX_SEQUENCE_DEPTH} levels at {_tag(frame.owner)}')
                    frame = _Frame(_DATA_SET, None, limit, frame.limit_frame, frame.owner,
                                   frame.items, frame.explicit, frame.little)
                    stack.append(frame)
                    pos += 8
                    continue
                item_end = pos + 8 + length
                if limit is not None:
                    if item_end > limit:
                        raise _too_long(_item_name(frame), length, limit - pos - 8, frame)
                elif not src.reach(item_end):
                    raise _too_long(_item_name(frame), length, src.end - pos - 8, frame)
                else:
                    buf, base = src.buf, src.base
                if frame.kind == _SEQUENCE and length:
                    frame = _Frame(_DATA_SET, item_end, item_end, None, frame.owner,
                                   frame.items, frame.explicit, frame.little)
                    stack.append(frame)
                    pos += 8
                else:
                    pos = item_end
                continue
            if tag == _SEQUENCE_DELIMITER and (end is None or pos + 8 == end):
                pos += 8
                if end is None:
                    stack.pop()
                    frame = stack[-1]
                    unpack_explicit, unpack_implicit, unpack_long = _STRUCTS[frame.little]
                continue
            raise _Problem(f'not an item: {_tag(tag)} in {frame.describe()}')
    except _Problem as exc:
        problem = str(exc)
    except zlib.error as exc:
        # "Error -3 while decompressing data: invalid block type" -> the reason only
        problem = 'deflate stream corrupt: ' + str(exc).rpartition(': ')[2]
    except OSError as exc:
        problem = f'cannot read the data set: {exc}'
    else:
        problem = None
    return ScanResult(problem, found.get(_SOP_CLASS_UID), found.get(_SOP_INSTANCE_UID))


def scan_data_set(source: Union[BinaryIO, bytes, bytearray, memoryview],
                  transfer_syntax: str, offset: int = 0) -> ScanResult:
    """Check that the data set in ``source`` from ``offset`` to its end parses.

    ``source`` is a seekable binary file (read from ``offset``; its position is left
    anywhere) or bytes-like; the data set is a bare one (no preamble, no file meta), as
    a C-STORE carries it, encoded in ``transfer_syntax`` (a UID; an unknown one is read
    as Explicit VR Little Endian, like every encapsulated syntax, PS3.5 A.4). Never
    raises for what the data hold; a read error of the file becomes a ``problem`` too.
    """
    if offset < 0:
        raise ValueError(f'offset must not be negative, not {offset}')
    syntax = str(transfer_syntax).strip('\0 ')
    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    try:
        if syntax in DEFLATED_TRANSFER_SYNTAXES:
            src = _Inflated(_compressed_chunks(source, offset))
        elif in_memory:
            src = _InMemory(source, offset)
        else:
            src = _OnDisk(source, offset)
    except OSError as exc:
        return ScanResult(f'cannot read the data set: {exc}', None, None)
    return _walk(src, syntax != IMPLICIT_VR_LITTLE_ENDIAN, syntax != EXPLICIT_VR_BIG_ENDIAN)


def scan_written(head: Union[bytes, bytearray, memoryview], fd: int, size: int,
                 transfer_syntax: str, offset: int = 0,
                 prefix: Optional[Prefix] = None) -> ScanResult:
    """``scan_data_set`` of a data set of ``size`` bytes just written to the file
    descriptor ``fd`` from ``offset``, whose first bytes ``head`` are still in memory.

    The same verdict as ``scan_data_set`` of that file; the headers ``head`` holds are
    read from it, the others with ``os.pread`` (the file position stays where it is,
    and the file's size is not asked for). ``head`` must be what the file holds there.
    ``prefix``, ``walk_prefix(head, transfer_syntax)`` made while the rest was still
    arriving, spares walking those elements again.
    """
    if offset < 0:
        raise ValueError(f'offset must not be negative, not {offset}')
    syntax = str(transfer_syntax).strip('\0 ')
    if syntax in DEFLATED_TRANSFER_SYNTAXES:
        src = _Inflated(_pread_chunks(fd, offset, size))
        prefix = None
    else:
        src = _Written(head, fd, offset, size)
    return _walk(src, syntax != IMPLICIT_VR_LITTLE_ENDIAN, syntax != EXPLICIT_VR_BIG_ENDIAN,
                 prefix)


def walk_prefix(head: Union[bytes, bytearray, memoryview],
                transfer_syntax: str) -> Optional[Prefix]:
    """Walk the top-level elements that lie whole in ``head``, a data set's first
    bytes, up to the first that is not plain (a sequence, an undefined length, one
    running past ``head``); None for a deflated data set.

    A storage SCP calls it while the rest of the data set is still arriving, so the
    check once it is complete (``scan_written(..., prefix=)``) is shorter by that much.
    """
    syntax = str(transfer_syntax).strip('\0 ')
    if syntax in DEFLATED_TRANSFER_SYNTAXES:
        return None
    head = _byte_view(head)
    found: Dict[int, str] = {}
    pos = _plain_run(head, 0, 0, len(head), len(head), True, found,
                     syntax != IMPLICIT_VR_LITTLE_ENDIAN, syntax != EXPLICIT_VR_BIG_ENDIAN)
    return Prefix(pos, found)
