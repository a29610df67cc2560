"""Received data sets: one object owns each, from its first fragment to its final name.

When a C-STORE request's command set is complete, the storage service asks the AE's
factory (``AEBase.incoming_data_set``) for an ``IncomingDataSet``, given the request's
SOP Class and Instance UIDs and the transfer syntax. The DIMSE layer writes the data
set's fragments into it (``write``); the service then ``check``s it (it parses to its
end and names the request's UIDs), asks the user's hook for a status, and ``commit``s
it (Success or Warning: the data set reaches its final place) or ``discard``s it
(Failure: nothing is kept). ``release`` ends its life either way.

Owners here: ``TemporaryDataSet`` (an anonymous temporary Part-10 file: the default of
every AE, it keeps nothing), ``FolderDataSet`` (a ``.part`` file in a folder storage's
directory, renamed only when committed), ``InMemory`` (bytes, for SOP classes outside
``store_in_file``), ``NullDataSet`` (drops the bytes: a refused or ignored data set) and
``SuppliedFile`` (the file a 0.9.x ``get_file`` override returns: it stays the user's).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import struct
import tempfile
from typing import Any, BinaryIO, NamedTuple, Optional

from pynetdicom2 import dscheck
from pynetdicom2.asceprovider import IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME
from pynetdicom2.exceptions import EventHandlingError
from pynetdicom2.sparefiles import UnnamedFile

logger = logging.getLogger(__name__)

# C-STORE statuses of the checks (PS3.4 B.2.3): 0xA900 "data set does not match SOP
# class", 0xC000 "cannot understand" (the data set does not parse, a UID is missing or
# not a UID), 0xA700 "out of resources" (it could not be written).
DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700


class Refusal(NamedTuple):
    """Why a received data set is refused: the C-STORE status and its Error Comment."""
    status: int
    comment: str


class InstanceRefused(EventHandlingError):
    """A storage step refuses an instance with a status of its own.

    Raised from ``FolderStorageMixin.place_instance`` (or ``final_path``) to answer
    ``status`` (a C-STORE failure code) with ``comment`` as Error Comment, e.g. an
    archive refusing an instance that conflicts with what it already holds. Nothing
    is kept under a final name.
    """

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment

    def __reduce__(self):
        return type(self), (self.status, self.comment)


def clean_uid(value) -> str:
    """A UID value as text, without the trailing NUL or space padding."""
    return '' if value is None else str(value).rstrip('\x00 ')


def uid_problem(uid, what: str = 'UID') -> Optional[str]:
    """Why ``uid`` may not name a file, or None when it is a valid UID.

    PS3.5 9.1: digits and dots, at most 64 characters, no empty component (so no
    leading, trailing or double dot). Leading zeros, which some devices send, pass.
    Checked before a UID from a peer becomes part of a path, so "../x" never escapes.
    """
    if not isinstance(uid, str) or not uid:
        return f'no {what}'
    if len(uid) > 64:
        return f'{what} longer than 64 characters: {_shown(uid)!r}'
    # ASCII digits and dots (isdigit alone would take other scripts' digits), no
    # component empty: plain string methods, cheaper than a regular expression here.
    if not (uid.isascii() and uid.replace('.', '').isdigit()) or uid[0] == '.' \
            or uid[-1] == '.' or '..' in uid:
        return f'invalid {what} {_shown(uid)!r}'
    return None


def _shown(uid: str) -> str:
    return uid[:40] + ('...' if len(uid) > 40 else '')


def library_default(hook):
    """Mark ``hook`` as the library's own, so that ``overridden`` tells a user's apart."""
    hook.library_default = True
    return hook


def overridden(ae, name: str) -> bool:
    """True when ``ae``'s ``name`` hook is not one of the library's defaults."""
    hook = getattr(ae, name, None)
    if hook is None:
        return False
    return not getattr(getattr(hook, '__func__', hook), 'library_default', False)


class IncomingDataSet:
    """Owns one received data set: where its bytes go, then keep it or drop it.

    ``sop_class_uid`` and ``sop_instance_uid`` are the request's Affected SOP Class
    and Instance UIDs, ``transfer_syntax`` the presentation context's. After
    ``commit``, ``final_path`` says where the data set was kept (None: nowhere).
    """

    #: True when ``commit`` keeps the data set somewhere (a folder storage).
    keeps_files = False

    def __init__(self, sop_class_uid: str, sop_instance_uid: str,
                 transfer_syntax: str) -> None:
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid
        self.transfer_syntax = transfer_syntax
        self.final_path: Optional[str] = None
        self.committed = False
        self.released = False

    # -- receiving --------------------------------------------------------------------

    def write(self, fragment) -> None:
        """Take the next fragment of the data set; ``OSError``: it cannot be kept."""
        raise NotImplementedError

    def write_run(self, fragments) -> None:
        """``write`` each of ``fragments`` in order (a data set's PDUs received
        together; each may be a view of a receive buffer, valid only during the call)."""
        for fragment in fragments:
            self.write(fragment)

    # -- deciding ---------------------------------------------------------------------

    def scan(self) -> Optional[dscheck.ScanResult]:
        """``dscheck``'s verdict on the complete data set; None when not ours to read."""
        return None

    def check(self) -> Optional[Refusal]:
        """Why the complete data set must be refused, or None.

        It must parse to its end in its transfer syntax (else 0xC000 and what is
        wrong) and carry the SOP Class and Instance UIDs of the request (else 0xA900;
        a missing one, 0xC000, as DCMTK's storescp answers).
        """
        result = self.scan()
        if result is None:
            return None
        if result.problem is not None:
            return Refusal(CANNOT_UNDERSTAND, result.problem)
        for what, found, asked in (
                ('SOP Class UID', result.sop_class_uid, self.sop_class_uid),
                ('SOP Instance UID', result.sop_instance_uid, self.sop_instance_uid)):
            if not found:
                return Refusal(CANNOT_UNDERSTAND, f'no {what} in the data set')
            if found != clean_uid(asked):
                return Refusal(DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                               f'{what} {found} in the data set is not the request\'s '
                               f'{clean_uid(asked)}')
        return None

    def for_hook(self, in_file: bool = True, limit: Optional[int] = None):
        """What ``on_receive_store`` gets: the Part-10 file at its start (``in_file``)
        or the data set's bytes, at most ``limit`` of them (else ``OSError`` EFBIG)."""
        raise NotImplementedError

    def commit(self, context) -> Optional[str]:
        """Keep the complete, checked data set; returns where (None: nowhere)."""
        self.committed = True
        return None

    def discard(self) -> None:
        """Drop the data set: nothing of it is kept. Safe to call more than once."""
        self.release()

    def release(self) -> None:
        """The exchange is over: close what is open, drop what was not committed."""
        self.released = True


