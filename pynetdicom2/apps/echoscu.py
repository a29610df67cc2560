"""``echoscu``: verify a peer with C-ECHO (PS3.4 A), as DCMTK's echoscu does."""

from __future__ import annotations

import argparse
from typing import List, Optional

from pynetdicom2 import sopclass, statuses, uids
from pynetdicom2.ae import ClientAE
from pynetdicom2.apps import common
from pynetdicom2.exceptions import NetDICOMError


class EchoClient(common.PhasedTimeouts, ClientAE):
    """The requesting AE of echoscu."""


def build_parser(prog: str = 'echoscu') -> argparse.ArgumentParser:
    parser = common.new_parser(prog, 'Verify a DICOM peer: send C-ECHO and print the status.')
    common.add_peer_arguments(parser, 'ECHOSCU')
    common.add_network_arguments(parser)
    parser.add_argument('--repeat', type=int, default=1, metavar='N',
                        help='send N C-ECHO requests on the association (default: 1)')
    parser.add_argument('--abort', action='store_true',
                        help='end with A-ABORT instead of releasing the association')
    common.add_tls_arguments(parser)
    return parser


def echo(args: argparse.Namespace, report=print) -> List[statuses.Status]:
    """Associate, send ``args.repeat`` C-ECHOs, release; the statuses received."""
    remote = common.remote_ae(args)
    client = common.prepare_client(
        EchoClient(args.calling_aet, max_pdu_length=args.max_pdu), args)
    client.add_scu(sopclass.verification_scu)
    found = []
    try:
        client.begin_request()
        with client.request_association(remote) as assoc:
            echo_scu = common.service(assoc, uids.VERIFICATION_SOP_CLASS,
                                      common.describe_peer(remote))
            for msg_id in range(1, max(args.repeat, 1) + 1):
                status = echo_scu(msg_id)
                report(f'C-ECHO to {common.describe_peer(remote)}: {status}')
                found.append(status)
            common.finish(assoc, args)
    except (NetDICOMError, OSError) as exc:
        raise common.explain(exc, common.describe_peer(remote), client) from exc
    return found


def main(argv: Optional[List[str]] = None, prog: str = 'echoscu') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)

    def job() -> int:
        report = (lambda text: None) if args.quiet else print
        found = echo(args, report)
        return common.EXIT_OK if all(s.is_success for s in found) else common.EXIT_FAILURE
    return common.execute(prog, job)
