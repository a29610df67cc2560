"""Files made ahead of need: the file of the next received data set, created while the
peer prepares its next request, so that creating it is not between that request and
its response.

Creating a file (a new inode) is the costliest single step of storing an instance,
more so on a busy or network file system. A folder storage calls ``SpareFiles.prepare``
once a C-STORE response has gone, and ``take`` when the next data set arrives
(``make_now`` when none is ready). A spare is an unnamed file (Linux ``O_TMPFILE``) in
the directory where it will live: nothing to see or to clean up, and gone with its
process. It stays unnamed while it is filled (``UnnamedFile``): when every step of
keeping it is the library's, it is linked once, straight to its final name; a
temporary name is given only when something asks for the file's ``name`` (a hook
reading it by path). Where the system or the file system cannot make or name one,
files are created, with their temporary names, as before.
"""

from __future__ import annotations

import errno
import io
import os
import weakref
from typing import Callable, List, Optional, Tuple

__all__ = ['SpareFiles', 'UnnamedFile']

# What os.open answers where a file system has no unnamed files.
_UNSUPPORTED = (errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL)

# Every SpareFiles of this process, for the fork handler at the end.
_every = weakref.WeakSet()


class UnnamedFile(io.FileIO):
    """A spare in use, open for reading and writing: it has no name in its folder until
    it is ``link``-ed to one or something asks for its ``name`` (which gives it a new
    temporary name, from ``new_path``). ``close`` names it first if nothing has:
    only ``discard`` lets it vanish."""

    def __init__(self, fd: int, new_path: Callable[[], str]) -> None:
        self.path: Optional[str] = None  # its name in a folder; None: none yet
        self._new_path = new_path
        super().__init__(fd, 'r+')

    def close(self) -> None:
        """Close the file, giving it a temporary name first when it has none (a hook
        closing the file it was handed loses nothing)."""
        if self.path is None and not self.closed:
            self.give_name()
        super().close()

    def discard(self) -> None:
        """Close the file as it is: one without a name vanishes."""
        super().close()

    def __del__(self) -> None:
        self.discard()  # dropped without close: nothing of it is kept

    @property
    def name(self) -> str:
        """The file's path: asking for it names the file (``give_name``) if need be."""
        return self.path if self.path is not None else self.give_name()

    @name.setter
    def name(self, value) -> None:
        # io.FileIO sets the descriptor as the name; the path comes from give_name.
        if not isinstance(value, int):
            raise AttributeError('the name of an unnamed file comes from give_name()')

    def give_name(self) -> str:
        """Link the file to a new temporary path (unless named already); returns it."""
        if self.path is None:
            for _ in range(100):
                path = self._new_path()
                try:
                    self.link(path)
                except FileExistsError:
                    continue
                break
            else:
                raise OSError(errno.EEXIST,
                              f'no free temporary file name in {os.path.dirname(path)}')
        return self.path

    def link(self, path: str) -> None:
        """Give the file, which has no name yet, the name ``path``; ``FileExistsError``:
        the name is taken."""
        self.link_descriptor(self.fileno(), path)
        self.path = path

    @staticmethod
    def link_descriptor(fd: int, path: str) -> None:
        """Name the unnamed file open as ``fd`` ``path``."""
        # linkat(AT_SYMLINK_FOLLOW) of the descriptor's /proc link: open(2)'s way of
        # naming an O_TMPFILE file. With a src_dir_fd, os.link calls linkat and follows
        # the link; the path is absolute, so which descriptor does not matter.
        os.link(f'/proc/self/fd/{fd}', path, src_dir_fd=fd)


class SpareFiles:
    """At most ``keep`` unnamed files made ahead, each in the folder it was made for."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self.works = hasattr(os, 'O_TMPFILE') and os.path.isdir('/proc/self/fd')
        self._spares: List[Tuple[int, str]] = []  # (descriptor, folder); list ops are atomic
        self._can_name = set()  # the folders where naming a spare was tried and works
        weakref.finalize(self, _close_all, self._spares)
        _every.add(self)

    def prepare(self, folder: str) -> None:
        """Make one more spare in ``folder``, unless ``keep`` are ready (never raises)."""
        if len(self._spares) < self.keep:
            fd = self._make(folder)
            if fd is not None:
                self._spares.append((fd, folder))

    def make_now(self, folder: str, new_path: Callable[[], str]) -> Optional[UnnamedFile]:
        """An unnamed file made now in ``folder`` (none was made ahead), as ``take``
        gives; None where none can be made (never raises)."""
        fd = self._make(folder)
        return None if fd is None else UnnamedFile(fd, new_path)

    def _make(self, folder: str) -> Optional[int]:
        """The descriptor of a new unnamed file of ``folder`` that can be named later."""
        if not self.works:
            return None
        try:
            fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o666)  # as 'x' mode would
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                self.works = False
            return None
        if folder not in self._can_name:
            works = self._naming_works(folder)
            if not works:
                os.close(fd)
                if works is False:
                    self.works = False  # no /proc link to follow: files made as before
                return None
        return fd

    def _naming_works(self, folder: str) -> Optional[bool]:
        """Whether an unnamed file of ``folder`` can be named (None: not known now).

        Spares are named later, in the middle of a store, where failing would lose
        the instance: tried once per folder, on a file and a name of its own (an
        unnamed file can be linked only while it has never had a name)."""
        probe = os.path.join(folder, f'.spare-probe-{os.getpid()}-{os.urandom(4).hex()}')
        try:
            fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError:
            return None  # out of descriptors or space: perhaps next time
        try:
            UnnamedFile.link_descriptor(fd, probe)
        except OSError:
            return False
        finally:
            os.close(fd)
        try:
            os.unlink(probe)
        except OSError:
            pass
        self._can_name.add(folder)
        return True

    def take(self, folder: str, new_path: Callable[[], str]) -> Optional[UnnamedFile]:
        """A spare made in ``folder``, unnamed (``UnnamedFile``: ``new_path`` gives the
        path it gets if asked for a name); None when there is none."""
        while True:
            try:
                fd, made_in = self._spares.pop()
            except IndexError:
                return None
            if made_in == folder:
                return UnnamedFile(fd, new_path)
            os.close(fd)  # made for another folder: the storage moved

    def close(self) -> None:
        """Close every spare (they vanish); later ``prepare`` calls make new ones."""
        _close_all(self._spares)


def _close_all(spares: List[Tuple[int, str]]) -> None:
    while spares:
        try:
            fd, _ = spares.pop()
        except IndexError:
            return
        try:
            os.close(fd)
        except OSError:
            pass


def _forget_inherited() -> None:
    # A forked child must not write into its parent's spares: close its copies.
    for spares in list(_every):
        spares.close()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_inherited)
