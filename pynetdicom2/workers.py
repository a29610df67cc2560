"""Worker processes sharing one listening socket: how an AE serves on every core.

The AE binds its socket in the parent, then forks the workers; each accepts on that
socket and runs the AE's one-thread-per-association server, so the user's handlers
run in the workers. The parent serves nothing: it replaces a worker that dies and
stops them all when told (``WorkerPool``). No worker outlives the parent: on Linux
the kernel kills a worker when the parent thread that forked it ends
(``PR_SET_PDEATHSIG``); everywhere, the end of a pipe whose write end only the
parent holds tells the workers to stop. Counters the workers share (associations
admitted, toward ``max_associations``, and connections held) live in anonymous
shared memory (``SharedCounts``). Needs ``os.fork``: elsewhere an AE serves in one
process (``process_count``).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import sys
import tempfile
import threading
import time
import weakref
from typing import Callable, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

#: Worker processes need ``fork`` (Linux, macOS, the BSDs); not on Windows.
FORK_AVAILABLE = hasattr(os, 'fork')
# prctl(2) option: the signal a process gets when its parent (thread) ends.
_PR_SET_PDEATHSIG = 1
_warned_no_fork = False


def process_count(workers: Optional[int]) -> int:
    """How many processes serve for an AE asking for ``workers`` (1: the AE's own).

    More than one needs ``fork``; without it a warning says so, once per process
    (``reset_warnings`` makes it say so again), and 1 is the answer.
    """
    global _warned_no_fork
    count = 1 if workers is None else int(workers)
    if count < 1:
        raise ValueError(f'workers must be at least 1, not {workers!r}')
    if count > 1 and not FORK_AVAILABLE:
        if not _warned_no_fork:
            logger.warning('%d worker processes asked for, but this platform has no fork(): '
                           'serving in one process', count)
            _warned_no_fork = True
        return 1
    return count


def reset_warnings() -> None:
    """Forget that the once-per-process warnings were given, so that the next
    occasion logs them again (as ``warnings.resetwarnings`` does; for tests)."""
    global _warned_no_fork
    _warned_no_fork = False


def _parent_death_signal() -> Optional[Callable[[], None]]:
    """A function arranging that the calling (child) process gets SIGKILL when its
    parent thread ends; None where that does not exist (not Linux).

    Looked up in the parent, before any fork, so a worker does nothing but call it.
    """
    if not sys.platform.startswith('linux'):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None

    def arm() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            logger.warning('prctl(PR_SET_PDEATHSIG) failed (errno %d): this worker relies '
                           'on its stop pipe alone', ctypes.get_errno())
    return arm


class WorkerStop(BaseException):
    """Raised in a worker by SIGTERM: end serving now (a BaseException, so that no
    ``except Exception`` in the serving code swallows it)."""


def _on_sigterm(signum, frame) -> None:
    # Only the first: the worker's clean-up runs with SIGTERM ignored.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise WorkerStop()


# Every SharedCounts of this process: a worker forked while another thread of the
# parent held one's thread lock starts with it unlocked (one fork handler for all).
_every_counts = weakref.WeakSet()


def _new_thread_locks() -> None:
    for counts in list(_every_counts):
        counts._thread_lock = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_new_thread_locks)


class SharedCounts:
    """Two counters per worker, in memory the parent and its workers share.

    ``admitted``: associations counted toward ``max_associations`` (a worker adds
    one when an A-ASSOCIATE-RQ is admitted, removes it when the association ends);
    the sum over workers is compared with the limit under a lock on a file
    (``lockf``: per process, released by the kernel if a worker dies holding it).
    ``held``: connections a worker has accepted and not yet closed, for balancing
    (``least_loaded``). The parent clears a dead worker's counters before replacing
    it. A file lock belongs to a process, not a thread, so the threads of one process
    take the file lock one at a time (``_thread_lock``): two of them at once would
    share it, and Linux may then refuse one with EDEADLK.
    """

    _FIELDS = 2     # admitted, held
    #: ``held`` of a slot whose worker is dead: never the least loaded.
    _DEAD = 1 << 40

    def __init__(self, slots: int) -> None:
        import fcntl
        self._fcntl = fcntl
        self.slots = slots
        # mmap(-1, ...) is anonymous and MAP_SHARED: forked children see our writes.
        self._memory = mmap.mmap(-1, 8 * self._FIELDS * slots)
        self._values = memoryview(self._memory).cast('q')
        self._lockfile = tempfile.TemporaryFile(prefix='pynetdicom2-workers-')
        self._thread_lock = threading.Lock()
        _every_counts.add(self)
        for slot in range(slots):
            self._values[2 * slot + 1] = self._DEAD

    @contextlib.contextmanager
    def _locked(self):
        fd = self._lockfile.fileno()
        with self._thread_lock:
            self._fcntl.lockf(fd, self._fcntl.LOCK_EX)
            try:
                yield
            finally:
                self._fcntl.lockf(fd, self._fcntl.LOCK_UN)

    def admit(self, slot: int, limit: Optional[int]) -> bool:
        """Count one more association for ``slot`` unless ``limit`` (over all workers)
        is reached; True when counted."""
        with self._locked():
            if limit is not None and self.admitted() >= limit:
                return False
            self._values[2 * slot] += 1
            return True

    def leave(self, slot: int) -> None:
        """An association of ``slot`` counted by ``admit`` has ended."""
        with self._locked():
            self._values[2 * slot] = max(0, self._values[2 * slot] - 1)

    def admitted(self) -> int:
        """Associations admitted over all workers."""
        return sum(self._values[0::2])

    def hold(self, slot: int, change: int) -> None:
        """``slot`` accepted (+1) or closed (-1) a connection (only it writes there)."""
        self._values[2 * slot + 1] += change

    def held(self, slot: int) -> int:
        return self._values[2 * slot + 1]

    def least_loaded(self, slot: int) -> bool:
        """True when no live worker holds fewer connections than ``slot``."""
        mine = self._values[2 * slot + 1]
        return all(mine <= other for other in self._values[1::2])

    def started(self, slot: int) -> None:
        """A (new) worker of ``slot`` begins: nothing held yet (it writes this itself)."""
        self._values[2 * slot + 1] = 0

    def all_started(self) -> bool:
        """True when every worker has begun accepting (``started``)."""
        return all(held != self._DEAD for held in self._values[1::2])

    def clear(self, slot: int) -> None:
        """The worker of ``slot`` is dead: what it counted goes (parent only)."""
        with self._locked():
            self._values[2 * slot] = 0
            self._values[2 * slot + 1] = self._DEAD

    def close(self) -> None:
        self._values.release()
        self._memory.close()
        self._lockfile.close()


class WorkerPool:
    """The parent's side: fork ``count`` workers, replace those that die, stop them all.

    ``target(slot, stop_fd)`` is the life of a worker, run in the child: it serves
    until ``stop_fd`` (the read end of the stop pipe) becomes readable, meaning the
    parent closed the write end (``stop``) or died; its return value is the exit
    status. The child never returns into the parent's code: it ends with
    ``os._exit``. A worker that dies is replaced at once, or after a pause growing
    from ``restart_delay`` up to 30 s while replacements keep dying within a second
    (a handler that crashes at start must not make a fork storm); one that ended
    cleanly (SIGTERM) after ``restart_delay``.
    """

    restart_delay = 1.0
    max_restart_delay = 30.0

    def __init__(self, count: int, target: Callable[[int, int], int],
                 counts: Optional[SharedCounts] = None, name: str = 'AE') -> None:
        self.count = count
        self.target = target
        self.counts = counts
        self.name = name
        self.pids: Dict[int, int] = {}                 # slot -> pid of its live worker
        self._born: Dict[int, float] = {}
        self._quick_deaths: Dict[int, int] = {}
        self._due: Dict[int, float] = {}               # slot -> when to fork its successor
        self._stop_r: Optional[int] = None
        self._stop_w: Optional[int] = None
        self._arm = _parent_death_signal()

    # -- parent ------------------------------------------------------------------------

    def start(self) -> None:
        """Fork every worker (the stop pipe first)."""
        self._stop_r, self._stop_w = os.pipe()
        for slot in range(self.count):
            self._fork(slot)

    def _fork(self, slot: int) -> None:
        # Whatever the parent has buffered would be written again by the child.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never leaves this block
            code = 1
            try:
                os.close(self._stop_w)
                if self._arm is not None:
                    self._arm()
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os._exit(1)
                signal.signal(signal.SIGTERM, _on_sigterm)
                # Ctrl-C reaches the whole process group; the parent decides for all.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                code = self.target(slot, self._stop_r) or 0
            except WorkerStop:
                code = 0
            except BaseException:
                with contextlib.suppress(BaseException):
                    logger.exception('worker %d of %s failed', slot, self.name)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(BaseException):
                        stream.flush()
                os._exit(code)
        self.pids[slot] = pid
        self._born[slot] = time.monotonic()
        logger.debug('%s: worker %d started, pid %d', self.name, slot, pid)

    def watch(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Replace dead workers until ``stop`` is set (call in the forking thread)."""
        while not stop.wait(interval):
            self.reap()
            self._restart_due()

    def reap(self) -> List[Tuple[int, int, Optional[int]]]:
        """Collect the workers that ended: ``(slot, pid, exit status or -signal)``;
        their successors are scheduled."""
        ended = []
        for slot, pid in list(self.pids.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:   # reaped by someone else (SIGCHLD ignored)
                done, status = pid, None
            if done == 0:
                continue
            code = None if status is None else os.waitstatus_to_exitcode(status)
            del self.pids[slot]
            if self.counts is not None:
                self.counts.clear(slot)
            lived = time.monotonic() - self._born.pop(slot)
            quick = self._quick_deaths.get(slot, 0) + 1 if lived < 1.0 else 0
            self._quick_deaths[slot] = quick
            delay = 0.0 if not quick else min(self.restart_delay * 2 ** (quick - 1),
                                             self.max_restart_delay)
            if code == 0:
                # Stopped on purpose (SIGTERM): often the parent is stopping too (a
                # signal to the process group), so the successor waits a moment.
                delay = max(delay, self.restart_delay)
            self._due[slot] = time.monotonic() + delay
            how = 'unknown status' if code is None else (
                f'signal {-code}' if code < 0 else f'exit status {code}')
            logger.warning('%s: worker %d (pid %d) ended (%s) after %.1f s; a new one '
                           'starts%s', self.name, slot, pid, how, lived,
                           f' in {delay:.0f} s' if delay else '')
            ended.append((slot, pid, code))
        return ended

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot, when in list(self._due.items()):
            if when <= now:
                del self._due[slot]
                self._fork(slot)

    def stop(self, timeout: float = 5.0) -> None:
        """Tell every worker to stop (close the pipe), wait up to ``timeout`` s, kill
        those still running, and reap them all: no process is left behind."""
        self._due.clear()
        if self._stop_w is not None:
            os.close(self._stop_w)
            self._stop_w = None
        deadline = time.monotonic() + timeout
        killed = False
        while self.pids:
            self.reap_quietly()
            if not self.pids:
                break
            if time.monotonic() >= deadline:
                if killed:
                    # SIGKILL sent a while ago and still there (uninterruptible I/O):
                    # wait for it, bounded, rather than leave a zombie.
                    if time.monotonic() >= deadline + 10:
                        logger.error('%s: worker pid(s) %s did not die', self.name,
                                     sorted(self.pids.values()))
                        break
                else:
                    logger.warning('%s: worker pid(s) %s still running %.1f s after stop; '
                                   'killing them', self.name, sorted(self.pids.values()),
                                   timeout)
                    for pid in self.pids.values():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    killed = True
            time.sleep(0.01)
        if self._stop_r is not None:
            os.close(self._stop_r)
            self._stop_r = None

    def reap_quietly(self) -> None:
        """Collect ended workers without replacing them (while stopping)."""
        for slot, pid in list(self.pids.items()):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                del self.pids[slot]
                if self.counts is not None:
                    self.counts.clear(slot)


__all__ = ['FORK_AVAILABLE', 'SharedCounts', 'WorkerPool', 'WorkerStop', 'process_count',
           'reset_warnings']
