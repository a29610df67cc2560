"""Storage service class (PS3.4 Annex B): C-STORE as SCU and SCP.

The SCU sends a pydicom ``Dataset`` or a Part-10 file; a file whose transfer syntax is
the accepted one goes out straight from disk, never decoded; any other is converted
(a copy) to an accepted syntax by ``pynetdicom2.transcode``. The SCP receives the data
set into the owner the AE makes for it (``pynetdicom2.incoming``), checks it, asks
``ae.on_receive_store`` for the status, keeps or drops the data set accordingly, and
answers. C-GET's requester (``qr_get_scu``) uses the same steps.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Any, BinaryIO, NamedTuple, Optional, Tuple, Union

import pydicom
from pydicom.dataset import Dataset

from pynetdicom2 import dimse, incoming, statuses, transcode, uids
from pynetdicom2.context import for_message
from pynetdicom2.exceptions import ClassNotSupportedError, EventHandlingError, NetDICOMError
from pynetdicom2.services.common import (
    receive_response, response_to, sop_classes, store_in_file)

logger = logging.getLogger(__name__)

#: Transfer syntaxes whose data sets we can decode and re-encode with pydicom alone:
#: the uncompressed ones (PS3.5 A.1, A.2, A.3) and deflate (PS3.5 A.5).
REENCODABLE_TS = transcode.UNCOMPRESSED_TS

# PS3.10 7.1: a 128-byte preamble, then the prefix "DICM", then the File Meta group.
_PREAMBLE_LENGTH = 128
_PREFIX = b'DICM'
# File Meta elements are always Explicit VR Little Endian (PS3.10 7.1); these VRs have
# a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2), the others a 2-byte length.
_LONG_VRS = frozenset({b'OB', b'OD', b'OF', b'OL', b'OV', b'OW', b'SQ', b'SV', b'UC',
                       b'UN', b'UR', b'UT', b'UV'})
# The File Meta group is small; refuse to read more than this of it.
_MAX_META_LENGTH = 1 << 20


class FileMeta(NamedTuple):
    """What a Part-10 file's meta information says, and where its data set starts."""
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    data_set_offset: int


def read_file_meta(fp: BinaryIO) -> Optional[FileMeta]:
    """Read the preamble and File Meta group of the Part-10 file ``fp`` (PS3.10 7.1).

    Reads only group 0002, element by element, up to where its group length says the
    data set starts (or, without one, up to the first element of another group);
    leaves ``fp`` anywhere. Returns None when the file has
    no ``DICM`` prefix or its meta lacks the SOP class, instance or transfer syntax.
    """
    fp.seek(0)
    # The group is read from one read of the file's start in any ordinary file; a
    # longer group reads on.
    head = fp.read(_META_READ)
    offset = _PREAMBLE_LENGTH + len(_PREFIX)
    if head[_PREAMBLE_LENGTH:offset] != _PREFIX:
        return None
    values = {}
    group_end = None
    while group_end is None or offset < group_end:
        if len(head) < offset + 12:
            head += fp.read(offset + 12 - len(head) + _META_READ)
            if len(head) < offset + 8:
                break
        group, element, vr, length = _META_HEADER.unpack_from(head, offset)
        if group != 0x0002:
            break
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            return None  # not explicit VR: a non-conformant meta, left to pydicom
        header_length = 8
        if vr in _LONG_VRS:
            if len(head) < offset + 12:
                return None
            length = _META_LONG.unpack_from(head, offset + 8)[0]
            header_length = 12
        if length > _MAX_META_LENGTH or offset + header_length + length > _MAX_META_LENGTH:
            return None
        start = offset + header_length
        offset = start + length
        if len(head) < offset:
            head += fp.read(offset - len(head))
            if len(head) < offset:
                return None
        if element == 0x0000 and vr == b'UL' and length == 4:
            # File Meta Information Group Length: bytes after this element (PS3.10 7.1).
            group_end = offset + _META_LONG.unpack_from(head, start)[0]
        elif element in (0x0002, 0x0003, 0x0010):
            values[element] = head[start:offset].rstrip(b'\x00 ').decode('ascii', 'replace')
    if group_end is not None and group_end != offset:
        logger.debug('File Meta Information Group Length says the data set starts at %d, '
                     'the elements end at %d; using the elements', group_end, offset)
    if not all(values.get(element) for element in (0x0002, 0x0003, 0x0010)):
        return None
    return FileMeta(values[0x0002], values[0x0003], values[0x0010], offset)


