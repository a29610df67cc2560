"""The directories a tool reads and writes: a storage directory made and proved
writable before anything is received, and the files under the paths it is given.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterable, Optional

from pynetdicom2.apps.exits import EXIT_LOCAL, ToolError


def prepare_directory(path: str, what: str = 'storage directory') -> str:
    """Make ``path`` a directory the tool can write in (created with its parents when
    missing), or raise a ``ToolError`` (``EXIT_LOCAL``): "cannot use storage directory
    PATH: <reason>".

    The test that counts is creating (and removing) a file in it: permission bits
    say nothing to root, and a read-only mount, ``/proc`` or ``/sys`` refuse files
    whatever the bits say. Nothing is left behind but the directory itself.
    """
    def refuse(reason: str):
        return ToolError(f'cannot use {what} {path}: {reason}', EXIT_LOCAL)

    if os.path.exists(path) and not os.path.isdir(path):
        raise refuse('it is a file, not a directory')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            raise refuse(f'{blocker} is a file, not a directory') from exc
        raise refuse(f'cannot create it ({exc.strerror or exc})') from exc
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-test-', dir=path)
    except OSError as exc:
        raise refuse(f'cannot create files in it ({exc.strerror or exc})') from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def _file_in_the_way(path: str) -> Optional[str]:
    """The first ancestor of ``path`` that exists and is not a directory, if any."""
    parts = os.path.abspath(path).split(os.sep)
    for n in range(2, len(parts) + 1):
        ancestor = os.sep.join(parts[:n])
        if os.path.exists(ancestor) and not os.path.isdir(ancestor):
            return ancestor
        if not os.path.exists(ancestor):
            return None
    return None


def iter_files(paths: Iterable[str], recursive: bool = True) -> Iterable[str]:
    """Every file named or found under the named directories, sorted per directory."""
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                if not recursive:
                    dirs[:] = []
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield path
