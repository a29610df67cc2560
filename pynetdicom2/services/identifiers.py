"""Identifiers of C-FIND, C-MOVE and C-GET (PS3.7 9.1.2): encode, decode, and read
them (with the Status) from the messages of a Query/Retrieve operation."""

from __future__ import annotations

from typing import Optional

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from pynetdicom2 import dsutils, statuses, transcode
from pynetdicom2.exceptions import DIMSEProcessingError
from pynetdicom2.fsm import PContextDef

def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    """``ds`` encoded as a data set in ``transfer_syntax`` (an identifier, PS3.7 9.1.2)."""
    implicit, little, deflated = transcode.data_set_encoding(transfer_syntax)
    raw = dsutils.encode_flat(ds, implicit) if little else None
    if raw is None:
        fp = DicomBytesIO()
        fp.is_implicit_VR = implicit
        fp.is_little_endian = little
        write_dataset(fp, ds)
        raw = fp.getvalue()
    return transcode.deflate(raw) if deflated else raw


def decode_identifier(raw: bytes, transfer_syntax: str) -> Dataset:
    """The data set encoded in ``raw`` under ``transfer_syntax``.

    Bytes that do not decode raise ``DIMSEProcessingError``.
    """
    try:
        return transcode.read_data_set(raw, transfer_syntax)
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise DIMSEProcessingError(
            f'identifier does not decode as a data set in {UID(transfer_syntax).name}: '
            f'{exc}') from exc


def request_identifier(msg, ctx: PContextDef) -> Dataset:
    if not isinstance(msg.data_set, (bytes, bytearray)):
        raise DIMSEProcessingError(f'{type(msg).__name__} carries no identifier')
    return decode_identifier(msg.data_set, ctx.supported_ts)


def status_of(asce, rsp, response_class) -> statuses.Status:
    """The response's Status as a ``Status``; a response without one aborts."""
    if rsp.status is None:
        asce.abort()
        raise DIMSEProcessingError(f'{response_class.__name__} without a Status (0000,0900)')
    return statuses.Status(rsp.status, response_class)


def response_identifier(asce, rsp, ctx: PContextDef) -> Optional[Dataset]:
    if rsp.data_set is None:
        return None
    try:
        return decode_identifier(rsp.data_set, ctx.supported_ts)
    except DIMSEProcessingError:
        asce.abort()
        raise


__all__ = ['encode_identifier', 'decode_identifier', 'request_identifier', 'status_of',
           'response_identifier']