_META_READ = 512
_META_HEADER = struct.Struct('<HH2sH')
_META_LONG = struct.Struct('<L')


def read_instance_uids(raw: bytes, ts: str) -> tuple:
    """``(SOPClassUID, SOPInstanceUID)`` of the raw data set ``raw`` encoded in ``ts``.

    Decodes only the elements up to (0008,0018). Raises ``NetDICOMError`` when the
    syntax is not one we decode or the data set does not carry both UIDs.
    """
    if ts not in REENCODABLE_TS:
        raise NetDICOMError(f'cannot read a data set in {transcode.ts_name(ts)}')
    try:
        ds = transcode.read_data_set(raw, ts, stop_when=lambda tag, *_: tag > 0x00080018)
        found = str(ds.get('SOPClassUID', '')), str(ds.get('SOPInstanceUID', ''))
    except Exception as exc:
        raise NetDICOMError(f'the data set does not decode as {transcode.ts_name(ts)}: {exc}') from exc
    if not all(found):
        raise NetDICOMError('the data set has no SOP Class UID or SOP Instance UID')
    return found


encode_data_set = transcode.encode_data_set

# PS3.8 9.3.3.2 (Table 9-18): why a proposed presentation context was not accepted.
_CONTEXT_RESULTS = {
    1: 'the user rejected it',
    2: 'the provider rejected it, giving no reason',
    3: 'it does not support the SOP class (abstract syntax)',
}


def not_accepted(asce, sop_class: str) -> ClassNotSupportedError:
    """The error for a SOP class without any accepted context on ``asce``.

    When we proposed it, the peer's answer (PS3.8 9.3.3.2) says why; result 4 names
    the transfer syntaxes it refused, so the message does too.
    """
    ac = getattr(asce, 'ac', None)
    proposed = getattr(asce, 'context_def_list', None) or {}
    refused = []
    for item in getattr(ac, 'presentation_context_items', None) or ():
        ctx = proposed.get(item.context_id)
        if ctx is not None and ctx.sop_class == sop_class:
            refused.append((item.result_reason, list(ctx.supported_ts)))
    text = f'SOP class {transcode.ts_name(sop_class)} was not accepted by {_peer(asce)}'
    if not refused:
        exc = ClassNotSupportedError(text)
        exc.comment = f'no context for {sop_class}'
        return exc
    reasons = []
    for result, syntaxes in refused:
        if result == 4:
            # transfer-syntaxes-not-supported: the syntax was the problem, not the class.
            names = ', '.join(transcode.ts_name(ts) for ts in syntaxes)
            reasons.append(f'it refused the transfer syntax{"es" if len(syntaxes) > 1 else ""} '
                           f'{names} (result 4, transfer syntaxes not supported)')
        else:
            reasons.append(f'{_CONTEXT_RESULTS.get(result, "result %s" % result)} '
                           f'(result {result})')
    exc = ClassNotSupportedError(f'{text}: {"; ".join(dict.fromkeys(reasons))}')
    exc.refused_transfer_syntaxes = tuple(dict.fromkeys(
        ts for result, syntaxes in refused if result == 4 for ts in syntaxes))
    exc.comment = (f'{", ".join(map(transcode.short_name, exc.refused_transfer_syntaxes))} '
                   f'refused for {sop_class}' if exc.refused_transfer_syntaxes
                   else f'{sop_class} not accepted')
    return exc


