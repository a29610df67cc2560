#!/usr/bin/env python3
"""A pynetdicom 3 peer for the DIMSE-N interoperability tests (storage commitment, MPPS,
N-GET), run as its own process.

SCP (default): serves Storage Commitment Push Model (N-ACTION, then the N-EVENT-REPORT
from a thread, on the same association or a new one), MPPS (N-CREATE / N-SET) and MPPS
Retrieve (N-GET of what N-CREATE made). Prints ``PORT <n>`` once listening, then one
JSON line per request served or report sent.

SCU (``--scu commit|mpps``): does one exchange with our SCP and prints JSON lines of
what it received; ``--scu commit --report new`` first listens and prints ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep, ModalityPerformedProcedureStepRetrieve,
    StorageCommitmentPushModel,
)

SC_INSTANCE = "1.2.840.10008.1.20.1.1"
LOCK = threading.Lock()
MPPS_STORE: dict = {}


def emit(**record) -> None:
    with LOCK:
        print(json.dumps(record), flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ae-title", default=None)
    p.add_argument("--max-seconds", type=float, default=60, help="exit after this")
    p.add_argument("--scu", choices=["commit", "mpps"])
    p.add_argument("--report", choices=["same", "new"], default="same",
                   help="where the commitment result goes")
    p.add_argument("--report-delay", type=float, default=0,
                   help="seconds to wait before sending the result (0: it may overtake "
                        "the N-ACTION-RSP)")
    p.add_argument("--report-port", type=int, help="SCP --report new: where to send it")
    p.add_argument("--report-aet", default="OUR_SCU")
    p.add_argument("--fail", action="append", default=[], metavar="SOP_INSTANCE_UID",
                   help="SCP: report this instance as failed (reason 0x0112)")
    p.add_argument("--port", type=int, help="SCU: our SCP's port")
    p.add_argument("--called-aet", default="OUR_SCP")
    p.add_argument("--transaction-uid")
    p.add_argument("--ref", action="append", default=[], metavar="CLASS:INSTANCE")
    p.add_argument("--mpps-uid")
    args = p.parse_args(argv)
    if args.ae_title is None:
        args.ae_title = "PYNETDICOM_SCU" if args.scu else "PYNETDICOM"
    return args


def event_information(transaction_uid, refs, failed) -> tuple:
    """The commitment result: (event type, Event Information)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ok = [r for r in refs if r[1] not in failed]
    bad = [r for r in refs if r[1] in failed]
    if ok or not bad:
        ds.ReferencedSOPSequence = [_ref(c, i) for c, i in ok]
    if bad:
        ds.FailedSOPSequence = [_ref(c, i, 0x0112) for c, i in bad]
    return (2 if bad else 1), ds


def _ref(cls, inst, reason=None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = cls
    item.ReferencedSOPInstanceUID = inst
    if reason is not None:
        item.FailureReason = reason
    return item


def report_record(event) -> dict:
    ds = event.event_information
    return {
        "event": "n_event_report",
        "event_type": event.event_type,
        "sop_class": str(event.request.AffectedSOPClassUID),
        "sop_instance": str(event.request.AffectedSOPInstanceUID),
        "transaction_uid": str(ds.TransactionUID),
        "success": [[str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID)]
                    for i in ds.get("ReferencedSOPSequence", [])],
        "failure": [[str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID),
                     int(i.FailureReason)] for i in ds.get("FailedSOPSequence", [])],
    }


# ---------------------------------------------------------------- SCP

def handle_n_action(event, args):
    ds = event.action_information
    refs = [(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
            for i in ds.ReferencedSOPSequence]
    emit(event="n_action", calling_aet=event.assoc.requestor.ae_title,
         sop_class=str(event.request.RequestedSOPClassUID),
         sop_instance=str(event.request.RequestedSOPInstanceUID),
         action_type=event.action_type, transaction_uid=str(ds.TransactionUID),
         refs=refs)
    event_type, info = event_information(ds.TransactionUID, refs, set(args.fail))
    # From a thread, as a handler cannot send on its own association. pynetdicom 3.0.4
    # may still send it before the N-ACTION-RSP unless --report-delay holds it back.
    target = report_same if args.report == "same" else report_new
    threading.Thread(target=target, args=(event.assoc, event_type, info, args),
                     daemon=True).start()
    return 0x0000, None


def report_same(assoc, event_type, info, args):
    time.sleep(args.report_delay)
    status, _ = assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel,
                                          SC_INSTANCE, msg_id=101)
    emit(event="report_sent", on="same", event_type=event_type,
         status=int(status.Status) if "Status" in status else None)


def report_new(_assoc, event_type, info, args):
    time.sleep(args.report_delay)
    ae = AE(ae_title=args.ae_title)
    ae.add_requested_context(StorageCommitmentPushModel)
    # PS3.4 J.3.3.1.3: the SCP proposes the SCP role when it opens the association.
    role = build_role(StorageCommitmentPushModel, scp_role=True)
    assoc = ae.associate("127.0.0.1", args.report_port, ae_title=args.report_aet,
                         ext_neg=[role])
    if not assoc.is_established:
        emit(event="report_sent", on="new", event_type=event_type, status=None)
        return
    status, _ = assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel,
                                          SC_INSTANCE, msg_id=102)
    assoc.release()
    emit(event="report_sent", on="new", event_type=event_type,
         status=int(status.Status) if "Status" in status else None)


