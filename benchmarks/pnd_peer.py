#!/usr/bin/env python3
"""pynetdicom 3 peer for the benchmark, with the settings that make it fastest.

``scp`` serves verification, CT storage and study-root C-FIND: ``--mode ignore``
answers without decoding (data set in memory), ``--mode write`` streams to a
temporary file (``STORE_RECV_CHUNKED_DATASET``) and renames it into ``--dir``.
``scu store|echo|find`` mirrors benchmarks/p2_scu.py, sending files as they are on
disk (``STORE_SEND_CHUNKED_DATASET``). Every socket gets TCP_NODELAY.
Runs as its own process: pynetdicom and pynetdicom2 never share one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification

EXPLICIT_LE = '1.2.840.10008.1.2.1'
IMPLICIT_LE = '1.2.840.10008.1.2'

_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_REQUEST_IDENTIFIERS = False


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def nodelay(event) -> None:
    sock = getattr(getattr(event.assoc.dul, 'socket', None), 'socket', None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def build_matches(count: int) -> list:
    matches = []
    for i in range(count):
        ds = Dataset()
        ds.QueryRetrieveLevel = 'STUDY'
        ds.PatientName = f'PATIENT^{i}'
        ds.PatientID = str(i)
        ds.StudyInstanceUID = f'1.2.826.0.1.3680043.8.498.{i + 1}'
        ds.StudyDate = '20240101'
        matches.append(ds)
    return matches


def run_scp(args: argparse.Namespace) -> int:
    ae = AE(ae_title='ANY-SCP')
    ae.maximum_pdu_size = args.pdu
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 60
    ae.maximum_associations = 10
    syntaxes = [EXPLICIT_LE, IMPLICIT_LE]
    ae.add_supported_context(Verification, syntaxes)
    ae.add_supported_context(CTImageStorage, syntaxes)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind, syntaxes)
    matches = build_matches(args.find_matches)

    if args.mode == 'write':
        _config.STORE_RECV_CHUNKED_DATASET = True

    def on_store(event):
        if args.mode == 'write':
            uid = event.request.AffectedSOPInstanceUID
            os.replace(event.dataset_path, os.path.join(args.dir, f'{uid}.dcm'))
        return 0x0000

    def on_find(event):
        for match in matches:
            yield 0xFF00, match

    handlers = [(evt.EVT_CONN_OPEN, nodelay), (evt.EVT_C_STORE, on_store),
                (evt.EVT_C_FIND, on_find)]
    server = ae.start_server(('127.0.0.1', 0), block=False, evt_handlers=handlers)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f'PORT {server.server_address[1]}', flush=True)
    done.wait(args.max_seconds)
    ae.shutdown()
    return 0


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_scu(args: argparse.Namespace) -> int:
    ae = AE(ae_title='PNDSCU')
    ae.maximum_pdu_size = args.pdu
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 60
    handlers = [(evt.EVT_CONN_OPEN, nodelay)]
    files = list(args.items)
    if args.file_list:
        with open(args.file_list) as f:
            files += [line.strip() for line in f if line.strip()]
    if args.action == 'store':
        _config.STORE_SEND_CHUNKED_DATASET = True
        ae.add_requested_context(CTImageStorage, EXPLICIT_LE)
    elif args.action == 'echo':
        ae.add_requested_context(Verification)
    else:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind, EXPLICIT_LE)
    ok = failed = 0
    start_wall, start_cpu = time.perf_counter(), cpu()
    if args.action == 'echo':
        for _ in range(int(files[0])):
            assoc = ae.associate(args.host, args.port, ae_title='ANY-SCP', evt_handlers=handlers)
            if not assoc.is_established:
                failed += 1
                break
            status = assoc.send_c_echo()
            ok += bool(status) and status.Status == 0
            failed += not (bool(status) and status.Status == 0)
            assoc.release()
    else:
        assoc = ae.associate(args.host, args.port, ae_title='ANY-SCP', evt_handlers=handlers)
        if not assoc.is_established:
            print(json.dumps({'ok': 0, 'failed': 1, 'error': 'association failed'}))
            return 1
        if args.action == 'store':
            for path in files:
                status = assoc.send_c_store(path)
                if status and status.Status == 0:
                    ok += 1
                else:
                    failed += 1
        else:
            query = Dataset()
            query.QueryRetrieveLevel = 'STUDY'
            query.PatientName = '*'
            query.PatientID = ''
            query.StudyInstanceUID = ''
            query.StudyDate = ''
            final = None
            for status, identifier in assoc.send_c_find(
                    query, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    final = -1
                    break
                if status.Status in (0xFF00, 0xFF01):
                    ok += identifier is not None
                else:
                    final = status.Status
            failed += final != 0
        assoc.release()
    print(json.dumps({'ok': ok, 'failed': failed, 'wall': time.perf_counter() - start_wall,
                      'cpu': cpu() - start_cpu, 'rss': peak_rss_mib()}), flush=True)
    return 0 if failed == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('role', choices=['scp', 'scu'])
    p.add_argument('action', nargs='?', choices=['store', 'echo', 'find'])
    p.add_argument('items', nargs='*')
    p.add_argument('--mode', choices=['ignore', 'write'], default='ignore')
    p.add_argument('--dir')
    p.add_argument('--pdu', type=int, default=16384)
    p.add_argument('--find-matches', type=int, default=0)
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--file-list')
    p.add_argument('--max-seconds', type=float, default=3600)
    args = p.parse_intermixed_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger('pynetdicom').setLevel(logging.CRITICAL)
    if args.role == 'scp':
        return run_scp(args)
    return run_scu(args)


if __name__ == '__main__':
    sys.exit(main())
