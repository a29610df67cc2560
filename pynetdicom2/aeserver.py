"""``AE``: an application entity that also serves, as a threaded TCP server.

The serving machinery: the listening socket (IPv6 and IPv4 where the system allows),
one thread per connection (kept a moment for the next one), admission
(``max_associations`` counts established associations, ``max_pending_connections``
bounds those still silent), worker processes sharing the socket, and ``quit``. Nothing
a single association does stops the server. What an AE is besides is ``AEBase``
(``pynetdicom2.aebase``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import selectors
import signal
import socket
import socketserver
import threading
import time
from typing import Iterable, Optional

from pynetdicom2 import workers as worker_processes
from pynetdicom2.aebase import AEBase
from pynetdicom2.asceprovider import AETParams, AssociationAcceptor
from pynetdicom2.exceptions import AssociationRejectedError, NetDICOMError
from pynetdicom2.settings import plain_address

# The server's messages are logged where they always were (docs/howto/logging.rst).
logger = logging.getLogger('pynetdicom2.ae')

_dual_stack_probe: Optional[bool] = None


def dual_stack_available() -> bool:
    """Whether this system can listen on IPv6 and IPv4 with one socket (AF_INET6,
    IPV6_V6ONLY off, bound to '::'); asked once. ``AE.server_bind`` still falls back
    to IPv4 if the bind itself fails."""
    global _dual_stack_probe
    if _dual_stack_probe is None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            _dual_stack_probe = socket.has_ipv6
        except (AttributeError, OSError):      # no IPv6, or no IPV6_V6ONLY
            _dual_stack_probe = False
    return _dual_stack_probe


class _PendingConnection:
    """A connection whose A-ASSOCIATE-RQ has not arrived yet.

    It holds a duplicate of the socket's descriptor so that another thread can cut
    the connection (``shutdown`` acts on the connection, not on one descriptor)
    whatever the serving thread is doing with its own: a TLS handshake, a read. The
    duplicate is closed by ``cut`` or ``release``, whichever comes; the AE calls
    exactly one of them, by whoever takes the connection out of its table.
    """

    __slots__ = ('_address', 'since', '_control', '_family')

    def __init__(self, sock, client_address, family: int = socket.AF_INET) -> None:
        self._address = client_address
        self.since = time.monotonic()
        self._family = family
        try:
            # A bare descriptor: a socket object is made only to cut (seldom).
            self._control: Optional[int] = os.dup(sock.fileno())
        except OSError:  # out of descriptors: this one just cannot be cut early
            self._control = None

    @property
    def peer(self) -> str:
        """The peer's address and port, for the log (read only when a line names it)."""
        address = self._address
        return '%s:%s' % (plain_address(address[0]), address[1]) if address else '?'

    def waited(self) -> float:
        return time.monotonic() - self.since

    def cut(self) -> None:
        """End the connection now; the serving thread sees it closed."""
        control, self._control = self._control, None
        if control is not None:
            try:
                control_socket = socket.socket(self._family, socket.SOCK_STREAM, 0, control)
            except OSError:
                os.close(control)
                return
            try:
                control_socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            control_socket.close()

    def release(self) -> None:
        """The connection no longer waits: drop the duplicate only."""
        control, self._control = self._control, None
        if control is not None:
            os.close(control)


class _AssociationHandler(socketserver.BaseRequestHandler):
    """One thread per connection: run one association to its end."""

    def handle(self) -> None:
        self.server.serve_association(self.request, self.client_address)