def handle_n_create(event):
    uid = str(event.request.AffectedSOPInstanceUID)
    ds = event.attribute_list
    emit(event="n_create", sop_class=str(event.request.AffectedSOPClassUID),
         sop_instance=uid, data=ds.to_json_dict())
    if uid in MPPS_STORE:
        return 0x0111, None
    MPPS_STORE[uid] = ds
    return 0x0000, ds


def handle_n_set(event):
    uid = str(event.request.RequestedSOPInstanceUID)
    mod = event.modification_list
    emit(event="n_set", sop_class=str(event.request.RequestedSOPClassUID),
         sop_instance=uid, data=mod.to_json_dict())
    step = MPPS_STORE.get(uid)
    if step is None:
        return 0x0112, None
    if step.PerformedProcedureStepStatus != "IN PROGRESS":
        return 0x0110, None
    for elem in mod:
        step[elem.tag] = elem
    return 0x0000, mod


def handle_n_get(event):
    uid = str(event.request.RequestedSOPInstanceUID)
    tags = event.request.AttributeIdentifierList
    tags = [] if tags is None else (tags if isinstance(tags, list) else [tags])
    emit(event="n_get", sop_class=str(event.request.RequestedSOPClassUID), sop_instance=uid,
         tags=[int(t) for t in tags])
    step = MPPS_STORE.get(uid)
    if step is None:
        return 0x0112, None
    reply = Dataset()
    for elem in step:
        if not tags or elem.tag in tags:
            reply.add(elem)
    return 0x0000, reply


def run_scp(args) -> int:
    ae = AE(ae_title=args.ae_title)
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    ae.add_supported_context(ModalityPerformedProcedureStep)
    ae.add_supported_context(ModalityPerformedProcedureStepRetrieve)
    handlers = [(evt.EVT_N_ACTION, handle_n_action, [args]),
                (evt.EVT_N_CREATE, handle_n_create), (evt.EVT_N_SET, handle_n_set),
                (evt.EVT_N_GET, handle_n_get)]
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        time.sleep(args.max_seconds)
    finally:
        server.shutdown()
    return 0


# ---------------------------------------------------------------- SCU

def run_commit_scu(args) -> int:
    refs = [tuple(ref.split(":", 1)) for ref in args.ref]
    info = Dataset()
    info.TransactionUID = args.transaction_uid
    info.ReferencedSOPSequence = [_ref(c, i) for c, i in refs]
    got = threading.Event()

    def on_report(event):
        emit(**report_record(event))
        got.set()
        return 0x0000, None

    ae = AE(ae_title=args.ae_title)
    server = None
    ext_neg = []
    if args.report == "new":
        ae.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
        server = ae.start_server(("127.0.0.1", 0), block=False,
                                 evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        print(f"PORT {server.server_address[1]}", flush=True)
    else:
        # Take the SCP role too, so the result may come on this association.
        ext_neg = [build_role(StorageCommitmentPushModel, scu_role=True, scp_role=True)]
    ae.add_requested_context(StorageCommitmentPushModel)
    try:
        assoc = ae.associate("127.0.0.1", args.port, ae_title=args.called_aet,
                             ext_neg=ext_neg or None,
                             evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        if not assoc.is_established:
            emit(event="association", established=False)
            return 1
        status, _ = assoc.send_n_action(info, 1, StorageCommitmentPushModel, SC_INSTANCE)
        emit(event="n_action_rsp", status=int(status.Status) if "Status" in status else None)
        if args.report == "same":
            got.wait(20)
            assoc.release()
        else:
            assoc.release()
            got.wait(20)
        emit(event="done", report_received=got.is_set())
    finally:
        if server is not None:
            server.shutdown()
    return 0


def mpps_attributes() -> Dataset:
    ds = Dataset()
    ds.PatientName = "INTEROP^MPPS"
    ds.PatientID = "PID42"
    ds.Modality = "MR"
    ds.PerformedProcedureStepID = "PPS42"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepStartDate = "20240102"
    ds.PerformedProcedureStepStartTime = "101500"
    step = Dataset()
    step.AccessionNumber = "ACC42"
    step.StudyInstanceUID = "1.2.3.42"
    ds.ScheduledStepAttributesSequence = [step]
    return ds


def run_mpps_scu(args) -> int:
    ae = AE(ae_title=args.ae_title)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", args.port, ae_title=args.called_aet)
    if not assoc.is_established:
        emit(event="association", established=False)
        return 1
    status, reply = assoc.send_n_create(mpps_attributes(), ModalityPerformedProcedureStep,
                                        args.mpps_uid)
    emit(event="n_create_rsp", status=int(status.Status) if "Status" in status else None,
         data=reply.to_json_dict() if reply is not None else None)
    mod = Dataset()
    mod.PerformedProcedureStepStatus = "COMPLETED"
    mod.PerformedProcedureStepEndDate = "20240102"
    mod.PerformedProcedureStepEndTime = "103000"
    status, reply = assoc.send_n_set(mod, ModalityPerformedProcedureStep, args.mpps_uid,
                                     msg_id=2)
    emit(event="n_set_rsp", status=int(status.Status) if "Status" in status else None,
         data=reply.to_json_dict() if reply is not None else None)
    status, _ = assoc.send_n_set(mod, ModalityPerformedProcedureStep, args.mpps_uid, msg_id=3)
    emit(event="n_set_again_rsp", status=int(status.Status) if "Status" in status else None)
    assoc.release()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.scu == "commit":
        return run_commit_scu(args)
    if args.scu == "mpps":
        return run_mpps_scu(args)
    return run_scp(args)


if __name__ == "__main__":
    sys.exit(main())