def _contexts_for(asce, sop_class: str) -> list:
    """The accepted contexts of ``sop_class``; ``ClassNotSupportedError`` when none."""
    found = [ctx for ctx in asce.accepted_contexts.values() if ctx.sop_class == sop_class]
    if not found:
        raise not_accepted(asce, sop_class)
    return found


def _context_in(contexts: list, ts: str):
    return next(ctx for ctx in contexts if ctx.supported_ts == ts)


def _dataset_ts(ds: Dataset) -> Optional[str]:
    """The transfer syntax a Dataset's raw values are in, when it says so."""
    meta = getattr(ds, 'file_meta', None)
    ts = getattr(meta, 'TransferSyntaxUID', None) if meta is not None else None
    if ts:
        return str(ts)
    encoding = getattr(ds, 'original_encoding', (None, None))
    if encoding[1] is False:
        return uids.EXPLICIT_VR_BIG_ENDIAN
    return None


class _Prepared(NamedTuple):
    ctx: Any
    sop_class: str
    sop_instance: str
    data: Union[bytes, BinaryIO]


def _subject(sop_class: str, sop_instance: str) -> str:
    return f'SOP instance {sop_instance} of SOP class {transcode.ts_name(sop_class)}'


def _prepare_dataset(asce, ds: Dataset, decompress_lossy: bool = True) -> _Prepared:
    """Choose a context for ``ds`` and encode it in that context's syntax (a copy of
    ``ds`` is converted when its own syntax was not accepted)."""
    missing = [kw for kw in ('SOPClassUID', 'SOPInstanceUID') if not ds.get(kw)]
    if missing:
        raise NetDICOMError(f'the data set to store has no {" or ".join(missing)}')
    sop_class, sop_instance = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    source_ts = _dataset_ts(ds)
    contexts = _contexts_for(asce, sop_class)
    target = transcode.choose_syntax(
        source_ts, [ctx.supported_ts for ctx in contexts],
        has_pixel_data='PixelData' in ds, decompress_lossy=decompress_lossy,
        subject=_subject(sop_class, sop_instance))
    ctx = _context_in(contexts, target)
    if target == source_ts and not transcode.is_uncompressed(target):
        data = transcode.encode_encapsulated(ds)
    elif transcode.is_uncompressed(source_ts) and transcode.is_uncompressed(target):
        data = encode_data_set(ds, target, source_ts)
    else:
        logger.debug('converting %s from %s to %s', sop_instance,
                     transcode.ts_name(source_ts), transcode.ts_name(target))
        data = transcode.convert(ds, source_ts, target)
    return _Prepared(ctx, sop_class, sop_instance, data)


def _prepare_file(asce, fp: BinaryIO, path: str, decompress_lossy: bool = True) -> _Prepared:
    """Choose a context for the Part-10 file ``fp`` and say what to send from it.

    When the file's syntax is accepted, ``fp`` itself positioned at the data set
    (never decoded); otherwise the file is read and converted to an accepted syntax.
    """
    meta = read_file_meta(fp)
    if meta is None:
        # No (usable) File Meta Information: let pydicom make sense of it.
        fp.seek(0)
        try:
            ds = pydicom.dcmread(fp, force=True)
        except Exception as exc:
            raise NetDICOMError(f'{path} cannot be read as a DICOM file: {exc}') from exc
        return _prepare_dataset(asce, ds, decompress_lossy)
    source_ts = meta.transfer_syntax
    contexts = _contexts_for(asce, meta.sop_class_uid)
    for ctx in contexts:
        if ctx.supported_ts == source_ts:
            fp.seek(meta.data_set_offset)
            return _Prepared(ctx, meta.sop_class_uid, meta.sop_instance_uid, fp)
    # Not accepted as it is: the whole instance is read (one instance in memory) and
    # what it holds decides which syntax can carry it.
    fp.seek(0)
    try:
        ds = pydicom.dcmread(fp)
    except Exception as exc:
        raise NetDICOMError(f'{path} cannot be read as a DICOM file: {exc}') from exc
    target = transcode.choose_syntax(
        source_ts, [ctx.supported_ts for ctx in contexts],
        has_pixel_data='PixelData' in ds, decompress_lossy=decompress_lossy,
        subject=f'{path} ({_subject(meta.sop_class_uid, meta.sop_instance_uid)})')
    logger.debug('converting %s from %s to %s', path, transcode.ts_name(source_ts),
                 transcode.ts_name(target))
    return _Prepared(_context_in(contexts, target), meta.sop_class_uid, meta.sop_instance_uid,
                     transcode.convert(ds, source_ts, target))