class AE(socketserver.ThreadingTCPServer, AEBase):
    """An AE that is also a threaded TCP server: SCU and SCP.

    ``with ae:`` starts serving in a background thread; leaving the block calls
    ``quit()``. Port 0 picks a free port, readable as ``ae.local_ae.port``.

    ``max_associations`` (default None: no limit, as 0.9.8) bounds the associations
    served at once; beyond it the AE answers A-ASSOCIATE-RJ (2, 3, 2:
    rejected-transient, local-limit-exceeded). Only a connection whose
    A-ASSOCIATE-RQ has arrived counts. Connections still waiting for theirs are
    bounded apart by ``max_pending_connections`` (default 64): a new one beyond it
    closes the one that has waited longest. Each waits at most ``artim_timeout``
    (PS3.8 9.1.5), so silent sockets never lock real peers out.

    ``workers`` (default 1) > 1 serves with that many worker processes sharing the
    listening socket, each running this thread-per-association server, so the
    handlers use every core (``pynetdicom2.workers``; needs ``fork``, else one
    process and a warning). The AE is copied into each worker when serving starts:
    configure it before. ``max_associations`` counts over all workers,
    ``max_pending_connections`` per worker; a worker that dies is replaced, and
    ``quit()`` ends every worker.
    """

    # socketserver.BaseServer has a ``timeout`` of its own; ours is dcm_timeout's alias.
    timeout = AEBase.timeout
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs in a burst of connections.
    request_queue_size = socket.SOMAXCONN
    allow_reuse_address = True
    #: Associations served at once (None: no limit); beyond it A-ASSOCIATE-RJ (2, 3, 2).
    max_associations: Optional[int] = None
    #: Connections waiting for their A-ASSOCIATE-RQ (None: no bound); beyond it the
    #: one that has waited longest is closed. Each waits at most ``artim_timeout``.
    max_pending_connections: Optional[int] = 64
    #: Seconds a finished association's thread waits for the next connection before
    #: it ends: back-to-back associations skip a thread start (about 70 µs each).
    idle_thread_timeout = 1.0
    #: Processes serving the listening socket: 1, this one; N > 1, N forked workers.
    workers: int = 1
    #: Seconds ``quit()`` gives the workers to end their associations; then SIGKILL.
    worker_stop_timeout: float = 5.0
    #: In a worker process, its number (0 .. workers - 1); None elsewhere.
    worker_number: Optional[int] = None
    #: True when the default bind ('') listens on IPv6 and IPv4 with one socket.
    _dual_stack = False

    def __init__(self, ae_title: str, port: int, supported_ts: Optional[Iterable[str]] = None,
                 max_pdu_length: int = 65536, bind_and_activate: bool = True,
                 bind_address: str = '', *, workers: Optional[int] = None) -> None:
        AEBase.__init__(self, supported_ts, max_pdu_length)
        if workers is not None:
            worker_processes.process_count(workers)   # a bad value fails here, not later
            self.workers = workers
        # The worker processes and their shared counters, while serving with them.
        self._pool: Optional[worker_processes.WorkerPool] = None
        self._counts: Optional[worker_processes.SharedCounts] = None
        self._supervising = False
        self._workers_started = threading.Event()
        self._workers_stop = threading.Event()
        self._workers_done = threading.Event()
        if bind_address.startswith('[') and bind_address.endswith(']'):
            bind_address = bind_address[1:-1]          # '[::1]' as in a URL
        if ':' in bind_address:
            self.address_family = socket.AF_INET6
        elif not bind_address and dual_stack_available():
            # Every interface, IPv6 and IPv4: '::' with IPV6_V6ONLY off (server_bind).
            # Without IPv6 (or a dual-stack socket) '' binds IPv4 only, as 0.9.8.
            self.address_family = socket.AF_INET6
            self._dual_stack = True
        self._active: set = set()
        # Connections waiting for their A-ASSOCIATE-RQ, oldest first (under ``lock``).
        self._pending: dict = {}
        self._serving_thread: Optional[threading.Thread] = None
        # Association threads waiting for a connection, and the hand-over to them.
        self._idle_threads = 0
        self._idle_lock = threading.Lock()
        self._handover: queue.SimpleQueue = queue.SimpleQueue()
        # Set by quit(): a thread that finishes its association after that ends too.
        self._idle_closed = False
        self._bound = False
        self.local_ae = AETParams(bind_address or socket.gethostname(), ae_title, port)
        socketserver.ThreadingTCPServer.__init__(
            self, ('::' if self._dual_stack else bind_address, port), _AssociationHandler,
            bind_and_activate=False)
        if bind_and_activate:
            self._bind()

    @property
    def server(self) -> 'AE':
        """The ``socketserver`` serving this AE: the AE itself (0.9.8 kept one in
        ``ae.server``; scripts read ``ae.server.server_address`` from it)."""
        return self

    @property
    def activated(self) -> bool:
        """True once the listening socket is bound (0.9.8's attribute)."""
        return self._bound

    def server_bind(self) -> None:
        if self._dual_stack:
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                super().server_bind()
                return
            except OSError as exc:
                if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL,
                                     errno.EPROTONOSUPPORT, errno.ENOPROTOOPT):
                    raise
            # IPv6 unusable after all: every IPv4 interface, as 0.9.8 bound it.
            self.socket.close()
            self._dual_stack = False
            self.address_family = socket.AF_INET
            self.server_address = ('', self.server_address[1])
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()

    def _bind(self) -> None:
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise
        self._bound = True
        self.local_ae.port = self.server_address[1]

    def get_request(self) -> tuple:
        """Accept a connection (``socket.accept``, without reading the listening
        socket's family and type back as enums for each connection)."""
        listening = self.socket
        # A plain socket only: a listening socket a subclass wrapped (TLS) accepts its
        # own way, and so does a Python without CPython's socket internals.
        accept = getattr(listening, '_accept', None)
        if accept is None or type(listening) is not socket.socket:
            return listening.accept()
        fd, client_address = accept()
        sock = socket.socket(self.address_family, self.socket_type, 0, fd)
        if socket.getdefaulttimeout() is None and listening.gettimeout():
            sock.setblocking(True)          # as socket.accept does
        return sock, client_address

    def finish_request(self, request, client_address) -> None:
        """Serve the connection: one association (no request handler object)."""
        self.serve_association(request, client_address)

    def shutdown_request(self, request) -> None:
        """After the association: close the socket, unless the association has."""
        if request.fileno() >= 0:
            socketserver.ThreadingTCPServer.shutdown_request(self, request)

    def wrap_server_socket(self, sock):
        """The socket an accepted connection uses; the TLS AE wraps it here, in the
        association's own thread."""
        return sock

    def serve_association(self, sock, client_address) -> None:
        """Run one incoming association in the calling thread."""
        pending = self._connection_pending(sock, client_address)
        acceptor = None
        try:
            try:
                sock = self.wrap_server_socket(sock)
            except Exception as exc:  # a failed TLS handshake ends this connection only
                logger.warning('connection from %s refused: %s', pending.peer, exc)
                return
            acceptor = AssociationAcceptor(self, sock, client_address)
            acceptor.run(admit=lambda acceptor: self._admit(pending, acceptor))
        finally:
            self._connection_no_longer_pending(pending)
            with self.lock:
                if acceptor is not None and acceptor in self._active:
                    self._active.discard(acceptor)
                    if self._counts is not None:
                        self._counts.leave(self.worker_number)
                if self._counts is not None:
                    self._counts.hold(self.worker_number, -1)

    def _connection_pending(self, sock, client_address) -> '_PendingConnection':
        """Count a new connection as pending; close the longest-waiting ones beyond
        ``max_pending_connections``, so a flood of silent sockets cannot keep a real
        peer's A-ASSOCIATE-RQ from being read."""
        pending = _PendingConnection(sock, client_address, self.address_family)
        oldest = []
        with self.lock:
            self._pending[pending] = None        # a dict keeps the order of arrival
            limit = self.max_pending_connections
            while limit is not None and len(self._pending) > max(limit, 1):
                connection = next(iter(self._pending))
                del self._pending[connection]
                oldest.append(connection)
            waiting = len(self._pending)
        for connection in oldest:
            logger.warning('closing the connection from %s: no A-ASSOCIATE-RQ after %.1f s '
                           'and %d newer connections are waiting for theirs '
                           '(max_pending_connections %d)', connection.peer,
                           connection.waited(), waiting, limit)
            connection.cut()
        return pending

    def _connection_no_longer_pending(self, pending: '_PendingConnection') -> None:
        with self.lock:
            ours = pending in self._pending
            if ours:
                del self._pending[pending]
        if ours:  # else whoever took it out of the table cuts it
            pending.release()

    def _admit(self, pending: '_PendingConnection', acceptor: AssociationAcceptor) -> None:
        """The A-ASSOCIATE-RQ has arrived: from now on the connection counts toward
        ``max_associations``, or is rejected (2, 3, 2) when that limit is reached."""
        self._connection_no_longer_pending(pending)
        with self.lock:
            limit = self.max_associations
            over_limit = limit is not None and len(self._active) >= limit
            if not over_limit and self._counts is not None:
                # Worker processes: the limit holds over all of them.
                over_limit = not self._counts.admit(self.worker_number, limit)
            if not over_limit:
                self._active.add(acceptor)
        if over_limit:
            logger.warning('rejecting %s: %d associations already active%s (max_associations)',
                           acceptor.dul.peer, limit,
                           '' if self._counts is None else ' over all worker processes')
            raise AssociationRejectedError(
                2, 3, 2, f'{limit} associations already active (max_associations)')

    @property
    def active_associations(self) -> int:
        """How many associations this process serves now: what ``max_associations`` counts."""
        return len(self._active)

    @property
    def pending_connections(self) -> int:
        """How many accepted connections still wait for their A-ASSOCIATE-RQ: what
        ``max_pending_connections`` bounds."""
        return len(self._pending)

    @property
    def idle_threads(self) -> int:
        """How many association threads wait, up to ``idle_thread_timeout``, to serve the
        next connection."""
        return self._idle_threads

    def process_request(self, request, client_address) -> None:
        """Serve a new connection in an idle association thread, else in a new one."""
        with self._idle_lock:
            if self._idle_threads:
                self._idle_threads -= 1
                self._handover.put((request, client_address))
                return
        threading.Thread(target=self._association_thread, args=(request, client_address),
                         name=f'{self.local_ae.aet} association', daemon=True).start()

    def _association_thread(self, request, client_address) -> None:
        while request is not None:
            self.process_request_thread(request, client_address)  # closes the socket
            request, client_address = self._next_connection()

    def _next_connection(self) -> tuple:
        """Wait ``idle_thread_timeout`` for a connection; ``(None, None)``: end."""
        with self._idle_lock:
            if self._idle_closed:
                return None, None
            self._idle_threads += 1
        try:
            return self._handover.get(timeout=self.idle_thread_timeout)
        except queue.Empty:
            with self._idle_lock:
                # A connection handed over just as the wait ended is still ours: the
                # hand-over happens under this lock, so it is in the queue by now.
                try:
                    return self._handover.get_nowait()
                except queue.Empty:
                    self._idle_threads -= 1
                    return None, None

    def _end_idle_threads(self) -> None:
        with self._idle_lock:
            self._idle_closed = True
            for _ in range(self._idle_threads):
                self._handover.put((None, None))
            self._idle_threads = 0

    def __enter__(self) -> 'AE':
        if not self._bound:
            if self.socket.fileno() < 0:
                # Served before and quit: a new listening socket, same address.
                self.socket = socket.socket(self.address_family, self.socket_type)
            self._bind()
        if self._serving_thread is None:
            self._workers_started.clear()
            thread = threading.Thread(
                target=self.serve_forever, name=f'AE {self.local_ae.aet}', daemon=True)
            self._serving_thread = thread
            thread.start()
            if worker_processes.process_count(self.workers) > 1:
                # Return once the workers exist: what follows may count on them.
                while not self._workers_started.wait(0.05):
                    if not thread.is_alive():
                        self._serving_thread = None
                        self.server_close()
                        self._bound = False
                        raise NetDICOMError(f'{self.local_ae.aet}: the worker processes '
                                            'did not start (see the log)')
        return self

    def __exit__(self, *exc_info) -> bool:
        self.quit()
        return False

    def quit(self) -> None:
        """Stop serving and close every active association; returns at once when the
        server was never started. With worker processes, every worker has ended
        (stopped, else killed after ``worker_stop_timeout``) when it returns."""
        thread, self._serving_thread = self._serving_thread, None
        if thread is not None or self._supervising:
            self.shutdown()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.server_close()
        self._bound = False
        self._close_connections()

    def _close_connections(self) -> None:
        """End the idle association threads, every pending connection and every
        active association (killed: nothing more is sent)."""
        self._end_idle_threads()
        with self.lock:
            active = list(self._active)
            pending = list(self._pending)
            self._pending.clear()
        for connection in pending:
            connection.cut()
        for acceptor in active:
            acceptor.kill()

    def handle_error(self, request, client_address) -> None:
        logger.exception('unexpected error serving %s', client_address)

    # -- worker processes ------------------------------------------------------------

    @property
    def worker_pids(self) -> list:
        """The process IDs of the live worker processes (empty when serving in one)."""
        pool = self._pool
        return sorted(pool.pids.values()) if pool is not None else []

    def on_worker_start(self) -> None:
        """Runs in each worker process as it starts, before it serves (``worker_number``
        says which). Reopen here what must not cross a fork, such as a database
        connection. Default: nothing."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()`` / ``quit()``: in this process, or, with
        ``workers`` > 1, in that many worker processes this thread forks and watches
        (a worker that dies is replaced). Workers end with this thread."""
        count = worker_processes.process_count(self.workers)
        if count <= 1 or self.worker_number is not None:
            with self._idle_lock:
                self._idle_closed = False
            socketserver.ThreadingTCPServer.serve_forever(self, poll_interval)
            return
        self._supervising = True
        self._workers_stop.clear()
        self._workers_done.clear()
        try:
            self._counts = worker_processes.SharedCounts(count)
            self._pool = worker_processes.WorkerPool(count, self._run_worker, self._counts,
                                                     f'AE {self.local_ae.aet}')
            try:
                self._pool.start()
                # Return from ``with`` once every worker accepts (bounded: a worker
                # that fails to start is replaced by ``watch``).
                deadline = time.monotonic() + 10
                while not self._counts.all_started() and time.monotonic() < deadline \
                        and not self._pool.reap():
                    time.sleep(0.005)
                self._workers_started.set()
                logger.info('%s serving on port %s with %d worker processes: %s',
                            self.local_ae.aet, self.local_ae.port, count, self.worker_pids)
                self._pool.watch(self._workers_stop)
            finally:
                self._pool.stop(self.worker_stop_timeout)
        finally:
            counts = self._counts
            self._pool = self._counts = None
            if counts is not None:
                counts.close()
            self._supervising = False
            self._workers_done.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait for it (with worker processes: for all of
        them to end)."""
        if self._supervising:
            self._workers_stop.set()
            self._workers_done.wait()
            return
        socketserver.ThreadingTCPServer.shutdown(self)

    def _run_worker(self, number: int, stop_fd: int) -> int:
        """The life of worker process ``number`` (in the child of a fork): serve the
        shared socket until ``stop_fd`` says stop, then end every association."""
        self.worker_number = number
        # Only the forking thread exists here: nothing held by the parent's threads.
        self.lock = threading.Lock()
        self._idle_lock = threading.Lock()
        self._handover = queue.SimpleQueue()
        self._idle_threads = 0
        self._idle_closed = False
        self._active = set()
        self._pending = {}
        self._serving_thread = None
        self._pool = None
        self._supervising = False
        try:
            self.on_worker_start()
            # Counted as a worker to leave connections to only once it accepts them.
            self._counts.started(number)
            self._accept_until(stop_fd)
        finally:
            self._end_worker()
        return 0

    def _accept_until(self, stop_fd: int) -> None:
        """Accept connections on the shared socket until ``stop_fd`` is readable.

        Every worker wakes for a new connection; one wins the ``accept`` (the
        socket is non-blocking: the others go back to waiting). A worker holding
        more connections than another leaves the new one to it for up to
        ``_defer_accept`` seconds, so a burst of peers spreads over the workers.
        """
        counts, number = self._counts, self.worker_number
        self.socket.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ, 'connection')
            selector.register(stop_fd, selectors.EVENT_READ, 'stop')
            while True:
                if any(key.data == 'stop' for key, _ in selector.select()):
                    return
                deadline = time.monotonic() + self._defer_accept
                while not counts.least_loaded(number) and time.monotonic() < deadline:
                    time.sleep(0.001)
                try:
                    request, client_address = self.socket.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue  # another worker took it, or the peer gave up
                except OSError as exc:
                    # Out of file descriptors, say: the connection stays queued; do
                    # not spin on it.
                    logger.warning('worker %d cannot accept a connection: %s', number, exc)
                    time.sleep(0.1)
                    continue
                # On some systems an accepted socket inherits the listener's
                # non-blocking mode; an association reads with timeouts of its own.
                request.setblocking(True)
                with self.lock:
                    counts.hold(number, +1)
                try:
                    self.process_request(request, client_address)
                except Exception:
                    with self.lock:
                        counts.hold(number, -1)
                    self.handle_error(request, client_address)
                    self.shutdown_request(request)

    #: Seconds a worker leaves a new connection to a less loaded worker.
    _defer_accept = 0.02

    def _end_worker(self) -> None:
        """Stop accepting, end every association of this worker (as ``quit``) and wait
        a moment for their threads to discard partial data sets."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # stopping already
        with contextlib.suppress(OSError):
            self.socket.close()
        self._close_connections()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with self.lock:
                if not self._active:
                    break
            time.sleep(0.01)


__all__ = ['AE', 'dual_stack_available']
