"""C-FIND as SCU and SCP: Query/Retrieve (PS3.4 C.4.1) and Modality Worklist
(PS3.4 K.4.1).

Each SCU call is a generator of the responses (closing it early sends C-CANCEL-RQ);
each SCP answers with the matches of the AE's ``on_receive_find`` hook.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Iterator, Optional, Tuple

from pydicom.dataset import Dataset

from pynetdicom2 import dimse, statuses, uids, userdataitems
from pynetdicom2.asceprovider import IMPLEMENTATION_UID
from pynetdicom2.fsm import PContextDef
from pynetdicom2.services.cancel import cancel_requested
from pynetdicom2.services.common import response_to, sop_classes
from pynetdicom2.services.identifiers import encode_identifier, response_identifier
from pynetdicom2.services.qrexchange import (
    ANSWERED, END, ask, close_iterator, received_request, responses, send_final)

# The Query/Retrieve services log under one name, whichever module of theirs speaks.
logger = logging.getLogger('pynetdicom2.services.queryretrieve')


#: Query/Retrieve FIND SOP classes served by ``qr_find_scu`` / ``qr_find_scp``.
FIND_SOP_CLASSES = [uids.PATIENT_ROOT_FIND_SOP_CLASS, uids.STUDY_ROOT_FIND_SOP_CLASS,
                    uids.PATIENT_STUDY_ONLY_FIND_SOP_CLASS]


def _find_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
              ) -> Iterator[Tuple[Optional[Dataset], statuses.Status]]:
    exchange = responses(asce, ctx, dimse.CFindRQMessage(), ds, msg_id,
                         dimse.CFindRSPMessage)
    try:
        for status, rsp in exchange:
            yield response_identifier(asce, rsp, ctx), status
    finally:
        exchange.close()


@sop_classes(FIND_SOP_CLASSES)
def qr_find_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
                ) -> Iterator[Tuple[Optional[Dataset], statuses.Status]]:
    """C-FIND (PS3.4 C.4.1): a generator of ``(identifier or None, Status)``.

    Sends C-FIND-RQ (priority medium, ``ds`` encoded in the context's transfer
    syntax) when first advanced; yields each response's identifier as a Dataset
    (None when it carries none), up to and including the final response (which
    may carry one, e.g. from an SCP answering ``(ds, SUCCESS)``), and stops.
    Closing the generator before the final response sends C-CANCEL-RQ and reads
    the remaining responses (bounded by ``dcm_timeout``), so the association stays
    usable.
    """
    return _find_scu(asce, ctx, ds, msg_id)


#: Seconds between two looks for a C-CANCEL-RQ while an SCP sends matches. A look is
#: a poll system call, about a tenth of what a whole response costs; a peer's cancel
#: crosses the responses already in flight anyway (PS3.7 9.3.2.3), and a millisecond
#: more of them changes nothing for it. A slow handler is looked after at every match.
CANCEL_LOOK_INTERVAL = 0.001

# ours and pynetdicom2 0.9.x's, whose SCP answered ``(ds, SUCCESS)`` that way.
_FINAL_IDENTIFIER_READERS = frozenset({
    IMPLEMENTATION_UID, '1.2.826.0.1.3680043.8.498.1.1.155105445218102811803000'})


def _reads_final_identifier(asce) -> bool:
    """True when the requester is one of ``_FINAL_IDENTIFIER_READERS``."""
    info = getattr(getattr(asce, 'rq', None), 'user_information', None)
    for item in (info.user_data if info is not None else ()):
        if isinstance(item, userdataitems.ImplementationClassUIDSubItem):
            return str(item.implementation_class_uid).rstrip('\0 ') in _FINAL_IDENTIFIER_READERS
    return False


def _find_scp(asce, ctx: PContextDef, msg) -> None:
    rsp_class = dimse.CFindRSPMessage
    ds = received_request(asce, ctx, msg, rsp_class)
    if ds is None:
        return
    matches = ask(asce, ctx, msg, rsp_class, lambda: iter(asce.ae.on_receive_find(ctx, ds)))
    if matches is ANSWERED:
        return
    next_match = functools.partial(next, matches, END)
    # The handler yields the same few codes thousands of times (0xFF00): each is
    # resolved once per operation (a Status is immutable).
    resolved = {}
    next_look = 0.0
    while True:
        now = time.monotonic()
        if now >= next_look:
            next_look = now + CANCEL_LOOK_INTERVAL
            if cancel_requested(asce, msg.message_id):
                close_iterator(matches)
                send_final(asce, ctx, msg, rsp_class, statuses.C_FIND_CANCEL)
                return
        item = ask(asce, ctx, msg, rsp_class, next_match)
        if item is ANSWERED:
            return
        if item is END:
            break
        match, status = item
        if type(status) is int and status in resolved:
            status = resolved[status]
        else:
            code, status = status, statuses.Status(status, rsp_class)
            if type(code) is int:
                resolved[code] = status
        if not status.is_pending:
            # The handler chose the final status itself: it ends the operation.
            close_iterator(matches)
            if match is not None and not _reads_final_identifier(asce):
                # PS3.4 Table C.4-1: a final response carries no identifier, and DCMTK
                # then fails the release on the P-DATA it did not read. A match
                # (with success or warning) goes in a pending response of its own.
                if status.is_success or status.is_warning:
                    rsp = response_to(msg, rsp_class, statuses.C_FIND_PENDING)
                    rsp.data_set = encode_identifier(match, ctx.supported_ts)
                    asce.send(rsp, ctx.id)
                match = None
            send_final(asce, ctx, msg, rsp_class, status, identifier=match)
            return
        rsp = response_to(msg, rsp_class, status)
        # Encoded now, before the handler runs again: each match goes out as it was
        # when yielded, even if the handler reuses one Dataset object.
        if match is not None:
            rsp.data_set = encode_identifier(match, ctx.supported_ts)
        asce.send(rsp, ctx.id)
    send_final(asce, ctx, msg, rsp_class, statuses.SUCCESS)


@sop_classes(FIND_SOP_CLASSES)
def qr_find_scp(asce, ctx: PContextDef, msg) -> None:
    """C-FIND SCP: answer with the matches of ``ae.on_receive_find(ctx, ds)``.

    The hook yields ``(Dataset, Status or int)``; each pending one becomes a pending
    C-FIND-RSP carrying that Dataset, encoded at once; a non-pending status ends the
    operation as the final response, carrying the Dataset yielded with it (None: no
    identifier), as pynetdicom2 0.9.8 did: ``yield ds, SUCCESS`` answers with one
    match. That is for requesters that read it (this library and pynetdicom2 0.9.x,
    known by their Implementation Class UID); any other gets the Dataset of a
    success or warning in a pending response before the final one, as PS3.4 Table
    C.4-1 wants (with a failure or cancel it is left out). When the
    handler gives no final status the final response is 0x0000 without an
    identifier.
    ``EventHandlingError`` from the hook (called or iterated) ends with 0xC000 and
    the association stays usable. A C-CANCEL-RQ from the peer, looked for before
    each match (at most every ``CANCEL_LOOK_INTERVAL`` seconds), ends with 0xFE00.
    """
    _find_scp(asce, ctx, msg)


@sop_classes([uids.MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS])
def modality_work_list_scu(asce, ctx: PContextDef, ds: Dataset, msg_id: int
                           ) -> Iterator[Tuple[Optional[Dataset], statuses.Status]]:
    """Modality Worklist C-FIND (PS3.4 K.4.1): as ``qr_find_scu``."""
    return _find_scu(asce, ctx, ds, msg_id)


@sop_classes([uids.MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS])
def modality_work_list_scp(asce, ctx: PContextDef, msg) -> None:
    """Modality Worklist C-FIND SCP: as ``qr_find_scp``, through ``on_receive_find``."""
    _find_scp(asce, ctx, msg)


__all__ = ['FIND_SOP_CLASSES', 'CANCEL_LOOK_INTERVAL', 'qr_find_scu', 'qr_find_scp',
           'modality_work_list_scu', 'modality_work_list_scp']