@sop_classes([])
def storage_scu(asce, ctx, ds_or_path: Union[Dataset, str, os.PathLike], msg_id: int,
                move_originator_aet: Optional[str] = None,
                move_originator_message_id: Optional[int] = None, *,
                decompress_lossy: Optional[bool] = None) -> statuses.Status:
    """C-STORE a ``Dataset`` or a Part-10 file (path); returns the response's status.

    The presentation context is chosen by the data set's own SOP class and transfer
    syntax (``ctx`` may be another class's). A file whose syntax was accepted is sent
    as it is on disk. Otherwise a copy is converted to an accepted syntax
    (``pynetdicom2.transcode``): between uncompressed syntaxes, by decompressing, or
    by compressing losslessly; a lossy encoding is never made. ``decompress_lossy``
    (default: the AE's ``decompress_lossy`` attribute, else True) False refuses to
    decompress lossy compressed pixel data (as DCMTK's ``+dls``). Raises
    ``ClassNotSupportedError`` before sending anything when no accepted context can
    carry the data set, naming its syntax and the accepted ones. The move
    originator fields are for C-STORE sub-operations of a C-MOVE.
    """
    if decompress_lossy is None:
        decompress_lossy = getattr(getattr(asce, 'settings', asce.ae), 'decompress_lossy', True)
    fp = None
    try:
        if isinstance(ds_or_path, Dataset):
            prepared = _prepare_dataset(asce, ds_or_path, decompress_lossy)
        else:
            path = os.fspath(ds_or_path)
            fp = open(path, 'rb')
            prepared = _prepare_file(asce, fp, path, decompress_lossy)
        rq = dimse.CStoreRQMessage()
        rq.message_id = msg_id
        rq.affected_sop_class_uid = prepared.sop_class
        rq.affected_sop_instance_uid = prepared.sop_instance
        rq.priority = dimse.PRIORITY_MEDIUM
        if move_originator_aet is not None:
            rq.move_originator_aet = move_originator_aet
        if move_originator_message_id is not None:
            rq.move_originator_message_id = move_originator_message_id
        rq.data_set = prepared.data
        asce.send(rq, prepared.ctx.id)
    finally:
        if fp is not None:
            fp.close()
    rsp = receive_response(asce, dimse.CStoreRSPMessage, msg_id)
    return statuses.Status(rsp.status, dimse.CStoreRSPMessage)