def _too_big(limit: int) -> OSError:
    # The comment a peer reads: the limit and the setting that raises it.
    return OSError(errno.EFBIG, f'data set over {limit} bytes in memory (max_memory_store)')


class _NullFile(io.RawIOBase):
    """A file that drops what is written and reads empty."""

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)

    def readinto(self, buffer) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0


# Fragments are gathered and written in whole pages: a write that starts or ends inside
# a page the file has not filled yet makes the kernel zero the rest of that page first,
# and a PDV is rarely a multiple of a page (16 KiB PDUs carry 16,378 data bytes).
_PAGE = 4096
_WRITE_CHUNK = 32 * _PAGE   # gathered bytes written at a time (128 KiB)
# The data set's first bytes kept in memory when they are first written, so that the
# check reads the headers there instead of reading them back (most data sets' headers,
# all but pixel data, fit; what lies past it is read with os.pread).
_HEAD = 16384


class _FileDataSet(IncomingDataSet):
    """A data set received into a Part-10 file: preamble, file meta, then the data set.

    Fragments are gathered in memory and reach the file in page-aligned chunks of
    ``_WRITE_CHUNK`` bytes; a run of fragments (``write_run``) goes out in whole pages
    at once, uncopied. ``file`` (the file object, for a hook or a 0.9.x ``get_file``)
    writes out what is gathered first, so whoever holds it sees every byte received
    so far.
    """

    def __init__(self, sop_class_uid, sop_instance_uid, transfer_syntax) -> None:
        super().__init__(sop_class_uid, sop_instance_uid, transfer_syntax)
        self._file: Optional[BinaryIO] = None
        self._gathered = bytearray()
        self._written = 0  # bytes the file has been given
        self.offset = 0
        # The descriptor of a plain unbuffered file (None: another kind of file, only
        # its methods are used), the data set's first bytes as first written (None:
        # nothing written yet), and whether the file object was handed out (someone
        # else may then have written to it or moved its position).
        self._fd: Optional[int] = None
        self._head: Optional[bytes] = None
        self._handed_out = False
        # The check's walk of the elements in ``_head``, made as soon as it is kept:
        # while the rest of a large data set arrives, not after (dscheck.walk_prefix);
        # not made for a data set checked whole in memory, before its first write.
        self._prefix: Optional[dscheck.Prefix] = None
        self._walk_head = True

    def _open(self) -> BinaryIO:
        raise NotImplementedError

    def create(self) -> None:
        """Create the file now (a full disk is known before the data arrive)."""
        if self._file is not None:
            return
        fp = self._open()
        self._file = fp
        if type(fp) is io.FileIO or type(fp) is UnnamedFile:  # plain files: their descriptor
            self._fd = fp.fileno()
        try:
            fp.incoming_data_set = self  # a 0.9.x get_file override may hand it back
        except AttributeError:
            pass  # a file object of a user's create_temporary_file may refuse it
        self._gathered += meta_bytes(self.sop_class_uid, self.sop_instance_uid,
                                     self.transfer_syntax)
        self.offset = len(self._gathered)

    @property
    def file(self) -> BinaryIO:
        """The Part-10 file the data set is written into (created on first use), with
        every byte received so far written to it."""
        self._flush()
        self._handed_out = True
        return self._file

    def _flush(self) -> None:
        """Create the file if needed and write every gathered byte to it."""
        if self._file is None:
            self.create()
        if self._gathered:
            self._write_gathered(len(self._gathered))

    def write(self, fragment) -> None:
        if self._file is None:
            self.create()
        gathered = self._gathered
        if len(gathered) + len(fragment) < _WRITE_CHUNK:
            gathered += fragment
            return
        # Complete the last gathered page from the fragment and write all that is
        # gathered; the fragment's whole pages then go out uncopied, its tail waits.
        view = memoryview(fragment)
        top = min(-len(gathered) % _PAGE, len(view))
        gathered += view[:top]
        rest = view[top:]
        if len(gathered) % _PAGE:
            return
        whole = len(rest) & ~(_PAGE - 1)
        if whole and self._fd is not None:
            self._write_gathered_and(rest[:whole])  # one system call for both
        else:
            self._write_gathered(len(gathered))
            if whole:
                self._write_all(rest[:whole])
        gathered += rest[whole:]

    def write_run(self, fragments) -> None:
        # What fills whole pages goes from the receive buffer to the file in one
        # os.writev, with what was gathered before it (no copy of the fragments);
        # what is left of the last page is gathered.
        gathered = self._gathered
        total = len(gathered) + sum(map(len, fragments))
        last = fragments[-1]
        tail = total % _PAGE
        if total < _PAGE or self._fd is None or len(last) < tail:
            for fragment in fragments:
                self.write(fragment)
            return
        pieces = [gathered, *fragments]
        pieces[-1] = last[:len(last) - tail]
        if self._head is None:
            self._keep_head(pieces)
        try:
            done = os.writev(self._fd, pieces)
            self._written += done
            if done < total - tail:  # a partial write: the rest one piece at a time
                for piece in pieces:
                    if done >= len(piece):
                        done -= len(piece)
                        continue
                    self._write_all(memoryview(piece)[done:])
                    done = 0
        except BaseException:
            self._gathered = bytearray(gathered)  # a traceback may hold a view
            raise
        del gathered[:]
        gathered += last[len(last) - tail:]

    def _keep_head(self, pieces) -> None:
        """Keep the data set's first bytes, from ``pieces``: the next bytes the file
        gets, as a list of bytes-like objects (nothing kept if the start is past)."""
        skip = self.offset - self._written  # the file meta before the data set
        if skip < 0:
            self._head = b''
            return
        wanted = _HEAD
        parts = []
        for piece in pieces:
            if wanted <= 0:
                break
            if skip >= len(piece):
                skip -= len(piece)
                continue
            part = memoryview(piece)[skip:skip + wanted]
            parts.append(part)
            wanted -= len(part)
            skip = 0
        self._head = b''.join(parts)  # the one copy
        if self._fd is not None and self._walk_head:  # else scan reads the file object
            self._prefix = dscheck.walk_prefix(self._head, self.transfer_syntax)

    def _write_gathered_and(self, more: memoryview) -> None:
        """Write all that is gathered, then ``more``, with one ``os.writev``."""
        gathered = self._gathered
        count = len(gathered)
        if self._head is None:
            self._keep_head((gathered, more))
        try:
            view = memoryview(gathered)
            total = count + len(more)
            done = os.writev(self._fd, (view, more))
            self._written += done
            if done < total:  # a partial write: the rest one piece at a time
                if done < count:
                    self._write_all(view[done:])
                    done = count
                self._write_all(more[done - count:])
            del view
        except BaseException:
            # The error's traceback may keep a view of the bytes: go on with a copy,
            # which can still change size.
            self._gathered = bytearray(gathered)
            raise
        del gathered[:]  # the view above is gone: no export left

    def _write_gathered(self, count: int) -> None:
        """Write the first ``count`` gathered bytes to the file and forget them."""
        if not count:
            return
        if self._head is None:
            with memoryview(self._gathered) as view:
                self._keep_head((view[:count],))
        try:
            self._write_all(memoryview(self._gathered)[:count])
        except BaseException:
            # The error's traceback may keep a view of the bytes: go on with a copy,
            # which can still change size.
            self._gathered = bytearray(self._gathered)
            raise
        del self._gathered[:count]  # the view above is gone: no export left

    def _write_all(self, data: memoryview) -> None:
        write = self._file.write
        self._written += len(data)
        while data:
            n = write(data)
            if n is None or n >= len(data):
                return
            data = data[n:]  # a raw file may take less than it was given

    def check(self) -> Optional[Refusal]:
        # A small data set, all still gathered, is read where it is (no read-back);
        # a full disk still outranks what the data say.
        gathered = not self._written
        verdict = None
        if gathered:
            verdict = super().check()
            self._walk_head = False  # walked whole just now
        try:
            self._flush()  # every byte reaches the file before it is read or kept
        except OSError as exc:  # a full disk: out of resources, as a failed write
            return Refusal(OUT_OF_RESOURCES, exc.strerror or str(exc))
        return verdict if gathered else super().check()

    def scan(self) -> dscheck.ScanResult:
        if not self._written:
            return dscheck.scan_data_set(self._gathered, self.transfer_syntax, self.offset)
        self._flush()
        if self._fd is not None and not self._handed_out and self._head is not None:
            # Only this object wrote the file: its size is what was written, its first
            # bytes are in memory, the rest is read without moving the file position.
            return dscheck.scan_written(self._head, self._fd, self._written - self.offset,
                                        self.transfer_syntax, self.offset, self._prefix)
        return dscheck.scan_data_set(self.file, self.transfer_syntax, self.offset)

    def for_hook(self, in_file: bool = True, limit: Optional[int] = None):
        fp = self.file
        if in_file:
            fp.seek(0)
            return fp
        size = fp.seek(0, os.SEEK_END) - self.offset
        if limit is not None and size > limit:
            raise _too_big(limit)
        fp.seek(self.offset)
        return read_exactly(fp, size)

    def _close(self) -> None:
        # The file object refers back to this owner (``incoming_data_set``): the pair
        # lives until the cyclic garbage collector runs, so let go of the buffers now.
        self._gathered = bytearray()
        self._head = None
        self._prefix = None
        fp = self._file
        if fp is not None and not fp.closed:
            fp.close()


