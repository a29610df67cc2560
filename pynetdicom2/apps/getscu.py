"""``getscu``: retrieve the matches of a query over the same association (C-GET,
PS3.4 C.4.3) into the ``-od`` directory.

The association proposes the GET model and, with the SCP role (PS3.7 D.3.3.4), up to
127 storage SOP classes for the instances coming back: the common ones first, or
those named with ``--sop-class``. Every transfer syntax is proposed for them, so an
archive sends what it holds as it is (``+x?`` switches choose others): for the
common classes and those named, the compressed syntaxes in a context of their own
beside the uncompressed ones; for the others, the uncompressed ones only.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import List, Optional, Tuple

from pynetdicom2 import sopclass, transcode, uids
from pynetdicom2.ae import ClientAE
from pynetdicom2.apps import common, findscu, syntaxes
from pynetdicom2.apps.filestore import ReceivedFiles
from pynetdicom2.apps.storescp import UNCOMPRESSED_TS
from pynetdicom2.exceptions import NetDICOMError

logger = logging.getLogger(__name__)

GET_MODELS = {
    'patient': uids.PATIENT_ROOT_GET_SOP_CLASS,
    'study': uids.STUDY_ROOT_GET_SOP_CLASS,
    'psonly': uids.PATIENT_STUDY_ONLY_GET_SOP_CLASS,
}
# Proposed first: the storage SOP classes met most often (PS3.4 B.5).
COMMON_STORAGE = [
    uids.CT_IMAGE_STORAGE, uids.MR_IMAGE_STORAGE, uids.COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
    uids.DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids.DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids.ULTRASOUND_IMAGE_STORAGE, uids.ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
    uids.SECONDARY_CAPTURE_IMAGE_STORAGE, uids.NUCLEAR_MEDICINE_IMAGE_STORAGE,
    uids.POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE, uids.X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE,
    uids.ENHANCED_CT_IMAGE_STORAGE, uids.ENHANCED_MR_IMAGE_STORAGE,
    uids.BASIC_TEXT_SR_STORAGE, uids.ENHANCED_SR_STORAGE, uids.COMPREHENSIVE_SR_STORAGE,
    uids.ENCAPSULATED_PDF_STORAGE, uids.RT_IMAGE_STORAGE, uids.RT_DOSE_STORAGE,
    uids.RT_STRUCTURE_SET_STORAGE, uids.RT_PLAN_STORAGE,
    uids.GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
]
MAX_STORAGE_CONTEXTS = 127  # one of the 128 is the GET model's
#: At most this many classes get their compressed syntaxes in a context of their own.
MAX_SPLIT_CLASSES = 32


class GetClient(common.PhasedTimeouts, ReceivedFiles, ClientAE):
    """The requesting AE of getscu; received instances go to ``storage_dir``."""


def storage_classes(extra: List[str], limit: int = MAX_STORAGE_CONTEXTS) -> List[str]:
    """The storage SOP classes to propose: ``extra`` (or the common ones) first, then
    the others, at most ``limit``."""
    ordered = list(dict.fromkeys(list(extra) + COMMON_STORAGE + list(uids.STORAGE_SOP_CLASSES)))
    return ordered[:limit]


def storage_plan(extra: List[str], incoming: List[str]) -> Tuple[List[str], dict]:
    """The storage SOP classes to propose, and the syntaxes for them (``ts_preferences``).

    When ``incoming`` mixes uncompressed and compressed syntaxes, ``extra`` and the
    common classes (at most ``MAX_SPLIT_CLASSES``) are proposed with both, which the
    AE puts in two contexts (an archive then sends a compressed instance as it is, or
    converts it when it does not take the compressed syntax); the others with the
    uncompressed ones alone, since an archive choosing a compressed syntax for them
    might have to compress what it holds. Their second contexts leave room for fewer
    classes in the 128 contexts.
    """
    native = [ts for ts in incoming if ts in transcode.UNCOMPRESSED_TS]
    if not native or len(native) == len(incoming):
        return storage_classes(extra), {sopclass.storage_scp: list(incoming)}
    split = list(dict.fromkeys(list(extra) + COMMON_STORAGE))[:MAX_SPLIT_CLASSES]
    preferences: dict = {sopclass.storage_scp: native}
    preferences.update((uid, list(incoming)) for uid in split)
    return storage_classes(extra, MAX_STORAGE_CONTEXTS - len(split)), preferences


def build_parser(prog: str = 'getscu') -> argparse.ArgumentParser:
    parser = common.new_parser(
        prog, 'Retrieve the matches of a query (C-GET) and store them in a directory.')
    common.add_peer_arguments(parser, 'GETSCU')
    findscu.add_model_arguments(parser, worklist=False, default='patient')
    syntaxes.add_propose_arguments(parser, title='proposed retrieve transfer syntaxes '
                                   '(the C-GET itself)')
    syntaxes.add_accept_arguments(
        parser, title='preferred storage transfer syntaxes (the instances coming back)',
        default='every syntax; the common classes and those named with --sop-class '
        'with their compressed syntaxes in a context of their own')
    group = parser.add_argument_group('storage')
    group.add_argument('-od', '--output-directory', dest='output', default='.',
                       metavar='DIR', help='write the received instances here (default: .)')
    group.add_argument('--study-folders', action='store_true',
                       help='one folder per study: DIR/<StudyInstanceUID>/<SOPInstanceUID>.dcm')
    group.add_argument('--sop-class', action='append', default=[], metavar='UID',
                       help='propose this storage SOP class first; repeatable')
    group.add_argument('--ignore', action='store_true',
                       help='receive the instances and answer success, but keep nothing')
    common.add_network_arguments(parser)
    common.add_association_arguments(parser, 'send each C-GET')
    common.add_tls_arguments(parser)
    return parser


def get(args: argparse.Namespace, report=print) -> int:
    """Run the C-GET(s) into ``args.output``; returns the exit code."""
    queries = findscu.identifiers(args)
    model = args.model or 'patient'  # DCMTK's getscu default
    for query in queries:
        if 'QueryRetrieveLevel' not in query:
            query.QueryRetrieveLevel = 'PATIENT' if model == 'patient' else 'STUDY'
    remote = common.remote_ae(args)
    sop_class = GET_MODELS[model]
    if not args.ignore:
        common.prepare_directory(args.output, 'output directory')
    client = common.prepare_client(GetClient(
        args.calling_aet, syntaxes.proposed(args, UNCOMPRESSED_TS),
        max_pdu_length=args.max_pdu), args)
    client.storage_dir = args.output
    client.study_folders = args.study_folders
    client.discard = args.ignore
    classes, preferences = storage_plan(args.sop_class, syntaxes.accepted(args))
    client.ts_preferences.update(preferences)
    client.add_scu(sopclass.qr_get_scu, [sop_class])
    client.add_scp(sopclass.storage_scp)
    failed = False
    try:
        client.begin_request()
        with client.request_association(remote, sop_classes=[sop_class, *classes]) as assoc:
            repeated = [q for q in queries for _ in range(args.repeat)]
            for msg_id, query in enumerate(repeated, start=1):
                received = 0
                responses = common.service(assoc, sop_class, common.describe_peer(remote))(
                    query, msg_id)
                final = None
                while True:
                    try:
                        next(responses)
                    except StopIteration as stop:
                        final = stop.value
                        break
                    received += 1
                if final is None:
                    raise common.ToolError('C-GET ended without a final status')
                report(f'C-GET: {final}; received {received} instance(s) ' + (
                    'and kept none (--ignore)' if args.ignore
                    else f'into {os.path.abspath(args.output)}'))
                if final.is_success and not received:
                    # Success with nothing retrieved: the keys matched nothing
                    # (PS3.4 C.4.3.3.1), most often a mistyped UID or a wrong level.
                    logger.warning('no instance matched %s', findscu.describe_keys(query))
                if final.is_failure or final.is_cancel or final.is_warning:
                    failed = True
            common.finish(assoc, args)
    except (NetDICOMError, OSError) as exc:
        raise common.explain(exc, common.describe_peer(remote), client) from exc
    return common.EXIT_FAILURE if failed else common.EXIT_OK


def main(argv: Optional[List[str]] = None, prog: str = 'getscu') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)
    report = (lambda text: None) if args.quiet else print
    return common.execute(prog, lambda: get(args, report))
