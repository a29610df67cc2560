"""How a tool ends: its exit codes, the one-line error it prints, and the wording of
each library error (which wait timed out, who rejected and why) as a ``ToolError``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, AssociationReleasedError,
    ClassNotSupportedError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError,
    PDUProcessingError)

EXIT_OK = 0            #: the job was done
EXIT_FAILURE = 1       #: a DICOM operation failed (a failure status, instances not stored)
EXIT_USAGE = 2         #: the command line is wrong (argparse's own code)
EXIT_REJECTED = 3      #: the peer rejected the association (A-ASSOCIATE-RJ)
EXIT_ABORTED = 4       #: the association was aborted or released early, or broke the protocol
EXIT_TIMEOUT = 5       #: a wait timed out (connect -to, association -ta, DIMSE -td)
EXIT_CONNECT = 6       #: no connection: refused, unreachable, TLS handshake failed
EXIT_LOCAL = 7         #: this machine stops us: a directory we cannot use, a port we cannot
#:                        listen on
EXIT_INTERRUPTED = 130  #: stopped by Ctrl-C


class ToolError(Exception):
    """A failure the tool reports in one line and turns into an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_PHASES = {
    'connect': ('connecting', '-to', 'connect_timeout'),
    'tls': ('in the TLS handshake', '-to', 'connect_timeout'),
    'acse': ('waiting for the association answer', '-ta', 'acse_timeout'),
    'dimse': ('waiting for a DIMSE message', '-td', 'dimse_timeout'),
}


def explain(exc: BaseException, peer: str = 'the peer', ae=None) -> ToolError:
    """The one-line message and exit code for a library error."""
    if isinstance(exc, (ToolError, BrokenPipeError)):
        raise exc  # already worded / the reader of our output went away
    if isinstance(exc, AssociationRejectedError):
        # The library's own message says the same values; say them once, in words.
        return ToolError(f'association rejected by {peer}: {exc.describe()}', EXIT_REJECTED)
    if isinstance(exc, DCMTimeoutError):
        phase = getattr(ae, 'phase', None)
        if phase in _PHASES:
            what, flag, attr = _PHASES[phase]
            limit = getattr(ae, attr)
            return ToolError(f'timeout {what} with {peer} ({flag} {limit:g} s): {exc}',
                             EXIT_TIMEOUT)
        return ToolError(f'timeout with {peer}: {exc}', EXIT_TIMEOUT)
    if isinstance(exc, AssociationAbortedError):
        if getattr(ae, 'phase', None) in ('connect', 'tls'):
            return ToolError(_cannot_connect(exc, peer), EXIT_CONNECT)
        return ToolError(f'association with {peer} aborted: {exc}', EXIT_ABORTED)
    if isinstance(exc, AssociationReleasedError):
        return ToolError(f'{peer} released the association early: {exc}', EXIT_ABORTED)
    if isinstance(exc, ClassNotSupportedError):
        return ToolError(str(exc), EXIT_FAILURE)
    if isinstance(exc, (PDUProcessingError, DIMSEProcessingError)):
        return ToolError(f'protocol error with {peer}: {exc}', EXIT_ABORTED)
    if isinstance(exc, NetDICOMError):
        if isinstance(exc.__cause__, OSError) or getattr(ae, 'phase', None) == 'connect':
            return ToolError(_cannot_connect(exc, peer), EXIT_CONNECT)
        return ToolError(f'{exc}', EXIT_FAILURE)
    if isinstance(exc, OSError):
        return ToolError(f'{exc}', EXIT_FAILURE)
    raise exc


def _cannot_connect(exc: BaseException, peer: str) -> str:
    text = str(exc)
    return text if text.startswith('cannot connect') else f'cannot connect to {peer}: {text}'


def execute(prog: str, job: Callable[[], int]) -> int:
    """Run ``job``; print a failure as ``prog: error: ...`` and return the exit code."""
    try:
        return job()
    except BrokenPipeError:
        # Our output was piped into a program that stopped reading (``| head``):
        # that is how the user wanted it to end.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt as exc:
        # A tool may say where it stopped: ``raise KeyboardInterrupt('sent 3 of 10 ...')``.
        detail = f': {exc}' if str(exc) else ''
        print(f'{prog}: interrupted{detail}', file=sys.stderr)
        return EXIT_INTERRUPTED
    except ToolError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return exc.exit_code
