"""A tool's progress on a terminal: a one-line bar with instances done, instances/s,
MB/s and the time left, silent when the output is not a terminal.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Optional, TextIO


class Progress:
    """A one-line progress bar on a terminal: instances done, instances/s and MB/s.

    Silent when ``stream`` is not a terminal (a pipe, a file) unless forced on; it
    redraws at most ten times a second.
    """

    def __init__(self, total: int, total_bytes: int, stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None, label: str = 'instances') -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, 'isatty', None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total = total
        self.total_bytes = total_bytes
        self.label = label
        self.done = 0
        self.done_bytes = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def advance(self, count: int = 1, size: int = 0) -> None:
        self.done += count
        self.done_bytes += size
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def line(self, now: Optional[float] = None) -> str:
        """The text of the bar for the current counts (without the leading ``\\r``)."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        mbps = self.done_bytes / elapsed / 1e6
        fraction = self.done / self.total if self.total else 1.0
        width = max(10, min(40, shutil.get_terminal_size((80, 24)).columns - 60))
        filled = int(round(fraction * width))
        bar = '#' * filled + '-' * (width - filled)
        eta = ''
        if 0 < self.done < self.total and rate > 0:
            eta = f'  ETA {format_duration((self.total - self.done) / rate)}'
        return (f'{fraction * 100:3.0f}% [{bar}] {self.done}/{self.total} {self.label}  '
                f'{rate:.1f} {self.label}/s  {mbps:.2f} MB/s{eta}')

    def _draw(self, now: float) -> None:
        self.stream.write('\r' + self.line(now) + '\x1b[K')
        self.stream.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """Print a line above the bar (the bar is redrawn below it)."""
        if self.enabled and self._drawn:
            self.stream.write('\r\x1b[K')
        self.stream.write(text + '\n')
        if self.enabled and self._drawn:
            self._draw(time.monotonic())
        else:
            self.stream.flush()

    def finish(self) -> None:
        """End the line on the terminal."""
        if self.enabled and self._drawn:
            self.stream.write('\n')
            self.stream.flush()

    def rates(self) -> tuple:
        """(elapsed seconds, instances per second, MB per second) so far."""
        elapsed = max(time.monotonic() - self.start, 1e-6)
        return elapsed, self.done / elapsed, self.done_bytes / elapsed / 1e6


def format_duration(secs: float) -> str:
    secs = int(round(secs))
    if secs < 60:
        return f'{secs}s'
    minutes, secs = divmod(secs, 60)
    if minutes < 60:
        return f'{minutes}m{secs:02d}s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours}h{minutes:02d}m'