def read_exactly(fp, size: int) -> bytes:
    """``size`` bytes from ``fp`` (fewer only at its end): a raw file may return less
    than asked at a time."""
    data = fp.read(size)
    while data is not None and len(data) < size:
        more = fp.read(size - len(data))
        if not more:
            break
        data += more
    return data or b''


_anonymous_files = hasattr(os, 'O_TMPFILE')


def anonymous_file() -> BinaryIO:
    """A new unnamed, unbuffered file in the temporary directory, gone when closed:
    ``tempfile.TemporaryFile``'s file, opened directly where the system has
    ``O_TMPFILE`` (one call per data set instead of tempfile's name handling)."""
    global _anonymous_files
    if _anonymous_files:
        try:
            fd = os.open(tempfile.gettempdir(), os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _anonymous_files = False  # this file system cannot: tempfile's way from now on
        else:
            return io.FileIO(fd, 'r+')
    return tempfile.TemporaryFile(buffering=0)


class TemporaryDataSet(_FileDataSet):
    """An anonymous temporary file (``tempfile.TemporaryFile``): the hook reads it,
    nothing is kept; the operating system deletes it when it is closed."""

    def _open(self) -> BinaryIO:
        return anonymous_file()

    def release(self) -> None:
        self.released = True
        self._close()


class FolderDataSet(_FileDataSet):
    """A temporary ``.part`` file of a folder storage, given its final name by
    ``commit`` through the storage's ``final_path`` and ``place_instance`` hooks; or a
    file made ahead and still unnamed (``sparefiles.UnnamedFile``), linked straight to
    its final name when those steps are the library's."""

    keeps_files = True

    def __init__(self, storage, sop_class_uid, sop_instance_uid, transfer_syntax) -> None:
        super().__init__(sop_class_uid, sop_instance_uid, transfer_syntax)
        self.storage = storage
        self._path: Optional[str] = None

    @property
    def path(self) -> Optional[str]:
        """The temporary file's path; None before it is created, and while it is a
        spare nobody has asked the name of (``sparefiles.UnnamedFile``; once it is
        linked straight to its final name, that name)."""
        fp = self._file
        return fp.path if type(fp) is UnnamedFile else self._path

    def _open(self) -> BinaryIO:
        fp, self._path = self.storage.incoming_file()
        return fp

    def commit(self, context) -> Optional[str]:
        self._flush()  # a data set with no bytes still has its file; all written
        fp = self._file
        if type(fp) is UnnamedFile and fp.path is None:
            # Nobody has looked for the file by its name: when every step of keeping
            # it is the library's, it is linked once, straight to its final name.
            final = self.storage.place_unnamed(fp, clean_uid(self.sop_instance_uid))
            if final is not None:
                self._close()
                self.final_path = final
                self.committed = True
                logger.debug('stored %s', final)
                return final
            fp.give_name()  # the user's steps take the file by its path
        self._close()  # complete: a closed file can be renamed on every platform
        storage = self.storage
        # The library's own steps touch the file only to link it to its final name,
        # which fails (FileNotFoundError) when it is gone: asked only then.
        plain = getattr(storage, '_unread_attributes', None)
        plain = plain() if plain is not None else None
        if plain is None and not os.path.exists(self.path):
            return self._moved_away()
        try:
            attrs = storage.read_attributes(self.path) if plain is None else plain
            final = storage.final_path(clean_uid(self.sop_instance_uid), attrs)
            self.final_path = storage.place_instance(self.path, final, attrs, context)
        except FileNotFoundError:
            if plain is not None and not os.path.exists(self.path):
                return self._moved_away()
            raise
        self.committed = True
        logger.debug('stored %s', self.final_path)
        return self.final_path

    def _moved_away(self) -> None:
        # The hook moved the file away itself: it is the hook's now.
        logger.info('the received file %s was moved away by the hook; nothing to keep',
                    self.path)
        self.committed = True
        return None

    def release(self) -> None:
        self.released = True
        if not self.committed and type(self._file) is UnnamedFile:
            self._file.discard()  # not kept: unnamed, it vanishes
        self._close()
        if not self.committed and self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError:
                logger.warning('cannot delete the temporary file %s', self.path, exc_info=True)


class NullDataSet(IncomingDataSet):
    """Drops the bytes: a data set refused before it arrives (``refusal``), or one a
    storage in ``discard`` mode receives and does not keep."""

    def __init__(self, sop_class_uid, sop_instance_uid, transfer_syntax,
                 refusal: Optional[Refusal] = None) -> None:
        super().__init__(sop_class_uid, sop_instance_uid, transfer_syntax)
        self.refusal = refusal
        self.file = _NullFile()
        self.file.incoming_data_set = self
        self.offset = 0

    def write(self, fragment) -> None:
        pass

    def write_run(self, fragments) -> None:
        pass

    def check(self) -> Optional[Refusal]:
        return self.refusal

    def for_hook(self, in_file: bool = True, limit: Optional[int] = None):
        return self.file if in_file else b''


class InMemory(IncomingDataSet):
    """The data set gathered in memory, at most ``limit`` bytes (None: no limit);
    a longer one raises ``OSError`` (EFBIG) and is answered "out of resources"."""

    def __init__(self, sop_class_uid, sop_instance_uid, transfer_syntax,
                 limit: Optional[int] = None, data: Optional[bytes] = None) -> None:
        super().__init__(sop_class_uid, sop_instance_uid, transfer_syntax)
        self.limit = limit
        self._chunks: list = [] if data is None else [bytes(data)]
        self._size = 0 if data is None else len(data)

    def write(self, fragment) -> None:
        self._size += len(fragment)
        if self.limit is not None and self._size > self.limit:
            self._chunks = []
            raise _too_big(self.limit)
        self._chunks.append(bytes(fragment))  # the fragment's buffer is reused

    def _bytes(self) -> bytes:
        if len(self._chunks) != 1:
            self._chunks = [b''.join(self._chunks)]
        return self._chunks[0]

    def scan(self) -> dscheck.ScanResult:
        return dscheck.scan_data_set(self._bytes(), self.transfer_syntax)

    def for_hook(self, in_file: bool = True, limit: Optional[int] = None):
        return self._bytes()

    def release(self) -> None:
        self.released = True
        self._chunks = []


class SuppliedFile(IncomingDataSet):
    """The file a ``get_file`` override returned (0.9.x): it stays the user's.

    Written as it is; never checked, renamed or deleted here; handed back through
    ``ae.discard_file(fp)`` when the exchange is over, as in 0.9.x. When it is (or
    wraps) a file of ours (an override that called the base ``get_file``), that file's
    owner checks, keeps or drops it. Other attributes read through to the file, so a
    service written for 0.9.x that reads ``msg.data_set`` keeps working.
    """

    def __init__(self, ae, fp, offset: int = 0, sop_class_uid: str = '',
                 sop_instance_uid: str = '', transfer_syntax: str = '') -> None:
        super().__init__(sop_class_uid, sop_instance_uid, transfer_syntax)
        self.ae = ae
        self.fp = fp
        self.offset = offset
        ours = getattr(fp, 'incoming_data_set', None)
        self.ours: Optional[IncomingDataSet] = (
            ours if isinstance(ours, IncomingDataSet) else None)

    def __getattr__(self, name: str) -> Any:
        if name in ('fp', 'ours'):  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.fp, name)

    def write(self, fragment) -> None:
        self.fp.write(fragment)

    def check(self) -> Optional[Refusal]:
        return self.ours.check() if self.ours is not None else None

    def for_hook(self, in_file: bool = True, limit: Optional[int] = None):
        if not getattr(self.fp, 'closed', False):
            try:
                self.fp.seek(0)
            except (OSError, AttributeError, ValueError):
                pass
        return self.fp

    def commit(self, context) -> Optional[str]:
        self.committed = True
        if self.ours is not None:
            self.final_path = self.ours.commit(context)
        return self.final_path

    def discard(self) -> None:
        if self.ours is not None:
            self.ours.discard()
        self.release()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        discard_file = getattr(self.ae, 'discard_file', None)
        if discard_file is not None:
            discard_file(self.fp)
        elif not getattr(self.fp, 'closed', True):
            self.fp.close()