def c_store_sink(asce, ctx, msg) -> Optional[incoming.IncomingDataSet]:
    """Where the data set of a C-STORE-RQ goes while it arrives (the service's data sink).

    For the SOP classes in ``ae.store_in_file``: the file of a ``get_file`` override
    (0.9.x), else the owner the AE's factory ``incoming_data_set`` makes from the
    request's UIDs and the context's transfer syntax. For the other classes: memory,
    at most ``ae.max_memory_store`` bytes, unless the AE keeps files (a folder storage
    keeps them too, and its hook gets the bytes). Other messages: None.
    """
    if not isinstance(msg, dimse.CStoreRQMessage):
        return None
    ae = asce.ae
    in_file = ctx.sop_class in getattr(ae, 'store_in_file', ())
    uids_ = (incoming.clean_uid(msg.affected_sop_class_uid),
             incoming.clean_uid(msg.affected_sop_instance_uid), ctx.supported_ts)
    if in_file and incoming.overridden(ae, 'get_file'):
        fp, start = ae.get_file(for_message(ctx, msg), msg.command_set)
        return incoming.SuppliedFile(ae, fp, start, *uids_)
    factory = getattr(ae, 'incoming_data_set', None)
    owner = factory(*uids_) if factory is not None else incoming.TemporaryDataSet(*uids_)
    if in_file or owner.keeps_files:
        return owner
    owner.discard()
    return incoming.InMemory(
        *uids_, limit=getattr(getattr(asce, 'settings', ae), 'max_memory_store', None))


def received_data_set(ctx, msg) -> Optional[incoming.IncomingDataSet]:
    """The owner of a C-STORE-RQ's data set (bytes from a service-less path are wrapped)."""
    data = msg.data_set
    if data is None or isinstance(data, incoming.IncomingDataSet):
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return incoming.InMemory(incoming.clean_uid(msg.affected_sop_class_uid),
                                 incoming.clean_uid(msg.affected_sop_instance_uid),
                                 ctx.supported_ts, data=bytes(data))
    return incoming.SuppliedFile(None, data, 0, incoming.clean_uid(msg.affected_sop_class_uid),
                                 incoming.clean_uid(msg.affected_sop_instance_uid),
                                 ctx.supported_ts)


def refusal(asce, ctx, msg) -> Optional[incoming.Refusal]:
    """Why a received C-STORE-RQ is refused before any hook sees it, or None.

    Its data set could not be written as it arrived (a full disk, too big for memory:
    0xA700), there is none (0xC000), or ``check`` refuses it: it does not parse to its
    end (0xC000), a UID is missing (0xC000) or is not the request's (0xA900), or the
    request's SOP Instance UID cannot name a file (0xC000). Each is logged as a
    WARNING naming the peer.
    """
    if msg.data_set_error is not None:
        error = msg.data_set_error
        found = incoming.Refusal(int(statuses.C_STORE_OUT_OF_RESOURCES),
                                 error.strerror or str(error))
    else:
        data = received_data_set(ctx, msg)
        if data is None:
            found = incoming.Refusal(int(statuses.C_STORE_CANNOT_UNDERSTAND),
                                     'C-STORE-RQ without a data set')
        else:
            found = data.check()
    if found is not None:
        logger.warning('C-STORE of %s from %s refused with 0x%04X: %s',
                       msg.affected_sop_instance_uid, _peer(asce), found.status, found.comment)
    return found


def keep_or_drop(asce, ctx, msg, call_hook: bool = True) -> Tuple[statuses.Status,
                                                                 Optional[str]]:
    """Ask ``ae.on_receive_store`` for the status of a checked C-STORE-RQ, then keep the
    data set (Success or Warning: ``commit``, before the response leaves) or drop it.

    Returns ``(status, error comment)``. ``EventHandlingError`` from the hook or a
    storage step answers 0xC000 (``incoming.InstanceRefused``: its own status),
    ``OSError`` 0xA700; nothing is kept then.
    """
    data = received_data_set(ctx, msg)
    comment = None
    # The hooks see the request's Move Originator, when a C-MOVE sent it.
    ctx = for_message(ctx, msg)
    try:
        if call_hook:
            in_file = ctx.sop_class in getattr(asce.ae, 'store_in_file', ())
            ds = data.for_hook(
                in_file, getattr(getattr(asce, 'settings', asce.ae), 'max_memory_store', None))
            status = statuses.Status(asce.ae.on_receive_store(ctx, ds), dimse.CStoreRSPMessage)
        else:
            status = statuses.SUCCESS
        if status.is_success or status.is_warning:
            data.commit(ctx)
        else:
            data.discard()
    except incoming.InstanceRefused as exc:
        data.discard()
        status = statuses.Status(exc.status, dimse.CStoreRSPMessage)
        comment = exc.comment
        logger.warning('C-STORE of %s from %s refused with 0x%04X: %s',
                       msg.affected_sop_instance_uid, _peer(asce), exc.status, exc.comment)
    except EventHandlingError as exc:
        data.discard()
        status = statuses.C_STORE_CANNOT_UNDERSTAND
        comment = str(exc)
        logger.warning('C-STORE of %s from %s refused with 0xC000: %s',
                       msg.affected_sop_instance_uid, _peer(asce), exc)
    except OSError as exc:
        data.discard()
        status = statuses.C_STORE_OUT_OF_RESOURCES
        comment = exc.strerror or str(exc)
        logger.warning('C-STORE of %s from %s could not be stored (0xA700): %s',
                       msg.affected_sop_instance_uid, _peer(asce), exc)
    except BaseException:
        data.discard()
        raise
    return status, comment


