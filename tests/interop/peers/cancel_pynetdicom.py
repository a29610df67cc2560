"""pynetdicom 3 peer for C-CANCEL tests; run as its own process, never imported.

--scp: a Study Root C-FIND SCP yielding up to --matches identifiers, stopping when the
       requester cancels; prints PORT <n>, then one JSON line when a search ends.
--scu: a C-FIND SCU that cancels after --cancel-after matches, then reads the final
       status and does a C-ECHO on the same association; prints one JSON line.
"""

import argparse
import json
import sys
import time

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

FIND = StudyRootQueryRetrieveInformationModelFind


def run_scp(args):
    def on_find(event):
        sent = 0
        for number in range(args.matches):
            if event.is_cancelled:
                print(json.dumps({'cancelled_after': sent}), flush=True)
                yield 0xFE00, None
                return
            match = Dataset()
            match.QueryRetrieveLevel = 'STUDY'
            match.StudyInstanceUID = f'1.2.3.{number}'
            sent += 1
            yield 0xFF00, match
            time.sleep(0.01)   # leaves room for the cancel to arrive
        print(json.dumps({'completed': sent}), flush=True)

    ae = AE(ae_title='CANCEL_SCP')
    ae.add_supported_context(FIND)
    ae.add_supported_context(Verification)
    server = ae.start_server(('127.0.0.1', 0), block=False,
                             evt_handlers=[(evt.EVT_C_FIND, on_find)])
    print(f'PORT {server.server_address[1]}', flush=True)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    server.shutdown()


def run_scu(args):
    ae = AE(ae_title='CANCEL_SCU')
    ae.add_requested_context(FIND)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = 10
    assoc = ae.associate('127.0.0.1', args.port, ae_title=args.called_aet)
    if not assoc.is_established:
        print(json.dumps({'association': 'failed'}), flush=True)
        return 2
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = ''
    matches, final = 0, None
    msg_id = 7
    for status, _ in assoc.send_c_find(query, FIND, msg_id=msg_id):
        if status is None:
            break
        if status.Status in (0xFF00, 0xFF01):
            matches += 1
            if matches == args.cancel_after:
                context_id = assoc._get_valid_context(FIND, '', 'scu').context_id
                assoc.send_c_cancel(msg_id, context_id)
        else:
            final = status.Status
    echo = assoc.send_c_echo()
    assoc.release()
    print(json.dumps({'matches': matches, 'final': final,
                      'echo': echo.Status if echo else None}), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--scp', action='store_true')
    parser.add_argument('--scu', action='store_true')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--called-aet', default='ANY-SCP')
    parser.add_argument('--matches', type=int, default=10000)
    parser.add_argument('--cancel-after', type=int, default=5)
    parser.add_argument('--max-seconds', type=float, default=60)
    args = parser.parse_args()
    if args.scp:
        run_scp(args)
        return 0
    return run_scu(args)


if __name__ == '__main__':
    sys.exit(main())
