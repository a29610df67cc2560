#!/usr/bin/env python3
"""A pynetdicom 3 peer for interoperability tests: an SCP (default) or a one-shot SCU.

Run it as its own process so pynetdicom and pynetdicom2 never share one. As an SCP it
prints ``PORT <n>`` once listening; as an SCU it prints one JSON line per response.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import (
    ALL_TRANSFER_SYNTAXES, DEFAULT_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts,
    BasicWorklistManagementPresentationContexts, ModalityPerformedPresentationContexts,
    QueryRetrievePresentationContexts, StorageCommitmentPresentationContexts, evt,
)
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind, PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind, Verification,
)

FIND_MODELS = {
    "patient": PatientRootQueryRetrieveInformationModelFind,
    "study": StudyRootQueryRetrieveInformationModelFind,
    "worklist": ModalityWorklistInformationFind,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    status = lambda text: int(text, 0)  # noqa: E731  "0xC000" or "49152"
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ae-title", help="our AE title (PYNETDICOM, or PYNETDICOM_SCU with --scu)")
    p.add_argument("--port", type=int, default=0, help="SCP port; 0 picks a free one")
    p.add_argument("--max-seconds", type=float, default=120, help="SCP exits after this")
    p.add_argument("--require-called-aet", action="store_true")
    p.add_argument("--require-calling-aet", metavar="AET")
    p.add_argument("--abort-on-echo", action="store_true")
    p.add_argument("--release-on-echo", action="store_true")
    p.add_argument("--echo-status", type=status, default=0x0000)
    p.add_argument("--storage-dir", type=Path)
    p.add_argument("--store-status", type=status, help="C-STORE status; default 0x0000")
    p.add_argument("--find-responses", type=int)
    p.add_argument("--accept-all-contexts", action="store_true")
    p.add_argument("--log-file", type=Path, help="pynetdicom's debug log")
    p.add_argument("--user-identity-log", type=Path)
    p.add_argument("--scu", choices=["echo", "store", "find"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--called-aet", default="ANY-SCP")
    p.add_argument("--file", type=Path)
    p.add_argument("--query-key", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--find-model", choices=sorted(FIND_MODELS), default="study")
    args = p.parse_args(argv)
    if args.ae_title is None:
        args.ae_title = "PYNETDICOM_SCU" if args.scu else "PYNETDICOM"
    return args


# ---------------------------------------------------------------- SCP handlers
# Association.release() called in a handler hangs (pynetdicom 3.0.4: it waits for the
# reactor thread, which is running the handler), and from a thread started there it
# overtakes the C-ECHO-RSP. So release from a new thread once a P-DATA-TF (the
# response) has been written to the socket.
RELEASE_AFTER_RESPONSE: set = set()


def handle_echo(event, args):
    if args.abort_on_echo:
        event.assoc.abort()  # non-blocking inside a handler (pynetdicom 3)
    if args.release_on_echo:
        RELEASE_AFTER_RESPONSE.add(event.assoc)
    return args.echo_status


def handle_pdu_sent(event):
    if isinstance(event.pdu, P_DATA_TF) and event.assoc in RELEASE_AFTER_RESPONSE:
        RELEASE_AFTER_RESPONSE.discard(event.assoc)
        threading.Thread(target=event.assoc.release, daemon=True).start()


def handle_store(event, args):
    if args.storage_dir is not None:
        ds = event.dataset
        ds.file_meta = event.file_meta
        ds.save_as(args.storage_dir / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return 0x0000 if args.store_status is None else args.store_status


def handle_find(event, args):
    for i in range(args.find_responses):
        if event.is_cancelled:
            yield 0xFE00, None
            return
        match = Dataset()
        match.update(event.identifier)
        match.PatientName = f"PATIENT^{i}"
        match.PatientID = str(i)
        yield 0xFF00, match


def handle_user_id(event, args):
    def text(value):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    record = {"type": event.user_id_type, "primary": text(event.primary_field),
              "secondary": text(event.secondary_field)}
    with open(args.user_identity_log, "a") as log:
        log.write(json.dumps(record) + "\n")
    return True, None


def run_scp(args: argparse.Namespace) -> int:
    ae = AE(ae_title=args.ae_title)
    ae.require_called_aet = args.require_called_aet
    if args.require_calling_aet:
        ae.require_calling_aet = [args.require_calling_aet]
    ae.add_supported_context(Verification, DEFAULT_TRANSFER_SYNTAXES)
    # Roles accepted as proposed, so a C-GET requester may act as Storage SCP.
    if args.storage_dir or args.store_status is not None or args.accept_all_contexts:
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES,
                                     scu_role=True, scp_role=True)
    if args.find_responses is not None:
        for uid in FIND_MODELS.values():
            ae.add_supported_context(uid, DEFAULT_TRANSFER_SYNTAXES)
    if args.accept_all_contexts:
        for cx in (QueryRetrievePresentationContexts + StorageCommitmentPresentationContexts
                   + ModalityPerformedPresentationContexts
                   + BasicWorklistManagementPresentationContexts):
            ae.add_supported_context(cx.abstract_syntax, DEFAULT_TRANSFER_SYNTAXES)

    handlers = [(evt.EVT_C_ECHO, handle_echo, [args]), (evt.EVT_C_STORE, handle_store, [args])]
    if args.release_on_echo:
        handlers.append((evt.EVT_PDU_SENT, handle_pdu_sent))
    if args.find_responses is not None:
        handlers.append((evt.EVT_C_FIND, handle_find, [args]))
    if args.user_identity_log is not None:
        handlers.append((evt.EVT_USER_ID, handle_user_id, [args]))

    server = ae.start_server(("127.0.0.1", args.port), block=False, evt_handlers=handlers)
    print(f"PORT {server.server_address[1]}", flush=True)
    threading.Event().wait(args.max_seconds)
    ae.shutdown()
    return 0


# ---------------------------------------------------------------- SCU mode
def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def association_failed(assoc) -> int:
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        emit(association="rejected", result=rsp.result, source=rsp.result_source,
             reason=rsp.diagnostic,
             text=f"{rsp.result_str}; {rsp.source_str}; {rsp.reason_str}")
    elif assoc.is_aborted:
        emit(association="aborted")
    else:
        emit(association="failed", text="no association (connection refused or timed out?)")
    return 2


def query_identifier(args: argparse.Namespace) -> Dataset:
    ds = Dataset()
    for pair in args.query_key:
        keyword, _, value = pair.partition("=")
        setattr(ds, keyword, value)
    if args.find_model != "worklist" and "QueryRetrieveLevel" not in ds:
        ds.QueryRetrieveLevel = "STUDY"
    return ds


def run_scu(args: argparse.Namespace) -> int:
    ae = AE(ae_title=args.ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    if args.scu == "echo":
        ae.add_requested_context(Verification)
    elif args.scu == "store":
        dataset = dcmread(args.file)
        ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    else:
        ae.add_requested_context(FIND_MODELS[args.find_model])

    assoc = ae.associate(args.host, args.port, ae_title=args.called_aet)
    if not assoc.is_established:
        return association_failed(assoc)
    try:
        if args.scu == "echo":
            responses = [(assoc.send_c_echo(), None)]
        elif args.scu == "store":
            responses = [(assoc.send_c_store(dataset), None)]
        else:
            responses = assoc.send_c_find(query_identifier(args), FIND_MODELS[args.find_model])
        final = None
        for status, identifier in responses:
            final = status.get("Status")  # an empty status: no response, aborted or timed out
            fields = {"status": final}
            if identifier is not None:
                fields["PatientName"] = str(identifier.get("PatientName", ""))
                fields["PatientID"] = identifier.get("PatientID", "")
            if final is None:
                fields["aborted"] = assoc.is_aborted
            emit(**fields)
        return 0 if final == 0x0000 else 1
    finally:
        if assoc.is_established:
            assoc.release()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.log_file is not None:
        handler = logging.FileHandler(args.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(message)s"))
        logger = logging.getLogger("pynetdicom")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    if args.scu:
        if args.port == 0:
            sys.exit("--scu needs --port")
        return run_scu(args)
    return run_scp(args)


if __name__ == "__main__":
    sys.exit(main())
