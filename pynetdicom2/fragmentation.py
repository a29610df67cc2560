"""P-DATA fragmentation (PS3.8 9.3.5 and Annex E): DIMSE messages in P-DATA-TF PDUs.

Outbound, ``iter_pdu_batches`` cuts a message's command set and data set into
fragments for the peer's maximum length, one PDV per P-DATA-TF PDU, ready for
scatter/gather sending; inbound, ``PDataFragments`` splits a received P-DATA-TF into
its presentation data values. Bytes in, bytes out: no sockets, no messages.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import threading
from array import array
from typing import Any, Iterable, Iterator, List, Optional, Tuple

from pynetdicom2 import pdu
from pynetdicom2.exceptions import DIMSEProcessingError

__all__ = [
    'COMMAND_FRAGMENT', 'LAST_FRAGMENT', 'MAX_FRAGMENT_LENGTH', 'fragment_length',
    'iter_pdu_batches', 'small_message_batch', 'PDataFragments',
]

# Message Control Header, PS3.8 E.2: bit 0 command (1) / data (0), bit 1 last fragment.
# Bits 2-7 are sent as 0 and never checked by the receiver.
COMMAND_FRAGMENT = 0x01
LAST_FRAGMENT = 0x02

#: Largest fragment we put in one PDV, even when the peer sets no limit (Maximum Length
#: Received 0, PS3.8 D.1) or a huge one: a big data set then streams in 4 MiB pieces.
MAX_FRAGMENT_LENGTH = 4 * 1024 * 1024
# Fragments sent by one scatter/gather call, and the size of a file read.
_SEND_BATCH_BYTES = 1024 * 1024

# A PDV item: 4-byte item length, presentation context ID, message control header, then
# the fragment (PS3.8 9.3.5.1).
_PDV_HEADER_LENGTH = 6
_PDV_LENGTH = struct.Struct('>L')
# Every PDU we send carries one PDV: its header and the PDU's (type, reserved, length;
# PS3.8 9.3.1) are packed together, by one call.
_PDU_AND_PDV_HEADER = struct.Struct('>BxLLBB')


# -- sending -------------------------------------------------------------------------

def fragment_length(max_pdu_length: Optional[int]) -> int:
    """Largest fragment to put in one PDV for a peer's Maximum Length Received.

    The PDV item adds 6 bytes (length, context ID, control header) inside the PDU's
    variable field; fragments have an even length (PS3.8 E.1); 0 or None means no
    limit, and we still stop at ``MAX_FRAGMENT_LENGTH``.
    """
    if not max_pdu_length:
        return MAX_FRAGMENT_LENGTH
    size = min(int(max_pdu_length) - _PDV_HEADER_LENGTH, MAX_FRAGMENT_LENGTH) & ~1
    if size < 2:
        raise DIMSEProcessingError(
            f'maximum PDU length {max_pdu_length} leaves no room for a fragment: a PDV '
            f'needs 6 bytes of header and an even fragment of at least 2 bytes')
    return size


def small_message_batch(command: bytes, data_set: Any, pc_id: int,
                        max_pdu_length: Optional[int]) -> Optional[List[Any]]:
    """The PDUs of a small message, as the one list ``iter_pdu_batches`` would yield,
    or None when the message is not small: the command set fits one fragment and the
    data set is absent, or bytes, or the rest of a file opened with ``open(path,
    'rb')`` (then read to its end), that fit one fragment. Most messages are (every
    response, a C-FIND's identifiers, a small instance), and this is their short way.
    """
    size = fragment_length(max_pdu_length)
    length = len(command)
    if length > size or type(pc_id) is not int or not 0 < pc_id < 256 or not pc_id & 1:
        return None  # iter_pdu_batches cuts it, or says what is wrong with pc_id
    pack = _PDU_AND_PDV_HEADER.pack
    header = pack(pdu.P_DATA_TF, length + _PDV_HEADER_LENGTH, length + 2, pc_id,
                  COMMAND_FRAGMENT | LAST_FRAGMENT)
    if data_set is None:
        return [header, command]
    if type(data_set) is not bytes:
        data_set = _small_file(data_set, size)
        if data_set is None:
            return None
    elif len(data_set) > size:
        return None
    # The data set in a P-DATA-TF PDU of its own (see iter_pdu_batches).
    length = len(data_set)
    return [header, command,
            pack(pdu.P_DATA_TF, length + _PDV_HEADER_LENGTH, length + 2, pc_id,
                 LAST_FRAGMENT), data_set]


def _small_file(data: Any, size: int) -> Optional[memoryview]:
    """The rest of a file opened with ``open(path, 'rb')`` when it fits one fragment
    of ``size`` bytes, read to its end into the thread's read buffer (valid until the
    thread reads the next); None, with nothing read, otherwise."""
    if type(data) is not io.BufferedReader:
        return None
    try:
        left = os.fstat(data.fileno()).st_size - data.tell()
    except OSError as exc:
        raise DIMSEProcessingError(f'reading the data set file failed: {exc}') from exc
    if left > size:
        return None
    # Into a buffer made once: a new bytes object per file (often over malloc's
    # threshold for mapping memory) cost more than reading it.
    buffer = _read_buffers(max(left, 0) + 1)[0]
    count = _read_chunk(data, buffer)
    if count > left:  # it grew since: the general way reads it to its end
        try:
            data.seek(-count, io.SEEK_CUR)
        except OSError as exc:
            raise DIMSEProcessingError(f'reading the data set file failed: {exc}') from exc
        return None
    return buffer[:count]


def iter_pdu_batches(command: bytes, data_set: Any, pc_id: int,
                     max_pdu_length: Optional[int]) -> Iterator[List[Any]]:
    """Yield a DIMSE message as P-DATA-TF PDUs, several whole PDUs per list.

    ``command`` is the encoded command set; ``data_set`` None, bytes, or a binary file
    positioned at the data set's start (read in chunks, never closed here).
    ``max_pdu_length`` is the peer's Maximum Length Received (PS3.8 D.1): the limit on
    a PDU's variable field; 0 or None means no limit, and fragments stop at
    ``MAX_FRAGMENT_LENGTH``.

    Each list is ``[header, fragment, header, fragment, ...]``: for every PDU the 12
    bytes of its PDU and PDV headers (the last one is the message control header),
    then its fragment, never copied. A list holds about 1 MiB of fragments, so one
    scatter/gather call sends it (one call per 16 KiB PDU cost more than the copy);
    it stays valid until the next is requested. Every PDU carries one PDV, so the
    data set starts in a PDU of its own (see below). Memory stays bounded whatever
    the data set's size.
    """
    pdu.check_context_id(pc_id, DIMSEProcessingError)
    size = fragment_length(max_pdu_length)
    pack = _PDU_AND_PDV_HEADER.pack
    p_data_tf = pdu.P_DATA_TF
    batch: List[Any] = []
    gathered = 0
    chunks: Iterable[Tuple[memoryview, int, bool]] = [
        (memoryview(command), COMMAND_FRAGMENT, True)]
    if data_set is not None:
        # The data set starts in a P-DATA-TF PDU of its own. PS3.8 E.1 would let a
        # small one share the PDU of the command's last fragment, but GDCM-based peers
        # (and what is built on them) then wait for it forever; 0.9.8, DCMTK, pynetdicom
        # and Orthanc never send it that way, and neither do we.
        chunks = itertools.chain(chunks, _data_chunks(data_set, size))
    for chunk, kind, last_chunk in chunks:
        total = len(chunk)
        for pos in range(0, max(total, 1), size):
            end = pos + size
            fragment = chunk[pos:end]
            length = len(fragment)
            control = kind | LAST_FRAGMENT if last_chunk and end >= total else kind
            batch += (pack(p_data_tf, length + _PDV_HEADER_LENGTH, length + 2, pc_id,
                           control), fragment)
            gathered += length
            # The read buffers turn after a chunk: what was yielded from it is then
            # overwritten, so its PDUs leave before the next chunk is read.
            if gathered >= _SEND_BATCH_BYTES or (end >= total and not last_chunk):
                yield batch
                batch = []
                gathered = 0
    if batch:
        yield batch


def _data_chunks(data: Any, size: int) -> Iterator[Tuple[memoryview, int, bool]]:
    """The data set as chunks of whole fragments of ``size`` bytes (the last chunk
    may end short), each with the message control header's data bit (0) and True
    when it is the last one."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast('B')
        yield view, 0, True
        return
    if not (hasattr(data, 'readinto') or hasattr(data, 'read')):
        raise DIMSEProcessingError(
            f'data_set must be bytes or a binary file, not {type(data).__name__}; '
            f'encode a Dataset before sending it')
    # Read ahead one chunk to know which is the last (a file's length is not known
    # up front); two buffers take turns so the chunk yielded stays intact.
    chunk_size = size * max(1, _SEND_BATCH_BYTES // size)
    chunk_size = min(chunk_size, _bytes_left(data) or chunk_size)
    buffers = _read_buffers(chunk_size)
    turn = 0
    count = _read_chunk(data, buffers[turn])
    current = buffers[turn][:count]
    while True:
        turn ^= 1
        count = _read_chunk(data, buffers[turn]) if len(current) == chunk_size else 0
        if count == 0:
            yield current, 0, True
            return
        yield current, 0, False
        current = buffers[turn][:count]


_thread_buffers = threading.local()


def _read_buffers(size: int) -> List[memoryview]:
    """Two read buffers of ``size`` bytes, kept per thread and reused by every message
    the thread sends (messages are sent one after the other): allocating and zeroing
    fresh ones per message cost more than the sending itself."""
    pair = getattr(_thread_buffers, 'pair', None)
    if pair is None or len(pair[0]) < size:
        pair = [memoryview(bytearray(size)), memoryview(bytearray(size))]
        _thread_buffers.pair = pair
    return [pair[0][:size], pair[1][:size]]


def _bytes_left(fp: Any) -> Optional[int]:
    """How many bytes a regular file has after its position, or None if unknown."""
    try:
        left = os.fstat(fp.fileno()).st_size - fp.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return left if left > 0 else None


def _read_chunk(fp: Any, buf: memoryview) -> int:
    """Fill ``buf`` from ``fp`` as far as it goes; fewer bytes only at end of file."""
    filled = 0
    want = len(buf)
    readinto = getattr(fp, 'readinto', None)
    try:
        while filled < want:
            if readinto is not None:
                count = readinto(buf[filled:])
            else:
                chunk = fp.read(want - filled)
                if chunk is not None and not isinstance(chunk, (bytes, bytearray)):
                    raise DIMSEProcessingError(
                        f'the data set file gave {type(chunk).__name__}, not bytes: open '
                        f'it in binary mode')
                count = None if chunk is None else len(chunk)
                if count:
                    buf[filled:filled + count] = chunk
            if count is None:
                raise DIMSEProcessingError(
                    'the data set file has no data ready (non-blocking?); a blocking '
                    'binary file is needed')
            if count == 0:
                break
            filled += count
    except OSError as exc:
        raise DIMSEProcessingError(f'reading the data set file failed: {exc}') from exc
    return filled


# -- receiving --------------------------------------------------------------------

class PDataFragments:
    """The presentation data values of one received P-DATA-TF, already validated.

    Iterating yields ``(context_id, message_control_header, fragment)`` one at a time,
    the fragment a view into the receive buffer, valid until the next read. The PDU is
    walked once, when it arrives: every PDV is checked then, so a bad one refuses the
    whole PDU before any is used, and where each PDV ends is kept in an array, four
    bytes a PDV (never a list of objects: a PDU of thousands of tiny PDVs costs little).
    """

    __slots__ = ('body', 'single', '_ends')

    def __init__(self, body: memoryview) -> None:
        self.body = body
        #: ``(context_id, message_control_header, fragment)`` when the PDU holds one
        #: PDV (as most peers send), else None.
        self.single = None
        self._ends = None
        if len(body) >= 6 and _PDV_LENGTH.unpack_from(body)[0] == len(body) - 4:
            # One PDV filling the PDU, as most peers send: nothing else to check.
            self.single = (body[4], body[5], body[6:])
            return
        ends = array('I')
        end = 0
        for _, _, fragment in pdu.iter_pdvs(body):
            end += _PDV_HEADER_LENGTH + len(fragment)
            ends.append(end)
        self._ends = ends

    def __iter__(self) -> Iterator[Tuple[int, int, memoryview]]:
        if self.single is not None:
            return iter((self.single,))
        return self._iter_checked()

    def _iter_checked(self) -> Iterator[Tuple[int, int, memoryview]]:
        body = self.body
        start = 0
        for end in self._ends:
            # Item length (4 bytes), context ID, message control header, fragment.
            yield body[start + 4], body[start + 5], body[start + 6:end]
            start = end