def file_sink(asce, ctx, msg) -> Optional[SuppliedFile]:
    """The data sink of a service marked ``store_in_file`` that names none itself
    (a 0.9.x service): the file from ``ae.get_file`` for the SOP classes in
    ``ae.store_in_file``, as 0.9.x gave it."""
    ae = asce.ae
    if ctx.sop_class not in getattr(ae, 'store_in_file', ()):
        return None
    fp, start = ae.get_file(ctx, msg.command_set)
    return SuppliedFile(ae, fp, start, clean_uid(msg.sop_class_uid),
                        clean_uid(msg.affected_sop_instance_uid), ctx.supported_ts)


# -- Part-10 file meta -------------------------------------------------------------------

def write_meta(fp, command_set, ts) -> None:
    """Write the Part-10 preamble, ``DICM`` and file meta information to ``fp``.

    MediaStorageSOPClassUID and MediaStorageSOPInstanceUID come from the command's
    Affected SOP Class and Instance UID (``command_set`` is a Dataset or a dict of
    keywords); the Transfer Syntax UID is ``ts``.
    """
    fp.write(meta_bytes(command_set.get('AffectedSOPClassUID'),
                        command_set.get('AffectedSOPInstanceUID'), ts))


def meta_bytes(sop_class_uid, sop_instance_uid, ts) -> bytes:
    """The Part-10 preamble, ``DICM`` and file meta information (PS3.10 7.1) of an
    instance of ``sop_class_uid`` / ``sop_instance_uid`` encoded in ``ts``.

    The group is small and fixed, so it is encoded here directly (explicit VR little
    endian) rather than through a pydicom data set: this runs once per stored file,
    and what comes before and after the instance UID is kept per SOP class and
    transfer syntax.
    """
    key = (sop_class_uid, ts)
    around = _meta_around.get(key) if isinstance(sop_class_uid, str) and \
        isinstance(ts, str) else None
    if around is None:
        around = (_VERSION_ELEMENT + _meta_element(0x0002, b'UI', _uid_value(sop_class_uid)),
                  _meta_element(0x0010, b'UI', _uid_value(ts)) + _IMPLEMENTATION_ELEMENTS)
        if isinstance(sop_class_uid, str) and isinstance(ts, str):
            if len(_meta_around) >= 256:  # the peer names the classes: bounded
                _meta_around.clear()
            _meta_around[key] = around
    instance = _meta_element(0x0003, b'UI', _uid_value(sop_instance_uid))
    length = len(around[0]) + len(instance) + len(around[1])
    return b''.join((_PREAMBLE, _GROUP_LENGTH_HEADER, struct.pack('<L', length),
                     around[0], instance, around[1]))


