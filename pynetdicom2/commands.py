"""One-call helpers for the common jobs: verify, store, find, move, get, and a storage SCP.

Each call builds its own AE, opens one association, does its job and releases, so a
script needs no AE set-up. Errors are the library's ``NetDICOMError`` family.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, NamedTuple, Optional

import pydicom
from pydicom.dataset import Dataset

from pynetdicom2 import ae, asceprovider, sopclass, statuses, uids
from pynetdicom2.exceptions import NetDICOMError


class CMoveResponse(NamedTuple):
    """The sub-operation counts of a C-MOVE's final response."""
    num_of_remaining_sub_ops: Optional[int]
    num_of_completed_sub_ops: Optional[int]
    num_of_failed_sub_ops: Optional[int]
    num_of_warning_sub_ops: Optional[int]


def verify(local_aet: str, remote_ae) -> statuses.Status:
    """C-ECHO ``remote_ae``; returns the status."""
    client = ae.ClientAE(local_aet).add_scu(sopclass.verification_scu)
    with client.request_association(remote_ae) as assoc:
        return assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)


def _sop_class_and_syntax(ds_or_path):
    if isinstance(ds_or_path, Dataset):
        meta = getattr(ds_or_path, 'file_meta', None)
        ts = getattr(meta, 'TransferSyntaxUID', None) if meta is not None else None
        return ds_or_path.SOPClassUID, ts
    meta = pydicom.filereader.read_file_meta_info(os.fspath(ds_or_path))
    return meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID


def store(local_aet: str, remote_ae, ds_or_path) -> statuses.Status:
    """C-STORE one data set (a pydicom ``Dataset`` or a Part-10 file path)."""
    sop_class, ts = _sop_class_and_syntax(ds_or_path)
    client = ae.ClientAE(local_aet)
    client.add_scu(sopclass.storage_scu, [sop_class])
    if ts and ts not in ae.default_ts:
        # A compressed data set gets a context of its own syntax alone: offered with
        # the uncompressed ones, the acceptor may pick one it cannot be sent in.
        client.context_def_list[3] = asceprovider.PContextDefList(3, sop_class, (ts,))
    with client.request_association(remote_ae) as assoc:
        return assoc.get_scu(sop_class)(ds_or_path, 1)


def find(local_aet: str, remote_ae, request: Dataset,
         root: str = uids.STUDY_ROOT_FIND_SOP_CLASS) -> Iterator[Dataset]:
    """C-FIND: yield each identifier the responses carry (a final one too, as 0.9.8);
    a failure status raises ``NetDICOMError``."""
    client = ae.ClientAE(local_aet).add_scu(sopclass.qr_find_scu, [root])
    with client.request_association(remote_ae) as assoc:
        for ds, status in assoc.get_scu(root)(request, 1):
            if status.is_failure:
                raise NetDICOMError(f'C-FIND failed: {status}')
            if ds is not None:
                yield ds


def c_find(remote_ae, local_aet: str, ds: Dataset,
           root: str = uids.PATIENT_ROOT_FIND_SOP_CLASS):
    """C-FIND (0.9.7 spelling): yield ``(Dataset or None, Status)`` for every response."""
    client = ae.ClientAE(local_aet).add_scu(sopclass.qr_find_scu, [root])
    with client.request_association(remote_ae) as assoc:
        yield from assoc.get_scu(root)(ds, 1)


def move(local_aet: str, remote_ae, request: Dataset, dest_ae: str,
         root: str = uids.STUDY_ROOT_MOVE_SOP_CLASS) -> CMoveResponse:
    """C-MOVE to ``dest_ae``; returns the final response's sub-operation counts.

    A failure status raises ``NetDICOMError``.
    """
    client = ae.ClientAE(local_aet).add_scu(sopclass.qr_move_scu, [root])
    final = None
    with client.request_association(remote_ae) as assoc:
        for status, rsp in assoc.get_scu(root)(request, dest_ae, 1):
            final = (status, rsp)
    if final is None:
        raise NetDICOMError('C-MOVE ended without a response')
    status, rsp = final
    if status.is_failure:
        raise NetDICOMError(f'C-MOVE failed: {status}')
    return CMoveResponse(rsp.num_of_remaining_sub_ops, rsp.num_of_completed_sub_ops,
                         rsp.num_of_failed_sub_ops, rsp.num_of_warning_sub_ops)


def get(local_aet: str, remote_ae, request: Dataset,
        root: str = uids.STUDY_ROOT_GET_SOP_CLASS,
        sop_classes=(uids.CT_IMAGE_STORAGE, uids.MR_IMAGE_STORAGE,
                     uids.SECONDARY_CAPTURE_IMAGE_STORAGE)) -> Iterator[Dataset]:
    """C-GET: yield each data set the peer sends, for the storage ``sop_classes``."""
    client = ae.ClientAE(local_aet)
    client.add_scu(sopclass.qr_get_scu, [root])
    client.add_scp(sopclass.storage_scp)
    client.store_in_file.clear()               # data sets arrive in memory here
    with client.request_association(remote_ae, sop_classes=[root, *sop_classes]) as assoc:
        for _, ds in assoc.get_scu(root)(request, 1):
            yield ds


@contextlib.contextmanager
def storage(storage_dir: str, local_aet: str, port: int, supported_ts=None):
    """Run a storage SCP writing ``<storage_dir>/<SOPInstanceUID>.dcm``; yields the AE."""
    server = ae.StorageAE(storage_dir, local_aet, port, supported_ts)
    with server:
        yield server
