"""``movescu``: ask a peer to send the matches of a query to a destination (C-MOVE,
PS3.4 C.4.2). With ``--port`` it also receives them itself, into ``-od``."""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import List, Optional

from pynetdicom2 import dimse, sopclass, uids
from pynetdicom2.ae import ClientAE
from pynetdicom2.apps import common, findscu, syntaxes
from pynetdicom2.apps.storescp import StorageSCP
from pynetdicom2.exceptions import NetDICOMError

logger = logging.getLogger(__name__)

MOVE_MODELS = {
    'patient': uids.PATIENT_ROOT_MOVE_SOP_CLASS,
    'study': uids.STUDY_ROOT_MOVE_SOP_CLASS,
    'psonly': uids.PATIENT_STUDY_ONLY_MOVE_SOP_CLASS,
}


class MoveClient(common.PhasedTimeouts, ClientAE):
    """The requesting AE of movescu."""


def build_parser(prog: str = 'movescu') -> argparse.ArgumentParser:
    parser = common.new_parser(
        prog, 'Ask a DICOM peer to send the matches of a query to a destination (C-MOVE).')
    common.add_peer_arguments(parser, 'MOVESCU')
    parser.add_argument('-aem', '--move', dest='move_destination', type=common.ae_title,
                        metavar='AET', help='move destination AE title (default: our -aet)')
    findscu.add_model_arguments(parser, worklist=False, default='patient')
    syntaxes.add_propose_arguments(parser, title='proposed transmission transfer syntaxes '
                                   '(the C-MOVE itself)')
    syntaxes.add_accept_arguments(
        parser, title='preferred network transfer syntaxes (receiving with +P)',
        default="every syntax; a received instance keeps the sender's first choice")
    group = parser.add_argument_group('receiving (optional)')
    group.add_argument('+P', '--port', dest='listen_port', type=common.port_number,
                       metavar='PORT',
                       help='receive the instances ourselves on this port (the peer must '
                       'know our -aet at this port)')
    group.add_argument('-od', '--output-directory', dest='output', default='.',
                       metavar='DIR', help='where received instances go (default: .)')
    group.add_argument('--study-folders', action='store_true',
                       help='one folder per study under -od')
    group.add_argument('--ignore', action='store_true',
                       help='receive the instances (+P) and answer success, but keep '
                       'nothing')
    parser.add_argument(
        '--cancel', type=common.positive_count, metavar='N',
        help='send C-CANCEL after N pending responses; the final response (usually '
        'Cancel, 0xFE00) is still shown')
    common.add_network_arguments(parser)
    common.add_association_arguments(parser, 'send each C-MOVE')
    common.add_tls_arguments(parser)
    return parser


def model_of(args: argparse.Namespace) -> str:
    """-P, -S or -O; patient root when none is given, as DCMTK's movescu."""
    return args.model or 'patient'


def _receiver(args: argparse.Namespace) -> StorageSCP:
    """The storage SCP (``--port``) taking the instances moved to us."""
    try:
        receiver = StorageSCP(args.output, args.calling_aet, args.listen_port,
                              syntaxes.accepted(args), args.max_pdu)
    except OSError as exc:
        raise common.ToolError(f'cannot listen on port {args.listen_port}: '
                               f'{exc.strerror or exc}', common.EXIT_LOCAL) from exc
    receiver.study_folders = args.study_folders
    receiver.prefer_proposed_ts_for_storage = syntaxes.keeps_senders_choice(args)
    receiver.discard = args.ignore
    receiver.artim_timeout = args.acse_timeout
    receiver.dcm_timeout = args.dimse_timeout
    receiver.context = common.tls_context(args, 'server') if args.tls else None
    return receiver


