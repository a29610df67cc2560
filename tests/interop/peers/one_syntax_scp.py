#!/usr/bin/env python3
"""A pynetdicom 3 storage SCP accepting every storage SOP class in the given transfer
syntaxes only; each data set is written as received (no re-encoding) to
``<dir>/<SOP Instance UID>.dcm`` with its context's transfer syntax in the file meta.

Run it as its own process; it prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification


def handle_store(event, out: Path) -> int:
    uid = str(event.request.AffectedSOPInstanceUID)
    with open(out / f"{uid}.dcm", "wb") as fp:
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, event.file_meta, enforce_standard=True)
        fp.write(event.request.DataSet.getvalue())
    return 0x0000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("storage_dir", type=Path)
    parser.add_argument("transfer_syntax", nargs="+")
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    ae = AE(ae_title="ONE_SYNTAX")
    ae.add_supported_context(Verification)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, args.transfer_syntax)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
        (evt.EVT_C_STORE, handle_store, [args.storage_dir])])
    print(f"PORT {server.server_address[1]}", flush=True)
    threading.Event().wait(args.max_seconds)
    ae.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
