"""Files made ahead of need: the file of the next received data set, created while the
peer prepares its next request, so that creating it is not between that request and
its response.

Creating a file (a new inode) is the costliest single step of storing an instance,
more so on a busy or network file system. A folder storage calls ``SpareFiles.prepare``
once a C-STORE response has gone, and ``take`` when the next data set arrives. A spare
is an unnamed file (Linux ``O_TMPFILE``) in the directory where it will live: nothing
to see or to clean up before it is taken, and gone with its process. Where the system
or the file system cannot make one, nothing is prepared and files are created as before.
"""

from __future__ import annotations

import errno
import io
import os
import weakref
from typing import List, Optional, Tuple

__all__ = ['SpareFiles']

# What os.open answers where a file system has no unnamed files.
_UNSUPPORTED = (errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL)

# Every SpareFiles of this process, for the fork handler at the end.
_every = weakref.WeakSet()


class SpareFiles:
    """At most ``keep`` unnamed files made ahead, each in the folder it was made for."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self.works = hasattr(os, 'O_TMPFILE') and os.path.isdir('/proc/self/fd')
        self._spares: List[Tuple[int, str]] = []  # (descriptor, folder); list ops are atomic
        weakref.finalize(self, _close_all, self._spares)
        _every.add(self)

    def prepare(self, folder: str) -> None:
        """Make one more spare in ``folder``, unless ``keep`` are ready (never raises)."""
        if not self.works or len(self._spares) >= self.keep:
            return
        try:
            fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o666)  # as 'x' mode would
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                self.works = False
            return
        self._spares.append((fd, folder))

    def take(self, folder: str, path: str) -> Optional[io.FileIO]:
        """A spare made in ``folder``, now named ``path`` and open for reading and
        writing; None when there is none. ``FileExistsError``: ``path`` is taken."""
        while True:
            try:
                fd, made_in = self._spares.pop()
            except IndexError:
                return None
            if made_in == folder:
                break
            os.close(fd)  # made for another folder: the storage moved
        try:
            # linkat(AT_SYMLINK_FOLLOW) of the descriptor's /proc link: open(2)'s way of
            # naming an O_TMPFILE file. With a src_dir_fd, os.link calls linkat and
            # follows the link; the path is absolute, so which descriptor does not matter.
            os.link(f'/proc/self/fd/{fd}', path, src_dir_fd=fd)
        except FileExistsError:
            self._spares.append((fd, folder))
            raise
        except OSError:
            os.close(fd)
            self.works = False  # no /proc link to follow here: files are made as before
            return None
        fp = io.FileIO(fd, 'r+')
        fp.name = path
        return fp

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