def _move_one(move_scu, query, destination: str, msg_id: int, report,
              cancel=None) -> bool:
    """One C-MOVE; reports its final counts; True when every sub-operation succeeded
    (or, when ``cancel`` = (N, send) asked for it, the move was cancelled)."""
    final = None
    pending = 0
    for status, rsp in move_scu(query, destination, msg_id):
        if status.is_pending:
            logger.info('C-MOVE pending: %s remaining, %s completed, %s failed, %s warning',
                        rsp.num_of_remaining_sub_ops, rsp.num_of_completed_sub_ops,
                        rsp.num_of_failed_sub_ops, rsp.num_of_warning_sub_ops)
            pending += 1
            if cancel is not None and pending == cancel[0]:
                # PS3.7 9.3.2.3: C-CANCEL-RQ names the C-MOVE-RQ's message ID; the
                # peer still ends with a final response, read as any other.
                logger.info('cancelling after %d pending response(s) (--cancel)', pending)
                cancel[1](msg_id)
        final = (status, rsp)
    if final is None:
        raise common.ToolError('C-MOVE ended without a final response')
    status, rsp = final
    comment = f' ({rsp.error_comment})' if rsp.error_comment else ''
    report(f'C-MOVE to {destination}: {status}{comment}; completed '
           f'{rsp.num_of_completed_sub_ops or 0}, failed {rsp.num_of_failed_sub_ops or 0}, '
           f'warning {rsp.num_of_warning_sub_ops or 0}')
    if status.is_success and rsp.num_of_completed_sub_ops == 0 and not (
            rsp.num_of_failed_sub_ops or rsp.num_of_warning_sub_ops):
        logger.warning('no instance matched %s', findscu.describe_keys(query))
    if status.is_cancel and cancel is not None:
        return not rsp.num_of_failed_sub_ops    # what we asked for
    return not (status.is_failure or status.is_cancel or (rsp.num_of_failed_sub_ops or 0))


def _canceller(assoc, sop_class: str):
    """A function sending C-CANCEL-RQ for a message ID on ``sop_class``'s context."""
    [context_id] = [ctx.id for ctx in assoc.accepted_contexts.values()
                    if ctx.sop_class == sop_class][:1]

    def cancel(msg_id: int) -> None:
        request = dimse.CCancelRQMessage()
        request.message_id_being_responded_to = msg_id
        assoc.send(request, context_id)
    return cancel


def move(args: argparse.Namespace, report=print) -> int:
    """Run the C-MOVE(s); report the final counts; return the exit code."""
    if args.ignore and args.listen_port is None:
        raise common.ToolError('--ignore needs +P: without it movescu receives nothing',
                               common.EXIT_USAGE)
    queries = findscu.identifiers(args)
    for query in queries:
        if 'QueryRetrieveLevel' not in query:
            query.QueryRetrieveLevel = 'STUDY' if model_of(args) != 'patient' else 'PATIENT'
    remote = common.remote_ae(args)
    sop_class = MOVE_MODELS[model_of(args)]
    client = common.prepare_client(
        MoveClient(args.calling_aet, syntaxes.proposed(args), max_pdu_length=args.max_pdu),
        args)
    client.add_scu(sopclass.qr_move_scu, [sop_class])
    destination = args.move_destination or args.calling_aet
    failed = False
    with contextlib.ExitStack() as stack:
        if args.listen_port is not None:
            stack.enter_context(_receiver(args))
        try:
            client.begin_request()
            with client.request_association(remote, sop_classes=[sop_class]) as assoc:
                move_scu = common.service(assoc, sop_class, common.describe_peer(remote))
                cancel = None if args.cancel is None else (
                    args.cancel, _canceller(assoc, sop_class))
                repeated = [q for q in queries for _ in range(args.repeat)]
                for msg_id, query in enumerate(repeated, start=1):
                    failed |= not _move_one(move_scu, query, destination, msg_id, report,
                                            cancel)
                common.finish(assoc, args)
        except (NetDICOMError, OSError) as exc:
            raise common.explain(exc, common.describe_peer(remote), client) from exc
    return common.EXIT_FAILURE if failed else common.EXIT_OK


def main(argv: Optional[List[str]] = None, prog: str = 'movescu') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)
    report = (lambda text: None) if args.quiet else print
    return common.execute(prog, lambda: move(args, report))
