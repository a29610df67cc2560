"""Reassembly of received DIMSE messages from their P-DATA fragments (PS3.8 Annex E).

``MessageAssembler`` takes each received PDV's fragment in arrival order, gathers the
command set, decodes the message it names, and sends the data set that follows into a
sink (a file, the owner of an incoming data set) or into memory, within a bound. No
sockets here: ``pynetdicom2.asceprovider`` feeds it what ``pynetdicom2.dulprovider`` reads.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO, Callable, List, Optional, Union

from pynetdicom2.dimse import DIMSEMessage, decode_message
from pynetdicom2.exceptions import DIMSEProcessingError
from pynetdicom2.fragmentation import COMMAND_FRAGMENT, LAST_FRAGMENT
from pynetdicom2.pdudumps import TRACE

# The DIMSE messages received are logged where they always were (docs/howto/logging.rst):
# under the messages' module, not under this one.
logger = logging.getLogger('pynetdicom2.dimse')

__all__ = ['MAX_COMMAND_SET_LENGTH', 'MessageAssembler']

#: Largest command set the assembler accepts. Real ones are a few hundred bytes; the
#: bound keeps a hostile peer from growing one without end.
MAX_COMMAND_SET_LENGTH = 1024 * 1024


class MessageAssembler:
    """Reassemble DIMSE messages from P-DATA fragments (PS3.8 Annex E).

    Feed it every ``(context_id, control_header, fragment)`` in arrival order;
    ``feed`` returns the complete message (``data_set`` filled, ``context_id`` set) when
    its last fragment arrives, and None before that.

    ``data_sink(msg)``, if given, is called once per message when its command set is
    complete and a data set follows (``msg.context_id`` is already set). It returns a
    sink, any object with ``write(fragment)`` (a writable binary file, or the owner of
    an incoming data set), and the data fragments are written straight into it as they
    arrive (``msg.data_set`` is then that sink; a file is left after the last byte), or
    None, and the data set is gathered in memory (``msg.data_set`` is bytes), at most
    ``max_memory_data_set`` bytes: past that ``DIMSEProcessingError`` says so (PS3.8
    gives a data set no length; a never-ending one must not take all the memory).

    When the sink fails with ``OSError`` (a full disk), it is handed to
    ``discard_sink`` at once, the rest of the data set is read and dropped, and the
    message is still delivered, with ``data_set`` None and ``data_set_error`` the
    ``OSError``: the service answers "out of resources" and the association lives on.

    After a ``DIMSEProcessingError`` (or when the association ends mid-message) call
    ``abort()``: it forgets the partial message and returns the sink that was being
    written, if any, for the caller to discard. The assembler never closes or
    deletes a sink itself.
    """

    def __init__(self, data_sink: Optional[Callable[[DIMSEMessage], Any]] = None,
                 discard_sink: Optional[Callable[[Any], None]] = None,
                 max_memory_data_set: Optional[int] = None) -> None:
        self.data_sink = data_sink
        self.discard_sink = discard_sink
        self.max_memory_data_set = max_memory_data_set
        self._last_message: Optional[DIMSEMessage] = None
        self._command = bytearray()
        self._chunks: List[bytes] = []
        self._reset()

    def _reset(self) -> None:
        self._context_id: Optional[int] = None
        # Emptied in place: the next message needs them empty, not new.
        self._command.clear()
        self._msg: Optional[DIMSEMessage] = None
        self._sink: Optional[BinaryIO] = None
        self._chunks.clear()
        self._gathered = 0
        self._sink_error: Optional[OSError] = None

    @property
    def in_progress(self) -> bool:
        """True when a message has started but is not complete."""
        return self._context_id is not None

    def feed(self, context_id: int, control_header: int,
             fragment: Union[bytes, bytearray, memoryview]) -> Optional[DIMSEMessage]:
        """Take one PDV's fragment; return the message its last fragment completes."""
        if self._context_id is None:
            self._context_id = context_id
        elif context_id != self._context_id:
            # PS3.8 E.1: every fragment of a message uses one presentation context.
            raise DIMSEProcessingError(
                f'fragment for presentation context {context_id} arrived in the middle '
                f'of a message on context {self._context_id}')
        # Bits 2-7 are reserved: never checked by the receiver (PS3.8 E.2).
        if control_header & COMMAND_FRAGMENT:
            return self._feed_command(context_id, control_header, fragment)
        return self._feed_data(control_header, fragment)

    def _feed_command(self, context_id: int, control_header: int,
                      fragment: Union[bytes, bytearray, memoryview]) -> Optional[DIMSEMessage]:
        if self._msg is not None:
            raise DIMSEProcessingError(
                f'command fragment after the command set of {type(self._msg).__name__} '
                f'was complete; its data set was expected')
        gathered = self._command
        if len(gathered) + len(fragment) > MAX_COMMAND_SET_LENGTH:
            raise DIMSEProcessingError(
                f'command set longer than {MAX_COMMAND_SET_LENGTH} bytes; refusing it')
        if not control_header & LAST_FRAGMENT:
            # The fragment may point into a receive buffer that is reused: copy it.
            gathered += fragment
            return None
        # A command set in one fragment (as every peer sends it) is decoded from it.
        msg = decode_message(fragment if not gathered else bytes(gathered + fragment))
        msg.context_id = context_id
        if not msg.has_data_set:
            self._complete(msg)
            return msg
        self._msg = msg
        if self.data_sink is not None:
            try:
                self._sink = self.data_sink(msg)
            except OSError as exc:
                self._sink_failed(msg, exc)
        return None

    def _sink_failed(self, msg: DIMSEMessage, exc: OSError) -> None:
        """The data set cannot be kept: drop its file now, swallow the rest of it."""
        logger.warning('the data set of %s (message ID %s) cannot be kept: %s',
                       type(msg).__name__, msg.message_id, exc)
        sink, self._sink = self._sink, None
        self._sink_error = exc
        if sink is not None and self.discard_sink is not None:
            try:
                self.discard_sink(sink)
            except OSError:
                logger.warning('discarding the partial data set file failed',
                               exc_info=True)

    def _feed_data(self, control_header: int,
                   fragment: Union[bytes, bytearray, memoryview]) -> Optional[DIMSEMessage]:
        msg = self._msg
        if msg is None:
            if self._command:
                problem = 'before its command set was complete'
            elif self._last_message is not None and not self._last_message.has_data_set:
                last = self._last_message
                problem = (f'after {type(last).__name__} (message ID '
                           f'{last.message_id or last.message_id_being_responded_to}), '
                           f'whose Command Data Set Type says no data set follows')
            else:
                problem = 'without a command set before it'
            raise DIMSEProcessingError(f'data fragment arrived {problem} (PS3.8 E.1)')
        if self._sink is not None:
            try:
                self._sink.write(fragment)
            except OSError as exc:
                self._sink_failed(msg, exc)
            except ValueError as exc:
                raise self._write_failed(msg, exc) from exc
        elif self._sink_error is None:
            self._gathered += len(fragment)
            limit = self.max_memory_data_set
            if limit is not None and self._gathered > limit:
                raise DIMSEProcessingError(
                    f'the data set of {type(msg).__name__} (message ID '
                    f'{msg.message_id or msg.message_id_being_responded_to}) is longer '
                    f'than {limit} bytes, the most gathered in memory '
                    f'(max_memory_data_set); refusing it')
            if control_header & LAST_FRAGMENT and not self._chunks:
                # A data set in one fragment (a small one): one copy, no join.
                msg._data_set = bytes(fragment)
                self._complete(msg)
                return msg
            self._chunks.append(bytes(fragment))
        if not control_header & LAST_FRAGMENT:
            return None
        if self._sink_error is not None:
            msg._data_set = None
            msg.data_set_error = self._sink_error
        elif self._sink is not None:
            msg._data_set = self._sink
        else:
            msg._data_set = b''.join(self._chunks)
        self._complete(msg)
        return msg

    @staticmethod
    def _write_failed(msg: DIMSEMessage, exc: ValueError) -> DIMSEProcessingError:
        return DIMSEProcessingError(
            f'writing the data set of {type(msg).__name__} to its file failed: {exc}')

    @property
    def streaming_context(self) -> Optional[int]:
        """The presentation context ID of the data set being written into its sink
        (None when no data set is streaming into one)."""
        return self._context_id if self._sink is not None else None

    def write_data_run(self, run: List[Any]) -> None:
        """Write ``run`` into the sink of the data set streaming into one: data
        fragments on its context, none the last (``DULServiceProvider.buffered_data_run``),
        as ``feed`` would write them, without its checks per fragment (the same for
        every fragment of the run, made for the one before it)."""
        sink = self._sink
        try:
            write_run = getattr(sink, 'write_run', None)
            if write_run is not None:
                write_run(run)
            else:
                write = sink.write
                for fragment in run:
                    write(fragment)
        except OSError as exc:
            self._sink_failed(self._msg, exc)
        except ValueError as exc:
            raise self._write_failed(self._msg, exc) from exc

    def _complete(self, msg: DIMSEMessage) -> None:
        # TRACE: the association's DEBUG log shows each message whole (dumps.command).
        if logger.isEnabledFor(TRACE):
            data = msg.data_set
            logger.log(TRACE, 'received %s on context %s, message ID %s, data set: %s',
                       type(msg).__name__, msg.context_id,
                       msg.message_id if msg.message_id is not None
                       else msg.message_id_being_responded_to,
                       'none' if data is None else
                       f'{len(data)} bytes' if isinstance(data, bytes) else 'in a file')
        self._last_message = msg
        self._reset()

    def abort(self) -> Optional[BinaryIO]:
        """Forget the partial message; return its open sink file to discard, if any."""
        sink = self._sink
        self._reset()
        return sink
