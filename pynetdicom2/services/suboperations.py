"""The C-STORE sub-operations of a retrieve (C-MOVE, C-GET; PS3.4 C.4.2.3, C.4.3.3):
what each data set to send is, which context carries it, the C-STORE itself, and the
counts the responses report."""

from __future__ import annotations

import logging
import os
from typing import Any, List, NamedTuple, Optional, Tuple

from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info

from pynetdicom2 import dimse, statuses, transcode
from pynetdicom2.asceprovider import number_contexts
from pynetdicom2.exceptions import (
    AssociationError, DCMTimeoutError, DIMSEProcessingError, NetDICOMError,
    PDUProcessingError)
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services import storage

# The Query/Retrieve services log under one name, whichever module of theirs speaks.
logger = logging.getLogger('pynetdicom2.services.queryretrieve')

class SubOperations:
    """The counts a C-MOVE / C-GET response reports (PS3.7 9.3.3.2, 9.3.4.2)."""

    def __init__(self, remaining: int) -> None:
        self.remaining = max(int(remaining or 0), 0)
        self.completed = 0
        self.failed = 0
        self.warning = 0
        self.failed_uids: List[str] = []
        #: Why the first failed sub-operation failed: the final response's Error Comment.
        self.failure_comment: Optional[str] = None

    def record(self, outcome: str, sop_instance_uid: Optional[str],
               comment: Optional[str] = None) -> None:
        self.remaining = max(self.remaining - 1, 0)
        if outcome == 'failed' and comment and self.failure_comment is None:
            self.failure_comment = comment
        if outcome == 'completed':
            self.completed += 1
        elif outcome == 'warning':
            self.warning += 1
        else:
            self.failed += 1
            if sop_instance_uid:
                self.failed_uids.append(str(sop_instance_uid))

    def fill(self, rsp, final: bool = False) -> None:
        # PS3.4 C.4.2.1.5: Remaining goes in pending (and may in cancel) responses;
        # the other three in every response.
        if not final or int(rsp.status) == 0xFE00:
            rsp.num_of_remaining_sub_ops = self.remaining
        rsp.num_of_completed_sub_ops = self.completed
        rsp.num_of_failed_sub_ops = self.failed
        rsp.num_of_warning_sub_ops = self.warning

    def final_status(self, response_class) -> statuses.Status:
        """0x0000 when every sub-operation succeeded, else 0xB000 (PS3.4 C.4.2.3.1)."""
        if self.failed or self.warning:
            return statuses.Status(0xB000, response_class)
        return statuses.Status(0x0000, response_class)


class Instance(NamedTuple):
    """One data set a retrieve sends: where it is, and what its file meta says."""
    source: Any                    # a pydicom Dataset, or a path (str)
    sop_class: str
    sop_instance: str
    transfer_syntax: Optional[str]  # None: a Dataset without file meta, any syntax


class Unsendable(Exception):
    """A data set the hook returned that cannot be sent (internal)."""

    def __init__(self, reason: str, sop_instance: Optional[str] = None) -> None:
        super().__init__(reason)
        self.sop_instance = sop_instance


def describe(item) -> Instance:
    """What a C-STORE sub-operation needs to know of ``item`` (a Dataset or a path).

    For a path only the file meta information is read.
    """
    if isinstance(item, Dataset):
        sop_class = item.get('SOPClassUID')
        sop_instance = item.get('SOPInstanceUID')
        if not sop_class or not sop_instance:
            raise Unsendable('data set without SOP Class UID or SOP Instance UID',
                              sop_instance)
        meta = getattr(item, 'file_meta', None)
        ts = meta.get('TransferSyntaxUID') if meta is not None else None
        return Instance(item, str(sop_class), str(sop_instance), str(ts) if ts else None)
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        try:
            meta = read_file_meta_info(path)
        except Exception as exc:  # unreadable or not Part-10: this one sub-op fails
            raise Unsendable(f'{path}: {exc}') from exc
        sop_class = meta.get('MediaStorageSOPClassUID')
        sop_instance = meta.get('MediaStorageSOPInstanceUID')
        ts = meta.get('TransferSyntaxUID')
        if not sop_class or not sop_instance or not ts:
            raise Unsendable(f'{path}: file meta information lacks the SOP class, '
                              'instance or transfer syntax', sop_instance)
        return Instance(path, str(sop_class), str(sop_instance), str(ts))
    raise Unsendable(f'cannot send a {type(item).__name__}; expected a Dataset or a path')


