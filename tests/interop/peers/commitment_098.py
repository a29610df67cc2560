#!/usr/bin/env python3
"""A storage commitment peer written for pynetdicom2 0.9.8, run as its own process under
the released 0.9.8 (its own virtual environment), for tests/interop/test_nservices_interop.

Both roles are 0.9.8-style AEs that serve ``StorageCommitment()`` and register
``storage_commitment_scu``, as a 0.9.8 script that requests commitment must:

* ``--role scu --port P``: listens, prints ``PORT <n>``, asks the SCP at P to commit
  ``--ref`` instances, then waits for ``on_commitment_response`` while it still holds
  the association, and prints one JSON line ``{"event": "result", ...}``;
* ``--role scp --dest-port D``: prints ``PORT <n>`` and commits every request, reporting
  to the requester's AE at D (``on_commitment_request``'s remote AE), until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from pynetdicom2 import applicationentity, sopclass, uids

WAIT = 20  # seconds any wait here lasts at most


def emit(**record) -> None:
    print(json.dumps(record, sort_keys=True, default=str), flush=True)


def listening_port(ae) -> int:
    return getattr(ae, 'server', ae).server_address[1]


class OldStyleAE(applicationentity.AE):
    """What a 0.9.8 script writes: hooks overridden on an AE subclass."""

    dest_port = 0

    def __init__(self, title):
        super().__init__(title, 0)
        self.dcm_timeout = 10
        self.add_scp(sopclass.StorageCommitment())
        self.add_scu(sopclass.storage_commitment_scu)
        self.reports = []
        self.arrived = threading.Event()

    def on_commitment_request(self, remote_aet, uids_):
        requested = [(str(c), str(i)) for c, i in uids_]
        emit(event='commitment request', remote_aet=remote_aet, uids=requested)
        return ({'aet': remote_aet, 'address': '127.0.0.1', 'port': self.dest_port},
                requested, [])

    def on_commitment_response(self, transaction_uid, success, failure):
        self.reports.append({'transaction_uid': str(transaction_uid),
                             'success': [[str(c), str(i)] for c, i in success],
                             'failure': [[str(c), str(i), int(r)] for c, i, r in failure]})
        self.arrived.set()


def run_scu(args) -> None:
    ae = OldStyleAE('OLD_SCU')
    refs = [tuple(ref.split(':', 1)) for ref in args.ref]
    seen = {}
    with ae:
        print(f'PORT {listening_port(ae)}', flush=True)
        remote = {'aet': 'OUR_SCP', 'address': '127.0.0.1', 'port': args.port}
        try:
            with ae.request_association(remote) as assoc:
                service = assoc.get_scu(uids.STORAGE_COMMITMENT_SOP_CLASS)
                seen['n_action_status'] = int(service(args.transaction_uid, refs, 1))
                # The 0.9.8 way: wait for the report while the association is held.
                seen['report_arrived'] = ae.arrived.wait(WAIT)
        except Exception as exc:  # an observation, printed below
            seen['error'] = f'{type(exc).__name__}: {exc}'
        seen['reports'] = ae.reports
    emit(event='result', **seen)


def run_scp(args) -> None:
    ae = OldStyleAE('OLD_SCP')
    ae.dest_port = args.dest_port
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ae:
        print(f'PORT {listening_port(ae)}', flush=True)
        stop.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--role', choices=['scu', 'scp'], required=True)
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--dest-port', type=int, default=0)
    parser.add_argument('--transaction-uid', default='1.2.826.0.1.3680043.2.1125.77')
    parser.add_argument('--ref', action='append', default=[], help='CLASS:INSTANCE')
    args = parser.parse_args()
    (run_scu if args.role == 'scu' else run_scp)(args)


if __name__ == '__main__':
    main()