def _uid_value(uid) -> bytes:
    value = str(uid.value if hasattr(uid, 'value') else uid or '')
    return value.encode('ascii', 'replace')[:64]


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    """One group-0002 element; UIDs pad with NUL, text with a space (PS3.5 6.2)."""
    if len(value) % 2:
        value += b'\x00' if vr == b'UI' else b' '
    if vr == b'OB':   # OB has a reserved pair of bytes and a 4-byte length (PS3.5 7.1.2)
        return struct.pack('<HH2s2xL', 0x0002, element, vr, len(value)) + value
    return struct.pack('<HH2sH', 0x0002, element, vr, len(value)) + value


_PREAMBLE = b'\x00' * 128 + b'DICM'
_GROUP_LENGTH_HEADER = struct.pack('<HH2sH', 0x0002, 0x0000, b'UL', 4)
# (SOP class, transfer syntax) -> the meta elements before and after the instance UID.
_meta_around: dict = {}
_VERSION_ELEMENT = _meta_element(0x0001, b'OB', b'\x00\x01')
_IMPLEMENTATION_ELEMENTS = (
    _meta_element(0x0012, b'UI', _uid_value(IMPLEMENTATION_UID))
    + _meta_element(0x0013, b'SH', IMPLEMENTATION_VERSION_NAME.encode('ascii')))


__all__ = ['IncomingDataSet', 'TemporaryDataSet', 'FolderDataSet', 'NullDataSet',
           'InMemory', 'SuppliedFile', 'Refusal', 'InstanceRefused', 'file_sink',
           'write_meta', 'meta_bytes', 'read_exactly', 'uid_problem', 'clean_uid',
           'overridden', 'library_default']
