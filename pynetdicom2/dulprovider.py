"""The DICOM upper layer (PS3.8) over one blocking socket.

A ``DULServiceProvider`` owns one association's socket. There is no thread of its own:
the thread that uses the association sends through it and, when it waits for the peer,
reads the next PDU itself. Every local primitive and every received PDU is an event of
the PS3.8 state machine (``fsm.py``); its tables say which action to run, the next
state and whether the action sends a PDU or closes the transport, and this module
performs that I/O. Failures leave as ``NetDICOMError`` subclasses carrying the wire
values, with the socket closed.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import struct
import time
from collections import deque
from itertools import repeat
from typing import Callable, NoReturn, Optional, Union

from pynetdicom2 import fsm, pdu, pdudumps
from pynetdicom2.fsm import CLOSING_ACTIONS, SENDING_ACTIONS
from pynetdicom2.pdudumps import TRACE
from pynetdicom2.exceptions import (
    AssociationAbortedError, AssociationRejectedError, DCMTimeoutError, NetDICOMError,
    PDUProcessingError)
from pynetdicom2.fragmentation import COMMAND_FRAGMENT, LAST_FRAGMENT, PDataFragments

logger = logging.getLogger(__name__)

#: Default cap on the length of an A-ASSOCIATE PDU we are willing to read.
DEFAULT_MAX_ASSOCIATE_PDU_LENGTH = 1024 * 1024
#: P-DATA cap when we offered "unlimited" (0) as our maximum length received.
UNLIMITED_PDATA_CAP = 256 * 1024 * 1024
#: A-RELEASE and A-ABORT PDUs have a fixed 4-byte variable field (PS3.8 9.3.6-9.3.8).
FIXED_PDU_LENGTH = 4
#: How long and how much we drain after sending A-ABORT, waiting for the peer to close.
ABORT_LINGER_SECONDS = 1.0
DRAIN_LIMIT = 64 * 1024
# Enough for an A-ASSOCIATE-RQ and a PDU of DCMTK's default 16 KiB; larger PDUs grow
# it (a fresh 64 KiB buffer per association cost more than the PDUs it was read for).
_INITIAL_BUFFER = 16 * 1024 + pdu.PDU_HEADER_LENGTH
# Once large P-DATA PDUs have really arrived, the buffer grows to _BULK_BUFFER, or to
# hold _BULK_PDUS of the longest seen, up to _MAX_BULK_BUFFER: each recv_into then
# brings several PDUs and bulk transfers make fewer system calls. A read fills the
# buffer when it holds _FILLED_PDUS of the PDU it completes, else stops _READ_AHEAD
# past it. A PDU longer than the buffer grows it to fit.
_BULK_BUFFER = 256 * 1024 + pdu.PDU_HEADER_LENGTH
_BULK_PDUS = 8
_FILLED_PDUS = 4
_MAX_BULK_BUFFER = 1024 * 1024 + pdu.PDU_HEADER_LENGTH
_BULK_PDU_LENGTH = 8 * 1024
_MAX_IOVECS = 512
# Type, reserved byte, length of every PDU (PS3.8 9.3.1).
_PDU_HEADER = struct.Struct('>BBI')
# A P-DATA-TF's headers up to its first fragment: the PDU's 6 bytes, then the PDV's
# length, presentation context ID and message control header (PS3.8 9.3.5, E.2).
_PDATA_HEADERS = pdu.PDU_HEADER_LENGTH + 6
# Those headers in one: PDU type, reserved, PDU length, PDV length, context ID, control.
_PDATA_HEAD = struct.Struct('>BxILBB')
# A P-DATA-TF arriving in Sta6 (PS3.8 Table 9-10): (state, event, action, next state).
_PDATA_STATE = 'Sta6'
_PDATA_STEP = (_PDATA_STATE, fsm.EVENT_FOR_PDU_TYPE[pdu.P_DATA_TF],
               *fsm.next_step(_PDATA_STATE, fsm.EVENT_FOR_PDU_TYPE[pdu.P_DATA_TF], False))
_PDATA_ACTION = _PDATA_STEP[2]
# A P-DATA request in Sta6 (PS3.8 Table 9-10): DT-1 sends it, the state stays.
_PDATA_SEND_STEP = (_PDATA_STATE, 'Evt9', *fsm.next_step(_PDATA_STATE, 'Evt9', False))
_RECEIVE_CHUNK = 256 * 1024
# Most fragments ``buffered_data_run`` hands over at once (an os.writev takes 1024).
_MAX_RUN = 256
_COMMAND_OR_LAST = COMMAND_FRAGMENT | LAST_FRAGMENT
_READ_AHEAD = 64 * 1024

# Linux's TCP_QUICKACK (0: not available), and how few bytes of a PDU may have come
# when the rest waits for our acknowledgement (a peer's small write under Nagle).
_QUICK_ACK = getattr(socket, 'TCP_QUICKACK', 0)
_SMALL_WRITE = 1024

# The table's answers already looked up: (state, event, is_requestor) -> the
# transition as ``trace`` records it, (state, event, action, next state). Seven
# events per association; the table's checks run once per cell.
_STEPS: dict = {}

# A-ABORT reasons (PS3.8 9.3.8) for the failures we detect.
REASON_UNRECOGNIZED_PDU = 1
REASON_UNEXPECTED_PDU = 2
REASON_INVALID_PARAMETER = 6


class TransportClosed(Exception):
    """Internal: the peer closed the TCP connection (Evt17)."""


class DULServiceProvider:
    """One association's upper layer: PDU framing and the state machine on a socket.

    :param sock: a connected socket (``None`` before ``connect``)
    :param is_requestor: True on the side that sent A-ASSOCIATE-RQ
    :param max_pdu_length: the Maximum Length Received we offer (0 = unlimited);
        it caps the P-DATA PDUs we accept
    :param artim_timeout: the ARTIM timer in seconds (PS3.8 9.1.5)
    :param max_associate_pdu_length: cap on A-ASSOCIATE PDUs we read (64 KiB - 1 MiB)
    """

    def __init__(self, sock: Optional[socket.socket], *, is_requestor: bool,
                 max_pdu_length: int = 65536, artim_timeout: float = 10,
                 max_associate_pdu_length: int = DEFAULT_MAX_ASSOCIATE_PDU_LENGTH,
                 peer: str = '') -> None:
        self.sock = sock
        self.is_requestor = is_requestor
        self.max_pdu_length = max_pdu_length
        self.artim_timeout = artim_timeout
        self.max_associate_pdu_length = max(64 * 1024, min(max_associate_pdu_length,
                                                           DEFAULT_MAX_ASSOCIATE_PDU_LENGTH))
        self.peer = peer
        self.state = 'Sta1'
        self.last_action: Optional[str] = None
        #: (source, reason) of the A-ABORT this end sent, or None: says who aborted.
        self.abort_sent: Optional[tuple] = None
        #: The latest transitions as (state, event, action, next state), for logs and tests.
        self.trace: deque = deque(maxlen=16)
        # Received bytes live in _buf[_start:_end]; one recv_into may bring several
        # PDUs, each parsed in place. _buf is a view of a bytearray: each PDU handed
        # out is a slice of it, without a view made first.
        self._buf = memoryview(bytearray(_INITIAL_BUFFER))
        self._start = self._end = 0
        self._bulk = 0                        # longest P-DATA PDU of 8 KiB or more seen
        # TCP_QUICKACK asked since this end last sent: Linux then acknowledges at once
        # until we send again (sending is what brings its delayed ACKs back).
        self._acking = False
        self._sock_timeout: object = ()       # what settimeout() was last given
        self._quiet_close = False             # closing after _await_close: no shutdown
        #: (address, port) of the peer when known without asking the socket.
        self.peer_endpoint: Optional[tuple] = None
        if sock is not None:
            self._configure(sock)
            self._event('Evt5')

    # -- connection ---------------------------------------------------------------

    @classmethod
    def connect(cls, address: str, port: int, timeout: float,
                wrap: Optional[Callable] = None, **kwargs) -> 'DULServiceProvider':
        """Open the transport connection (Evt1 -> AE-1, Evt2); IPv4 or IPv6.

        ``wrap(sock, address, timeout)``, when given, returns the socket to use
        instead (TLS). A refused or unreachable peer raises ``NetDICOMError`` naming
        host and port, with the ``OSError`` chained.
        """
        dul = cls(None, is_requestor=True, peer=f'{address}:{port}', **kwargs)
        dul._event('Evt1')
        try:
            ipv4 = _is_ipv4(address)
            sock = _open(address, port, timeout, ipv4)
            if wrap is not None:
                sock = wrap(sock, address, timeout)
            elif ipv4:
                # An IPv4 peer is the very address we connected to: association_info
                # needs no getpeername, and the socket's timeout is known.
                dul.peer_endpoint = (address, port)
                dul._sock_timeout = timeout
        except NetDICOMError:
            dul.state = 'Sta1'
            raise
        except socket.timeout as exc:
            dul.state = 'Sta1'
            raise DCMTimeoutError(
                f'no TCP connection to {address}:{port} within {timeout} s') from exc
        except OSError as exc:
            dul.state = 'Sta1'
            raise NetDICOMError(
                f'cannot connect to {address}:{port}: {exc.strerror or exc}') from exc
        dul.sock = sock
        dul._configure(sock)
        return dul

    @staticmethod
    def _configure(sock: socket.socket) -> None:
        # Small DIMSE responses must not wait for Nagle's algorithm.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # -- local primitives -----------------------------------------------------------

    def send_associate_rq(self, rq: 'pdu.AAssociateRqPDU', timeout: float,
                          encoded: Optional[bytes] = None) -> None:
        """A-ASSOCIATE request: the connection is up (Evt2 -> AE-2 sends the RQ).

        ``encoded``, when given, is ``rq.encode()`` already made (sent as it is).
        """
        self._event('Evt2', rq if encoded is None else _Encoded(rq, encoded), timeout)

    def send_associate_ac(self, ac: 'pdu.AAssociateAcPDU', timeout: float,
                          encoded: Optional[bytes] = None) -> None:
        """A-ASSOCIATE response (accept), Evt7 -> AE-7.

        ``encoded``, when given, is ``ac.encode()`` already made (sent as it is).
        """
        self._event('Evt7', ac if encoded is None else _Encoded(ac, encoded), timeout)

    def send_associate_rj(self, rj: 'pdu.AAssociateRjPDU', timeout: float) -> None:
        """A-ASSOCIATE response (reject), Evt8 -> AE-8; then wait for the peer to close."""
        self._event('Evt8', rj, timeout)
        self._await_close(self.artim_timeout)

    def send_pdata(self, data, timeout: float) -> None:
        """P-DATA request (Evt9): ``data`` is one or more whole encoded P-DATA-TF PDUs,
        as bytes or as a list of buffers."""
        if self.state == _PDATA_STATE:
            # Every DIMSE message: the table's answer (DT-1, stay in Sta6) without
            # the general lookup.
            self.trace.append(_PDATA_SEND_STEP)
            self.last_action = _PDATA_SEND_STEP[2]
            if logger.isEnabledFor(TRACE):
                logger.log(TRACE, '%s: %s + %s -> %s -> %s', self.peer, *_PDATA_SEND_STEP)
            self._send(data, timeout)
            return
        self._event('Evt9', data, timeout)

    def send_release_rq(self, timeout: float) -> None:
        """A-RELEASE request, Evt11 -> AR-1."""
        self._event('Evt11', pdu.AReleaseRqPDU(), timeout)

    def send_release_rp(self, timeout: float) -> None:
        """A-RELEASE response, Evt14 (AR-4 on the acceptor, AR-9 in a collision)."""
        self._event('Evt14', pdu.AReleaseRpPDU(), timeout)
        if self.state == 'Sta13':
            self._await_close(self.artim_timeout)

    def abort(self, source: int = 0, reason: int = 0) -> None:
        """A-ABORT request (Evt15 -> AA-1), then close. Safe in any state."""
        if (self.state, 'Evt15') not in fsm.TRANSITIONS or self.sock is None:
            self.close()                # nothing established to abort (Sta1, Sta2, Sta13)
            return
        try:
            self._event('Evt15', pdu.AAbortPDU(source, reason), self._linger())
        except NetDICOMError:
            pass
        self._await_close(self._linger())

    def close(self) -> None:
        """Close the socket at once and go idle (Sta1)."""
        sock, self.sock = self.sock, None
        self.state = 'Sta1'
        if sock is not None:
            try:
                # shutdown first: a thread blocked reading this socket wakes up now
                # (close alone leaves it waiting until its timeout, e.g. on AE.quit()).
                if not self._quiet_close:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    # -- receiving ------------------------------------------------------------------

    def data_waiting(self) -> bool:
        """True when bytes from the peer can be read now, without blocking.

        TLS data already decrypted counts; so does a closed connection (the next
        ``receive_pdu`` then says what happened).
        """
        sock = self.sock
        if sock is None:
            return False
        if self._end > self._start:
            return True
        pending = getattr(sock, 'pending', None)
        if pending is not None and pending():
            return True
        try:
            if hasattr(select, 'poll'):  # no FD_SETSIZE limit on the descriptor number
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return bool(poller.poll(0))
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def receive_pdu(self, timeout: Optional[float]) -> Union[pdu.PDU, PDataFragments]:
        """Wait up to ``timeout`` seconds for the next PDU and run the state machine on it.

        Returns the decoded PDU, or for P-DATA-TF a list of ``(context_id,
        message_control_header, fragment)`` whose memoryviews stay valid until the next
        call (a ``PDataFragments``). A-ABORT, A-ASSOCIATE-RJ, a closed connection, an
        undecodable or unexpected
        PDU and the timeout raise the matching ``NetDICOMError`` with the socket closed.
        """
        if self.sock is None:
            raise AssociationAbortedError(
                2, 0, f'the connection to {self.peer or "the peer"} is closed')
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            pdu_type, length = self._read_header(deadline)
            body = self._read_body(pdu_type, length, deadline)
        except (TransportClosed, OSError) as exc:
            self._reading_failed(exc, timeout)
        return self._dispatch(pdu_type, body)

    def _reading_failed(self, exc: Exception, timeout: Optional[float]) -> NoReturn:
        """Raise what a failed read means: the peer closed (Evt17), the wait ran out
        (the association is aborted), or the connection failed (Evt17)."""
        if isinstance(exc, TransportClosed):
            state = self.state_name()
            self._event('Evt17')
            raise AssociationAbortedError(
                2, 0, f'{self._who()} closed the connection in {state}') from None
        if isinstance(exc, socket.timeout):
            self._timed_out(timeout)
        self._event('Evt17')
        raise AssociationAbortedError(
            2, 0, f'connection to {self._who()} failed: {exc}') from exc

    def buffered_pdv(self):
        """``(context_id, message_control_header, fragment)`` of the next PDU when it
        is a whole P-DATA-TF of one PDV, already received, in Sta6; None otherwise.

        The fast lane of ``receive_pdu`` for a data set's stream of PDUs: no wait and
        no table lookup. Anything else (another PDU, several PDVs, a length to refuse,
        TRACE logging on) is left where it is for ``receive_pdu``. The fragment is a
        view valid until the next read.
        """
        start = self._start
        end = self._end
        if end - start < _PDATA_HEADERS or self.state != _PDATA_STATE:
            return None
        buf = self._buf
        # PDU type, reserved, PDU length; PDV length, context ID, control: one unpack.
        pdu_type, length, pdv_length, context_id, control = _PDATA_HEAD.unpack_from(buf, start)
        stop = start + pdu.PDU_HEADER_LENGTH + length
        if (pdu_type != pdu.P_DATA_TF or pdv_length != length - 4 or length < 6
                or stop > end or length > (self.max_pdu_length or UNLIMITED_PDATA_CAP)
                or logger.isEnabledFor(TRACE)):
            return None
        self._start = stop
        if length > self._bulk and length >= _BULK_PDU_LENGTH:
            self._bulk = length
        self.trace.append(_PDATA_STEP)
        self.last_action = _PDATA_ACTION
        return context_id, control, buf[start + _PDATA_HEADERS:stop]

    def buffered_data_run(self, context_id: int) -> list:
        """The fragments of the P-DATA-TF PDUs already received that continue a data
        set on ``context_id``, in order: each a whole PDU of one PDV, a data fragment
        that is not the last. Empty when the next PDU is anything else.

        ``buffered_pdv`` for a data set's stream, a run at a time: one loop, and the
        fragments go to the file together. They are views valid until the next read.
        """
        run: list = []
        if self.state != _PDATA_STATE or logger.isEnabledFor(TRACE):
            return run
        buf = self._buf
        start = self._start
        end = self._end
        cap = self.max_pdu_length or UNLIMITED_PDATA_CAP
        unpack = _PDATA_HEAD.unpack_from
        while end - start >= _PDATA_HEADERS and len(run) < _MAX_RUN:
            pdu_type, length, pdv_length, pdv_context, control = unpack(buf, start)
            stop = start + pdu.PDU_HEADER_LENGTH + length
            if (pdu_type != pdu.P_DATA_TF or pdv_length != length - 4 or length < 6
                    or stop > end or length > cap or pdv_context != context_id
                    or control & _COMMAND_OR_LAST):
                break
            run.append(buf[start + _PDATA_HEADERS:stop])
            start = stop
        if run:
            self._start = start
            length = len(run[-1]) + 6  # the PDU's length: PDV headers too
            if length > self._bulk and length >= _BULK_PDU_LENGTH:
                self._bulk = length
            self.trace.extend(repeat(_PDATA_STEP, min(len(run), self.trace.maxlen)))
            self.last_action = _PDATA_ACTION
        return run

    def receive_data_run(self, context_id: int, timeout: Optional[float]) -> list:
        """``buffered_data_run(context_id)`` once the next PDU is whole: when it
        continues the data set on ``context_id`` (a P-DATA-TF of one PDV, a data
        fragment that is not the last), wait up to ``timeout`` seconds for the rest of
        it. Empty at once when the next PDU is anything else, left for ``receive_pdu``;
        a failed read raises as there.

        A data set streaming into its file runs through here, each read going
        straight to the file, without a message step per PDU.
        """
        if self.sock is None or self.state != _PDATA_STATE or logger.isEnabledFor(TRACE):
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if self._end - self._start < pdu.PDU_HEADER_LENGTH:
                self._fill(pdu.PDU_HEADER_LENGTH, deadline)
            pdu_type, _, length = _PDU_HEADER.unpack_from(self._buf, self._start)
            # What the PDU header says first: an A-ABORT is shorter than a PDV header.
            if (pdu_type != pdu.P_DATA_TF or length < 6
                    or length > (self.max_pdu_length or UNLIMITED_PDATA_CAP)):
                return []
            self._fill(_PDATA_HEADERS, deadline)
            _, _, pdv_length, pdv_context, control = _PDATA_HEAD.unpack_from(
                self._buf, self._start)
            if pdv_length != length - 4 or pdv_context != context_id \
                    or control & _COMMAND_OR_LAST:
                return []
            self._fill(pdu.PDU_HEADER_LENGTH + length, deadline)
        except (TransportClosed, OSError) as exc:
            self._reading_failed(exc, timeout)
        return self.buffered_data_run(context_id)

    def _dispatch(self, pdu_type: int, body: memoryview):
        if pdu_type == pdu.P_DATA_TF and self.state == _PDATA_STATE:
            # The common case, once per PDU of every data set: the table's answer to
            # P-DATA-TF in Sta6 (DT-2, stay) without the general lookup.
            try:
                received = PDataFragments(body[pdu.PDU_HEADER_LENGTH:])
            except PDUProcessingError as exc:
                self._provider_abort(REASON_INVALID_PARAMETER)
                raise PDUProcessingError(f'from {self._who()}: {exc}') from exc
            if logger.isEnabledFor(TRACE):
                logger.log(TRACE, '%s: received %s', self.peer, _describe(received))
            self.trace.append(_PDATA_STEP)
            self.last_action = _PDATA_STEP[2]
            return received
        event = fsm.EVENT_FOR_PDU_TYPE[pdu_type]
        try:
            if pdu_type == pdu.P_DATA_TF:
                received = PDataFragments(body[pdu.PDU_HEADER_LENGTH:])
            elif pdu_type <= pdu.A_ASSOCIATE_AC:
                # The same peer's request (or answer) again: copied, not decoded.
                received = pdu.decode_associate(body)
            else:
                received = pdu.decode_pdu(body)
        except PDUProcessingError as exc:
            self._provider_abort(REASON_INVALID_PARAMETER)
            raise PDUProcessingError(f'from {self._who()}: {exc}') from exc
        if logger.isEnabledFor(TRACE):
            logger.log(TRACE, '%s: received %s', self.peer, _describe(received))
        before = self.state
        action = self._event(event, reading=True)
        if action == 'AA-8':
            state = self.state_name(before)
            self._await_close(self._linger())
            name = 'P-DATA-TF' if pdu_type == pdu.P_DATA_TF else type(received).__name__
            raise AssociationAbortedError(
                2, REASON_UNEXPECTED_PDU,
                f'unexpected {name} from {self._who()} in {state}; the association was aborted')
        if isinstance(received, pdu.AAbortPDU) and action in ('AA-2', 'AA-3'):
            raise AssociationAbortedError(
                received.source, received.reason_diag,
                f'{self._who()} aborted the association: '
                + AssociationAbortedError(received.source, received.reason_diag).describe())
        if action == 'AE-4':
            if logger.isEnabledFor(logging.INFO):
                logger.info('Association Rejected\n%s', pdudumps.associate_rj(received))
            err = AssociationRejectedError(received.result, received.source, received.reason_diag)
            raise AssociationRejectedError(
                received.result, received.source, received.reason_diag,
                f'{self._who()} rejected the association: {err.describe()}')
        return received

    def _read_header(self, deadline: Optional[float]) -> tuple:
        if self._end - self._start < pdu.PDU_HEADER_LENGTH:
            self._fill(pdu.PDU_HEADER_LENGTH, deadline)
        pdu_type, _, length = _PDU_HEADER.unpack_from(self._buf, self._start)
        if pdu_type == pdu.P_DATA_TF:
            if length <= (self.max_pdu_length or UNLIMITED_PDATA_CAP):
                return pdu_type, length
        elif length <= FIXED_PDU_LENGTH and pdu_type in pdu.PDU_TYPES:
            return pdu_type, length             # every PDU may be this short
        if pdu_type not in pdu.PDU_TYPES:
            header = bytes(self._buf[self._start:self._start + pdu.PDU_HEADER_LENGTH])
            try:
                pdu.parse_pdu_header(header)  # says what is wrong with it
            except PDUProcessingError as exc:
                self._provider_abort(REASON_UNRECOGNIZED_PDU)
                raise PDUProcessingError(f'from {self._who()}: {exc}') from exc
        cap = self._cap(pdu_type)
        if length > cap:
            # Never read (or allocate for) a body longer than we agreed to accept.
            self._provider_abort(REASON_INVALID_PARAMETER)
            raise PDUProcessingError(
                f'{pdu.PDU_TYPES[pdu_type].__name__} from {self._who()} declares {length} bytes,'
                f' more than the {cap} we accept')
        return pdu_type, length

    def _cap(self, pdu_type: int) -> int:
        if pdu_type == pdu.P_DATA_TF:
            return self.max_pdu_length or UNLIMITED_PDATA_CAP
        if pdu_type in (pdu.A_ASSOCIATE_RQ, pdu.A_ASSOCIATE_AC):
            return self.max_associate_pdu_length
        return FIXED_PDU_LENGTH

    def _read_body(self, pdu_type: int, length: int, deadline: Optional[float]) -> memoryview:
        """The whole PDU (header included), as a view valid until the next read."""
        total = pdu.PDU_HEADER_LENGTH + length
        if self._end - self._start < total:
            self._fill(total, deadline)
        if length > self._bulk and length >= _BULK_PDU_LENGTH and pdu_type == pdu.P_DATA_TF:
            self._bulk = length
        begin = self._start
        self._start += total
        return self._buf[begin:begin + total]

    def _fill(self, need: int, deadline: Optional[float]) -> None:
        """Make ``need`` bytes available at ``_buf[_start:]``, reading as they come."""
        available = self._end - self._start
        if available >= need:
            return
        if self._start + need > len(self._buf):
            # Move what is left to the front; grow only as far as bytes really arrive,
            # so a declared length allocates nothing by itself.
            size = len(self._buf)
            if self._bulk:
                # Room for several PDUs: the part of one cut by the buffer's end moves
                # to its front (a copy), so the fewer such cuts the better.
                size = max(size, _BULK_BUFFER, min(_BULK_PDUS * self._bulk, _MAX_BULK_BUFFER))
            if need > size:
                size = min(need, max(2 * size, available + _RECEIVE_CHUNK))
            buf = memoryview(bytearray(size)) if size != len(self._buf) else self._buf
            if available:
                # One memmove (a memoryview assignment copes with the overlap).
                buf[:available] = self._buf[self._start:self._end]
            self._buf, self._start, self._end = buf, 0, available
        quick_ack = _QUICK_ACK and not self._acking
        while self._end - self._start < need:
            if quick_ack and 0 < self._end - self._start < _SMALL_WRITE:
                # A few bytes of a PDU came and the rest has not: a peer without
                # TCP_NODELAY (DCMTK's tools write a PDU's headers apart) holds the rest
                # until they are acknowledged, and our delayed ACK would wait ~40 ms.
                self._ack_now()
                self._acking = True
                quick_ack = False
            if self._end == len(self._buf):
                grown = memoryview(bytearray(min(self._start + need, 2 * len(self._buf))))
                grown[:self._end] = self._buf[:self._end]
                self._buf = grown
            # What is left over after the PDUs read is what later moves to the front
            # of the buffer: at most part of one PDU. A buffer that holds several PDUs
            # is filled (fewer reads, and a cut PDU is rare); otherwise a read stops
            # at most _READ_AHEAD past the PDU it needs.
            stop = len(self._buf)
            if need > _READ_AHEAD and _FILLED_PDUS * need > stop:
                stop = min(stop, self._start + need + _READ_AHEAD)
            self._end += self._recv_into(self._buf[self._end:stop], deadline)

    def _recv_into(self, view: memoryview, deadline: Optional[float]) -> int:
        """One ``recv_into``, bounded by ``deadline``; returns the count (never 0)."""
        if deadline is None:
            timeout = None
        else:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise socket.timeout('deadline passed')
        self._set_timeout(timeout)
        n = self.sock.recv_into(view)
        if n == 0:
            raise TransportClosed()
        return n

    def _ack_now(self) -> None:
        """Acknowledge what has arrived at once (Linux TCP_QUICKACK), not ~40 ms later."""
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, _QUICK_ACK, 1)
        except (OSError, AttributeError, ValueError):
            pass                            # a TLS socket or another system: wait as before

    def _set_timeout(self, timeout: Optional[float]) -> None:
        last = self._sock_timeout
        if timeout == last:
            return
        # Keep a socket timeout up to a tenth longer than asked: every settimeout is
        # a system call, and this runs once per read and per send (a read's timeout
        # is what is left of its deadline, a little less each time).
        if (timeout is not None and last is not None and last != ()
                and timeout <= last <= timeout / 0.9):
            return
        self.sock.settimeout(timeout)
        self._sock_timeout = timeout

    def _timed_out(self, timeout):
        state = self.state_name()
        if self.state == 'Sta2' or self.state == 'Sta13':
            self._event('Evt18')        # ARTIM expired: AA-2 closes.
            self.close()
        else:
            self.abort(0, 0)
        raise DCMTimeoutError(f'no PDU from {self._who()} within {timeout} s in {state}; '
                              'the association was aborted')

    def _provider_abort(self, reason: int) -> None:
        """Evt19 (invalid PDU) -> AA-8: send A-ABORT with source 2, then close."""
        try:
            self._event('Evt19', pdu.AAbortPDU(2, reason), self._linger())
        except NetDICOMError:
            pass
        self._await_close(self._linger())

    def _await_close(self, seconds: float) -> None:
        """Sta13: wait (bounded in time and bytes) for the peer to close, then close.

        The peer closing is Evt17 (AR-5); the wait running out is Evt18 (AA-2).
        Whatever the peer still sends meanwhile is ignored (AA-6).
        """
        sock = self.sock
        if sock is None:
            return
        deadline = time.monotonic() + seconds
        drained = 0
        closed_by_peer = False
        try:
            sock.shutdown(socket.SHUT_WR)
            while drained < DRAIN_LIMIT:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._set_timeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    closed_by_peer = True
                    break
                drained += len(chunk)
        except OSError:
            closed_by_peer = True
        # The thread that waited closes: nobody else reads, no shutdown to wake them.
        self._quiet_close = True
        if self.state == 'Sta13':
            self._event('Evt17' if closed_by_peer else 'Evt18')
        self.close()

    # -- the state machine ----------------------------------------------------------

    def _event(self, event: str, outgoing=None, timeout: Optional[float] = None,
               reading: bool = False) -> str:
        """Look up (state, event) in the PS3.8 table, move to the next state, act.

        ``outgoing`` is what a sending action puts on the wire; an abort that a
        received PDU triggers builds its own A-ABORT. ``reading``: the event is a
        PDU this thread received.
        """
        key = (self.state, event, self.is_requestor)
        step = _STEPS.get(key)
        if step is None:
            action, next_state = fsm.next_step(*key)     # raises for a blank cell
            step = _STEPS[key] = (self.state, event, action, next_state)
        action = step[2]
        next_state = step[3]
        if logger.isEnabledFor(TRACE):
            logger.log(TRACE, '%s: %s + %s -> %s -> %s', self.peer, *step)
        self.trace.append(step)
        self.last_action = action
        self.state = next_state
        if action in SENDING_ACTIONS:
            if outgoing is None:
                # A received PDU triggered an abort: AA-1 is a service-user abort,
                # AA-7 and AA-8 are the provider's (PS3.8 Table 9-9).
                outgoing = pdu.AAbortPDU(0 if action == 'AA-1' else 2,
                                         0 if action == 'AA-1' else REASON_UNEXPECTED_PDU)
            if isinstance(outgoing, pdu.AAbortPDU):
                self.abort_sent = (outgoing.source, outgoing.reason_diag)
            self._send(outgoing, self._linger() if timeout is None else timeout)
        if action in CLOSING_ACTIONS:
            if reading:
                # The thread that reads closes (AR-3 after A-RELEASE-RP, AA-3 after
                # A-ABORT): nobody else waits on the socket, no shutdown to wake them.
                self._quiet_close = True
            self.close()
        return action

    def _send(self, item, timeout: Optional[float]) -> None:
        """Put ``item`` on the wire: a PDU object, bytes, or a list of buffers that
        together make whole PDUs (sent by scatter/gather, without joining them)."""
        sock = self.sock
        if sock is None:
            raise AssociationAbortedError(2, 0, f'the connection to {self._who()} is closed')
        if logger.isEnabledFor(TRACE):
            logger.log(TRACE, '%s: sending %s', self.peer, _describe(item))
        self._acking = False
        try:
            self._set_timeout(timeout)
            if isinstance(item, list):
                self._send_buffers(item)
            else:
                sock.sendall(item if isinstance(item, (bytes, bytearray, memoryview))
                             else item.encode())
        except socket.timeout as exc:
            self.close()
            raise DCMTimeoutError(f'{self._who()} did not read what we sent within '
                                  f'{timeout} s; the association was aborted') from exc
        except OSError as exc:
            self.close()
            raise AssociationAbortedError(
                2, 0, f'sending to {self._who()} failed: {exc}') from exc

    def _send_buffers(self, buffers: list) -> None:
        sock = self.sock
        if not hasattr(sock, 'sendmsg') or isinstance(sock, ssl.SSLSocket):
            sock.sendall(b''.join(buffers))       # TLS has no scatter/gather
            return
        views = [memoryview(buf).cast('B') for buf in buffers]
        first, count = 0, len(views)
        while first < count:
            # At most _MAX_IOVECS buffers per call: the kernel refuses more (IOV_MAX).
            sent = sock.sendmsg(views[first:first + _MAX_IOVECS])
            while first < count and sent >= len(views[first]):
                sent -= len(views[first])
                first += 1
            if sent:
                views[first] = views[first][sent:]

    def _linger(self) -> float:
        return min(self.artim_timeout, ABORT_LINGER_SECONDS)

    def state_name(self, state: Optional[str] = None) -> str:
        """The current state (or ``state``) with its PS3.8 description, for messages."""
        state = state or self.state
        return f'{state} ({fsm.STATES.get(state, "?")})'

    def _who(self) -> str:
        return f'peer {self.peer}' if self.peer else 'the peer'


class _Encoded:
    """A PDU with its bytes already made: sent as they are, logged as the PDU."""

    __slots__ = ('pdu', 'data')

    def __init__(self, pdu_: 'pdu.PDU', data: bytes) -> None:
        self.pdu = pdu_
        self.data = data

    def encode(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return repr(self.pdu)


def _is_ipv4(address) -> bool:
    """True for a dotted IPv4 address (four decimal numbers, as inet_pton reads it)."""
    try:
        socket.inet_pton(socket.AF_INET, address)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _open(address: str, port: int, timeout: Optional[float], ipv4: bool) -> socket.socket:
    """A TCP connection to ``address``:``port`` within ``timeout`` seconds.

    A dotted IPv4 address needs no name resolution: its socket is made and connected
    at once (``create_connection`` would ask ``getaddrinfo`` for each association).
    Anything else (a host name, IPv6) goes through ``create_connection``.
    """
    if not ipv4:
        return socket.create_connection((address, port), timeout=timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _describe(item) -> str:
    """A PDU in words for the TRACE log: every field of association PDUs, the PDVs of
    a received P-DATA-TF, the size of one we send."""
    if isinstance(item, PDataFragments):
        return 'P-DATA-TF: ' + ', '.join(
            f'PDV context {context_id} {"command" if control & 1 else "data"}'
            f'{" (last)" if control & 2 else ""} {len(fragment)} bytes'
            for context_id, control, fragment in item)
    if isinstance(item, (list, bytes, bytearray, memoryview)):
        size = (sum(len(memoryview(buf).cast('B')) for buf in item) if isinstance(item, list)
                else len(item))
        return f'P-DATA-TF, {size} bytes'
    return repr(item)