def syntaxes_to_propose(instance: Instance, decompress_lossy: bool = True
                         ) -> Tuple[str, ...]:
    """The instance's own syntax first, then the uncompressed ones it converts to."""
    return transcode.offered_syntaxes(instance.transfer_syntax, decompress_lossy)


def store_context(asce, instance: Instance, need_scp_role: bool = False
                   ) -> Optional[PContextDef]:
    """The accepted context to send ``instance`` on, or None.

    The context with the instance's own transfer syntax is preferred; else any: the
    storage SCU converts the instance to its syntax or says why it cannot. With
    ``need_scp_role`` (C-GET) only contexts for which the requester accepted the
    SCP role qualify (PS3.4 C.5.3, PS3.7 D.3.3.4).
    """
    candidates = [c for c in asce.accepted_contexts.values()
                  if c.sop_class == instance.sop_class]
    if need_scp_role:
        candidates = [c for c in candidates if asce.roles.get(c.sop_class, (1, 0))[1] == 1]
    for ctx in candidates:
        if ctx.supported_ts == instance.transfer_syntax:
            return ctx
    return candidates[0] if candidates else None


def outcome(status: statuses.Status) -> str:
    if status.is_success:
        return 'completed'
    if status.is_warning:
        return 'warning'
    return 'failed'


# Errors after which the association a C-STORE went over is gone.
ASSOCIATION_LOST = (AssociationError, DCMTimeoutError, DIMSEProcessingError,
                     PDUProcessingError)


def store(assoc, ctx: PContextDef, instance: Instance, msg_id: int, **originator
           ) -> Tuple[str, Optional[str]]:
    """Run one C-STORE sub-operation; ('completed', 'warning' or 'failed', why it failed).

    A failure of the data set itself (cannot be converted or encoded, file vanished)
    is 'failed' with the reason; a failure of the association propagates.
    """
    try:
        status = storage.storage_scu(assoc, ctx, instance.source, msg_id, **originator)
    except ASSOCIATION_LOST:
        raise
    except (NetDICOMError, OSError, ValueError) as exc:
        logger.warning('C-STORE of %s failed: %s', instance.sop_instance, exc)
        return 'failed', getattr(exc, 'comment', None) or str(exc)
    status = statuses.Status(status, dimse.CStoreRSPMessage)
    if not (status.is_success or status.is_warning):
        logger.info('C-STORE of %s answered %s', instance.sop_instance, status)
    return outcome(status), None


def next_message_id(msg_id: int) -> int:
    return msg_id % 0xFFFF + 1


def move_contexts(instances: List[Instance], decompress_lossy: bool = True) -> dict:
    """The contexts of a C-MOVE sub-association: per SOP class, an uncompressed
    instance's syntax first with the others it converts to, and a compressed one's
    syntax alone, the uncompressed ones it converts to in another context; so the
    destination can take compressed data as they are and still accept the class when
    it takes only uncompressed data. Past 128 contexts, a class's syntaxes share one
    (``asceprovider.number_contexts``)."""
    classes: dict = {}
    for instance in instances:
        groups = classes.setdefault(instance.sop_class, {})
        offered = syntaxes_to_propose(instance, decompress_lossy)
        if transcode.is_uncompressed(instance.transfer_syntax):
            groups[offered] = None
        else:
            groups[offered[:1]] = None
            if offered[1:]:
                groups[offered[1:]] = None
    return number_contexts((sop_class, list(groups)) for sop_class, groups in classes.items())


__all__ = ['SubOperations', 'Instance', 'Unsendable', 'describe', 'syntaxes_to_propose',
           'store_context', 'store', 'next_message_id', 'move_contexts',
           'ASSOCIATION_LOST']
