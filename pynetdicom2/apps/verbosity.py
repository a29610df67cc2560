"""How loud a tool is: ``-q``/``-v``/``-d``/``-ll LEVEL`` as a logging level, and log
lines on stderr in DCMTK's form (``E:``, ``W:``, ``I:``, ``D:``, ``T:``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from pynetdicom2.pdudumps import TRACE

#: DCMTK's log levels (``-ll``) as Python's; trace shows what debug shows, and any
#: finer message a library logs below DEBUG (``pynetdicom2.pdudumps.TRACE``).
LOG_LEVELS = {'fatal': logging.CRITICAL, 'error': logging.ERROR, 'warn': logging.WARNING,
              'info': logging.INFO, 'debug': logging.DEBUG, 'trace': TRACE}


def configure_logging(args: argparse.Namespace) -> None:
    """DCMTK-style log lines on stderr (``E:``, ``W:``, ``I:``, ``D:``)."""
    level = logging.WARNING
    if getattr(args, 'quiet', False):
        level = logging.ERROR
    if getattr(args, 'verbose', False):
        level = logging.INFO
    if getattr(args, 'debug', False):
        level = logging.DEBUG
    if getattr(args, 'log_level', None):
        level = LOG_LEVELS[args.log_level]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_DcmtkFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class _DcmtkFormatter(logging.Formatter):
    _LETTERS = {TRACE: 'T', logging.DEBUG: 'D', logging.INFO: 'I', logging.WARNING: 'W',
                logging.ERROR: 'E', logging.CRITICAL: 'F'}

    def format(self, record: logging.LogRecord) -> str:
        letter = self._LETTERS.get(record.levelno, 'T' if record.levelno < logging.DEBUG
                                   else 'I')
        text = record.getMessage()
        if record.exc_info and logging.getLogger().level <= logging.DEBUG:
            text += '\n' + self.formatException(record.exc_info)
        return '\n'.join(f'{letter}: {line}' for line in text.splitlines() or [''])