def release(msg) -> None:
    """The exchange of a C-STORE-RQ is over: its data set's owner lets go (a data set
    not committed is dropped; a user's file goes back through ``ae.discard_file``)."""
    data = msg.data_set
    if isinstance(data, incoming.IncomingDataSet):
        try:
            data.release()
        except OSError:
            logger.warning('releasing the received data set failed', exc_info=True)
    elif data is not None and hasattr(data, 'close'):
        data.close()


def answer(asce, msg, pc_id: int, status, comment: Optional[str] = None) -> None:
    """Send the C-STORE-RSP to ``msg``; a failure carries ``comment`` as Error Comment."""
    if comment and not statuses.Status(int(status), dimse.CStoreRSPMessage).is_failure:
        comment = None
    asce.send(response_to(msg, dimse.CStoreRSPMessage, status, comment), pc_id)


def _peer(asce) -> str:
    dul = getattr(asce, 'dul', None)
    return getattr(dul, 'peer', None) or 'the peer'


@store_in_file
@sop_classes(uids.STORAGE_SOP_CLASSES)
def storage_scp(asce, ctx, msg) -> None:
    """C-STORE SCP: answer with ``ae.on_receive_store(ctx, ds)``'s status.

    The data set arrives into the owner ``c_store_sink`` names (the AE's
    ``incoming_data_set``). Before the hook, it is checked: a data set that does not
    parse to its end in its transfer syntax is answered 0xC000 (cannot understand)
    with an Error Comment saying what is wrong; one whose SOP Class or Instance UID
    is not the request's, 0xA900 (data set does not match SOP class); one that could
    not be written as it arrived (a full disk, ``msg.data_set_error``), 0xA700. The
    hook is then called with ``ds``: the received Part-10 file, positioned at its
    start, for SOP classes in ``ae.store_in_file`` (the raw data-set bytes
    otherwise). On Success or Warning the data set is kept (a folder storage gives
    it its final name) before the response leaves; on a Failure it is dropped.
    ``EventHandlingError`` from the hook answers 0xC000 with the error as Error
    Comment; ``OSError`` (a full disk) 0xA700. All keep the association. The hook
    must not keep ``ds``: read or copy it before returning.
    """
    try:
        found = refusal(asce, ctx, msg)
        if found is not None:
            status, comment = found
        else:
            status, comment = keep_or_drop(asce, ctx, msg)
    finally:
        release(msg)
    answer(asce, msg, ctx.id, status, comment)
    # The peer now prepares its next request: the time to make the next file.
    prepare = getattr(asce.ae, 'prepare_temporary_file', None)
    if prepare is not None:
        prepare()


storage_scp.data_sink = c_store_sink


__all__ = ['storage_scu', 'storage_scp', 'c_store_sink', 'read_file_meta', 'read_instance_uids',
           'encode_data_set', 'FileMeta', 'REENCODABLE_TS']
