#!/usr/bin/env python3
"""pynetdicom2 SCP for the benchmark: verification, storage and (optionally) C-FIND.

Storage modes: ``ignore`` (data sets stream into a file object that drops every
write), ``bytes`` (storage classes taken out of ``store_in_file``: each data set
arrives in memory), ``tempfile`` (the AE's default ``get_file``: a temporary Part-10
file) and ``write`` (``StorageAE``: ``<dir>/<SOPInstanceUID>.dcm``). Prints
``PORT <n>`` once listening and serves until SIGTERM; ``--workers N`` serves with N
worker processes (benchmarks/concurrency.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydicom.dataset import Dataset  # noqa: E402

from pynetdicom2 import statuses  # noqa: E402
from pynetdicom2.ae import AE, StorageAE  # noqa: E402
from pynetdicom2.sopclass import qr_find_scp, storage_scp, verification_scp  # noqa: E402


class NullFile:
    """A writable binary file that keeps nothing: the SCP's "ignore" sink."""

    def __init__(self) -> None:
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        n = len(data)
        self.size += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        return b''

    def close(self) -> None:
        self.closed = True


def build_matches(count: int) -> list:
    """The C-FIND matches, built once so the handler costs nothing per response."""
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


def make_ae(args: argparse.Namespace) -> AE:
    matches = build_matches(args.find_matches) if args.find_matches else []

    class Hooks:
        def on_receive_store(self, context, ds):
            return statuses.SUCCESS

        def on_receive_find(self, context, ds):
            for match in matches:
                yield match, 0xFF00

    if args.mode == 'write':
        class BenchAE(StorageAE):
            # As a 0.9.x user writes it: the hook returns the status itself.
            def on_receive_store(self, context, ds):
                return statuses.SUCCESS

            def on_receive_find(self, context, ds):
                return Hooks.on_receive_find(self, context, ds)
        ae = BenchAE(args.dir, args.ae_title, 0, max_pdu_length=args.pdu,
                     bind_address='127.0.0.1')
    else:
        class BenchAE(Hooks, AE):
            if args.mode == 'ignore':
                def get_file(self, context, command_set):
                    return NullFile(), 0
        ae = BenchAE(args.ae_title, 0, max_pdu_length=args.pdu, bind_address='127.0.0.1')
        ae.add_scp(verification_scp)
        ae.add_scp(storage_scp)
        if args.mode == 'bytes':
            ae.store_in_file.clear()
    if args.find_matches:
        ae.add_scp(qr_find_scp)
    ae.dcm_timeout = 60
    ae.workers = args.workers
    if args.profile:
        profile_associations(ae, args.profile)
    return ae


def profile_associations(ae: AE, path: str) -> None:
    """Run every association under one cProfile profiler; stats go to ``path``.

    The benchmark's associations come one after another, so one profiler will do;
    the stats are written after each association (the process ends by SIGTERM).
    """
    import cProfile
    profiler = cProfile.Profile()
    serve = ae.serve_association

    def profiled(sock, client_address):
        profiler.enable()
        try:
            serve(sock, client_address)
        finally:
            profiler.disable()
            profiler.dump_stats(path)

    ae.serve_association = profiled


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--mode', choices=['ignore', 'bytes', 'tempfile', 'write'],
                   default='ignore')
    p.add_argument('--dir', help='storage folder for --mode write')
    p.add_argument('--pdu', type=int, default=16384, help='our maximum PDU length')
    p.add_argument('--find-matches', type=int, default=0)
    p.add_argument('--ae-title', default='ANY-SCP')
    p.add_argument('--max-seconds', type=float, default=3600)
    p.add_argument('--profile', metavar='FILE', help='cProfile the associations into FILE')
    p.add_argument('--workers', type=int, default=1,
                   help='worker processes sharing the port (AE.workers; default 1)')
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ae = make_ae(args)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with ae:
        print(f'PORT {ae.local_ae.port}', flush=True)
        done.wait(args.max_seconds)
    return 0


if __name__ == '__main__':
    sys.exit(main())
