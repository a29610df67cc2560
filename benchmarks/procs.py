"""Start, watch, measure and stop the benchmark's peer processes.

Every process runs in its own session and is stopped by its PID with bounded waits.
CPU time and peak RSS come from /proc (``stat``, ``status``) for long-running SCPs and
from ``os.wait4`` for SCUs run to their end; Linux only.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

_LISTEN = '0A'  # TCP_LISTEN in the "st" column of /proc/net/tcp
_TICKS = os.sysconf('SC_CLK_TCK')


class PeerError(RuntimeError):
    """A peer failed to start, exited early, or did not finish in time."""


def listening_ports() -> set:
    """TCP ports something LISTENs on, read from /proc/net/tcp{,6}."""
    ports = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with contextlib.suppress(OSError):
            for line in pathlib.Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 3 and fields[3] == _LISTEN:
                    ports.add(int(fields[1].rsplit(':', 1)[1], 16))
    return ports


def file_system_of(path: str) -> str:
    """``"<type> at <mount point>"`` of the file system holding ``path`` (/proc/mounts),
    for the notes: how costly creating a file is depends on it."""
    path = os.path.realpath(path)
    best, kind = '', 'unknown'
    with contextlib.suppress(OSError):
        for line in pathlib.Path('/proc/mounts').read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace('\\040', ' ')
            inside = path == mount or path.startswith(mount.rstrip('/') + '/')
            if inside and len(mount) >= len(best):
                best, kind = mount, fields[2]
    return f'{kind} at {best or "?"}'


def free_port() -> int:
    """A port that was free a moment ago (racy; only for tools that need a port number)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Peer:
    """A process started in its own session, output to files in a private directory."""

    def __init__(self, argv: Sequence[str], env: Optional[dict] = None,
                 cwd: Optional[str] = None) -> None:
        self.argv = [str(a) for a in argv]
        self.logdir = tempfile.mkdtemp(prefix='bench-peer-')
        self.out_path = os.path.join(self.logdir, 'stdout')
        self.err_path = os.path.join(self.logdir, 'stderr')
        with open(self.out_path, 'wb') as out, open(self.err_path, 'wb') as err:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self.rusage = None
        self.ended: Optional[float] = None

    # -- output ----------------------------------------------------------------------

    def output(self, limit: int = 4000) -> str:
        parts = [f'argv: {" ".join(self.argv)[:500]}']
        for path in (self.out_path, self.err_path):
            with contextlib.suppress(OSError):
                text = pathlib.Path(path).read_text(errors='replace')
                parts.append(f'--- {os.path.basename(path)} ---\n{text[-limit:]}')
        return '\n'.join(parts)

    def stdout(self) -> str:
        return pathlib.Path(self.out_path).read_text(errors='replace')

    def read_port(self, timeout: float = 20) -> int:
        """Wait for the ``PORT <n>`` line our peer scripts print once listening."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stdout().splitlines():
                if line.startswith('PORT '):
                    return int(line.split()[1])
            if self.proc.poll() is not None:
                raise PeerError(f'exited with {self.proc.returncode} before listening\n'
                                f'{self.output()}')
            time.sleep(0.01)
        raise PeerError(f'printed no PORT line within {timeout} s\n{self.output()}')

    def wait_listening(self, port: int, timeout: float = 20) -> None:
        """Wait until ``port`` is in LISTEN (a TCP probe would occupy storescp)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port in listening_ports():
                return
            if self.proc.poll() is not None:
                raise PeerError(f'exited with {self.proc.returncode} before listening on '
                                f'{port}\n{self.output()}')
            time.sleep(0.01)
        raise PeerError(f'nothing listening on port {port} after {timeout} s\n{self.output()}')

    # -- measurements while alive ---------------------------------------------------

    def cpu_seconds(self) -> float:
        """User + system CPU of the process (all its threads) so far, from /proc."""
        with open(f'/proc/{self.pid}/stat') as f:
            # The command name may hold spaces; fields resume after its ')'.
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)

    def peak_rss_mib(self, name: Optional[str] = None) -> float:
        """VmHWM: the peak resident set size since start or the last ``reset_peak``.

        With ``name``, 0 while the process is not yet that program (before exec).
        """
        fields = {}
        with open(f'/proc/{self.pid}/status') as f:
            for line in f:
                key, _, value = line.partition(':')
                fields[key] = value.strip()
        if name is not None and fields.get('Name') != name[:15]:
            return 0.0
        return int(fields.get('VmHWM', '0 kB').split()[0]) / 1024

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
        try:
            with open(f'/proc/{self.pid}/clear_refs', 'w') as f:
                f.write('5')
            return True
        except OSError:
            return False

    # -- ending -----------------------------------------------------------------------

    def wait(self, timeout: float) -> int:
        """Reap the process (blocking ``wait4``, so its end is seen at once); a watchdog
        kills it after ``timeout`` s and PeerError follows. Keeps its rusage."""
        watchdog = threading.Timer(timeout, self._signal, (signal.SIGKILL,))
        watchdog.daemon = True
        watchdog.start()
        try:
            _, status, rusage = os.wait4(self.pid, 0)
        finally:
            watchdog.cancel()
        self.ended = time.monotonic()
        self.rusage = rusage
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.ended - self.started >= timeout:
            raise PeerError(f'did not finish within {timeout} s; killed\n{self.output()}')
        return self.proc.returncode

    def _signal(self, sig: int) -> None:
        # The process leads its own session: its group is it and what it forked.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            self.proc.wait(5)

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s; always reaps."""
        if self.proc.returncode is None and self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def cleanup(self) -> None:
        import shutil
        shutil.rmtree(self.logdir, ignore_errors=True)


@dataclass
class Finished:
    """An SCU process run to its end: exit status, wall time, CPU, peak RSS, stdout."""
    returncode: int
    wall: float
    cpu: float
    peak_rss_mib: float
    stdout: str
    output: str


def run_to_end(argv: Sequence[str], timeout: float, env: Optional[dict] = None,
               cwd: Optional[str] = None, poll_rss: bool = True) -> Finished:
    """Run ``argv`` to its end (bounded by ``timeout``); measure it.

    Wall time and CPU come from ``os.wait4``. Peak RSS is VmHWM polled from /proc
    while it runs: ``ru_maxrss`` of a child counts the RSS of the parent it was
    forked from (Linux keeps the high-water mark across exec), so it would show the
    harness's size for a small tool. ``poll_rss=False`` skips the polling (for
    programs that report their own peak); ``peak_rss_mib`` is then 0.
    """
    peer = Peer(argv, env=env, cwd=cwd)
    name = os.path.basename(str(argv[0]))
    peak = [0.0]
    stop = threading.Event()

    def poll() -> None:
        polls = 0
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], peer.peak_rss_mib(name))
            except (OSError, ValueError):
                return
            polls += 1
            stop.wait(0.001 if polls < 50 else 0.005)

    watcher = threading.Thread(target=poll, daemon=True)
    if poll_rss:
        watcher.start()
    try:
        code = peer.wait(timeout)
        ru = peer.rusage
        return Finished(code, peer.ended - peer.started, ru.ru_utime + ru.ru_stime,
                        peak[0], peer.stdout(), peer.output())
    finally:
        stop.set()
        if poll_rss:
            watcher.join(1)
        peer.stop()
        peer.cleanup()
