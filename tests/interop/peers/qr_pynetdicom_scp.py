#!/usr/bin/env python3
"""A pynetdicom 3 Query/Retrieve SCP for interoperability tests: C-GET and C-MOVE.

Serves every ``*.dcm`` file of ``--files-dir`` as the match of any C-GET or C-MOVE
request. C-MOVE destinations are given as ``--move-dest AET=HOST:PORT``; any other
destination is unknown (0xA801). Prints ``PORT <n>`` once listening and appends one
JSON line per request received to ``--request-log`` when given.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage, MRImageStorage, PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove, Verification,
)

RETRIEVE_MODELS = [PatientRootQueryRetrieveInformationModelGet,
                   StudyRootQueryRetrieveInformationModelGet,
                   PatientRootQueryRetrieveInformationModelMove,
                   StudyRootQueryRetrieveInformationModelMove]
STORAGE = [CTImageStorage, MRImageStorage]
NATIVE_TS = ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2']


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--ae-title', default='PYNETDICOM_QR')
    p.add_argument('--max-seconds', type=float, default=120)
    p.add_argument('--files-dir', type=Path, required=True)
    p.add_argument('--move-dest', action='append', default=[], metavar='AET=HOST:PORT')
    p.add_argument('--request-log', type=Path)
    args = p.parse_args(argv)
    args.destinations = {}
    for entry in args.move_dest:
        aet, _, where = entry.partition('=')
        host, _, port = where.rpartition(':')
        args.destinations[aet] = (host, int(port))
    return args


def matches(args):
    return [dcmread(path) for path in sorted(args.files_dir.glob('*.dcm'))]


def log_request(args, event, **extra) -> None:
    if args.request_log is None:
        return
    record = {'sop_class': str(event.context.abstract_syntax),
              'QueryRetrieveLevel': event.identifier.get('QueryRetrieveLevel', ''),
              'calling_aet': event.assoc.requestor.ae_title, **extra}
    with open(args.request_log, 'a') as log:
        log.write(json.dumps(record) + '\n')


def sub_operations(event, args):
    """What a pynetdicom C-GET / C-MOVE handler yields after its first item(s)."""
    found = matches(args)
    yield len(found)
    for ds in found:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        yield 0xFF00, ds


def handle_get(event, args):
    log_request(args, event)
    yield from sub_operations(event, args)


def handle_move(event, args):
    log_request(args, event, move_destination=event.move_destination.strip())
    where = args.destinations.get(event.move_destination.strip())
    if where is None:
        yield None, None
        return
    yield where[0], where[1]
    yield from sub_operations(event, args)


def main(argv=None) -> int:
    args = parse_args(argv)
    ae = AE(ae_title=args.ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_supported_context(Verification)
    for uid in RETRIEVE_MODELS:
        ae.add_supported_context(uid)
    for uid in STORAGE:
        # C-GET: the requester acts as Storage SCP on this association (PS3.4 C.5.3).
        ae.add_supported_context(uid, NATIVE_TS, scu_role=False, scp_role=True)
        # C-MOVE: our sub-association to the destination proposes these.
        ae.add_requested_context(uid, NATIVE_TS)
    handlers = [(evt.EVT_C_GET, handle_get, [args]), (evt.EVT_C_MOVE, handle_move, [args])]
    server = ae.start_server(('127.0.0.1', 0), block=False, evt_handlers=handlers)
    print(f'PORT {server.server_address[1]}', flush=True)
    threading.Event().wait(args.max_seconds)
    ae.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
