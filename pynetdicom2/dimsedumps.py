"""Readable renderings of DIMSE messages, for the logs.

A command set as lines with UIDs and statuses in words, an identifier as pydicom's text,
and the one-line INFO summary of each message the tools print with ``-v``. The
association layer calls ``log_message`` for every message it sends and receives. No
I/O: text in, text out. The upper layer's PDUs are rendered a layer down, in
``pdudumps``.
"""

from __future__ import annotations

import logging
from typing import Optional

from pydicom.uid import UID

from pynetdicom2.dimsecodec import dataset_from
from pynetdicom2.pdudumps import block, uid_name
from pynetdicom2.statuses import Status
from pynetdicom2.transcode import read_data_set

__all__ = ['message_line', 'command', 'identifier', 'log_message']

# DIMSE service names by Command Field without the response bit (PS3.7 E.1).
_SERVICES = {0x0001: 'Store', 0x0010: 'Get', 0x0020: 'Find', 0x0021: 'Move',
             0x0030: 'Echo', 0x0FFF: 'Cancel', 0x0100: 'N-EVENT-REPORT', 0x0110: 'N-GET',
             0x0120: 'N-SET', 0x0130: 'N-ACTION', 0x0140: 'N-CREATE', 0x0150: 'N-DELETE'}


def _service(msg) -> str:
    field = msg.command_field or 0
    name = _SERVICES.get(field & 0x7FFF, f'command 0x{field:04X}')
    return f'{name} {"Response" if field & 0x8000 else "Request"}'


def message_line(direction: str, msg) -> str:
    """``'Sending Echo Request (MsgID 1)'``, ``'Received Echo Response (MsgID 1,
    Success)'``, ``'Sending Store Request (MsgID 2, CT Image Storage)'``: the INFO
    summary of a message (``direction`` 'Sending'/'Received')."""
    field = msg.command_field or 0
    if field & 0x8000:
        status = msg.status
        said = 'no status' if status is None else Status(status, msg).status_type
        return f'{direction} {_service(msg)} (MsgID {msg.message_id_being_responded_to}, {said})'
    if field == 0x0001:
        # As DCMTK's storescu/storescp -v: which kind of instance, by name.
        return (f'{direction} {_service(msg)} (MsgID {msg.message_id}, '
                f'{UID(str(msg.sop_class_uid or "")).name or "no SOP class"})')
    return f'{direction} {_service(msg)} (MsgID {msg.message_id})'


def command(msg) -> str:
    """A DIMSE command set, one element a line: UIDs by name, the status with its
    description, and whether a data set follows."""
    # Read the message's own store without building its ``command_set`` Dataset: that
    # would change which form the message keeps (and sends) from then on.
    ds = msg._command_set
    if ds is None:
        ds = dataset_from(msg._elements or {})
    lines = [f'Message Type: {_service(msg)}']
    for element in ds:
        keyword = element.keyword or str(element.tag)
        if keyword in ('CommandGroupLength', 'CommandField', 'CommandDataSetType'):
            continue
        value = element.value
        if value is None or value == '':
            continue
        if element.VR == 'UI':
            value = uid_name(str(value))
        elif keyword == 'Status':
            status = Status(value, msg)
            value = f'0x{int(status):04X} {status.status_type}: {status.description}'
        lines.append(f'{keyword}: {value}')
    lines.append(f'Data Set: {"present" if msg.has_data_set else "none"}')
    return '\n'.join(lines)


def identifier(raw: bytes, ts: Optional[str]) -> str:
    """An identifier (C-FIND, C-GET, C-MOVE, N-service data set) as pydicom shows it."""
    try:
        return str(read_data_set(bytes(raw), ts))
    except Exception as exc:  # a log line must not fail the association
        return f'(cannot show the data set: {exc})'


def log_message(logger: logging.Logger, direction: str, msg, ts: Optional[str]) -> None:
    """INFO: the message's one line; DEBUG: its command set and, unless it is a
    C-STORE (an image, not an identifier), its data set. Callers check
    ``logger.isEnabledFor(logging.INFO)`` first, to keep the hot path cheap."""
    logger.info('%s', message_line(direction, msg))
    if not logger.isEnabledFor(logging.DEBUG):
        return
    title = 'INCOMING' if direction == 'Received' else 'OUTGOING'
    text = block(f'{title} DIMSE MESSAGE', command(msg).splitlines())
    data = msg.data_set
    if (msg.command_field or 0) & 0x7FFF != 0x0001 and isinstance(
            data, (bytes, bytearray, memoryview)) and len(data):
        text += '\n' + block('IDENTIFIER', identifier(data, ts).splitlines())
    logger.debug('%s', text)
