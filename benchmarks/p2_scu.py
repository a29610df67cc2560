#!/usr/bin/env python3
"""pynetdicom2 SCU for the benchmark, through the public API only.

``store FILE...`` sends every file over ONE association; ``echo N`` opens N
associations one after another with one C-ECHO each; ``find`` runs one C-FIND and
reads every response. Prints one JSON line: the wall and CPU seconds of the
network work alone (interpreter start and imports excluded), and the counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydicom.dataset import Dataset  # noqa: E402

from pynetdicom2.ae import ClientAE  # noqa: E402
from pynetdicom2.sopclass import qr_find_scu, storage_scu, verification_scu  # noqa: E402
from pynetdicom2.uids import (  # noqa: E402
    CT_IMAGE_STORAGE, STUDY_ROOT_FIND_SOP_CLASS, VERIFICATION_SOP_CLASS)


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def store(ae: ClientAE, remote: dict, files: list) -> dict:
    ae.add_scu(storage_scu, [CT_IMAGE_STORAGE])
    ok = failed = 0
    with ae.request_association(remote) as assoc:
        send = assoc.get_scu(CT_IMAGE_STORAGE)
        for msg_id, path in enumerate(files, 1):
            if send(path, msg_id).is_success:
                ok += 1
            else:
                failed += 1
    return {'ok': ok, 'failed': failed}


def echo(ae: ClientAE, remote: dict, count: int) -> dict:
    ae.add_scu(verification_scu)
    ok = failed = 0
    for _ in range(count):
        with ae.request_association(remote) as assoc:
            if assoc.get_scu(VERIFICATION_SOP_CLASS)(1).is_success:
                ok += 1
            else:
                failed += 1
    return {'ok': ok, 'failed': failed}


def find(ae: ClientAE, remote: dict) -> dict:
    ae.add_scu(qr_find_scu, [STUDY_ROOT_FIND_SOP_CLASS])
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.PatientName = '*'
    query.PatientID = ''
    query.StudyInstanceUID = ''
    query.StudyDate = ''
    matches = 0
    final = None
    with ae.request_association(remote) as assoc:
        for identifier, status in assoc.get_scu(STUDY_ROOT_FIND_SOP_CLASS)(query, 1):
            if status.is_pending:
                matches += identifier is not None
            else:
                final = int(status)
    return {'ok': matches, 'failed': 0 if final == 0 else 1}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('action', choices=['store', 'echo', 'find'])
    p.add_argument('items', nargs='*', help='files (store) or the count (echo)')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--pdu', type=int, default=16384, help='our maximum PDU length')
    p.add_argument('--file-list', help='a file naming one file to store per line')
    p.add_argument('--called-aet', default='ANY-SCP')
    p.add_argument('--profile', metavar='FILE', help='cProfile the network work into FILE')
    args = p.parse_intermixed_args()
    logging.basicConfig(level=logging.WARNING)
    ae = ClientAE('P2SCU', max_pdu_length=args.pdu)
    ae.dcm_timeout = 60
    remote = {'aet': args.called_aet, 'address': args.host, 'port': args.port}
    files = list(args.items)
    if args.file_list:
        with open(args.file_list) as f:
            files += [line.strip() for line in f if line.strip()]
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
    start_wall, start_cpu = time.perf_counter(), cpu()
    if profiler is not None:
        profiler.enable()
    if args.action == 'store':
        result = store(ae, remote, files)
    elif args.action == 'echo':
        result = echo(ae, remote, int(files[0]))
    else:
        result = find(ae, remote)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    result.update(wall=time.perf_counter() - start_wall, cpu=cpu() - start_cpu,
                  rss=peak_rss_mib())
    print(json.dumps(result), flush=True)
    return 0 if result['failed'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
