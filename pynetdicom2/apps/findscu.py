"""``findscu``: query a peer with C-FIND (PS3.4 C and K), keys given as DCMTK's ``-k``.

Each match is printed (as pydicom shows a data set, or as DICOM JSON with ``--json``)
and, with ``-X``, written to ``rsp0001.dcm`` ... in the ``-od`` directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import List, Optional

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.dataset import Dataset, FileMetaDataset

from pynetdicom2 import sopclass, uids
from pynetdicom2.ae import ClientAE
from pynetdicom2.apps import common, keys, syntaxes
from pynetdicom2.exceptions import NetDICOMError

logger = logging.getLogger(__name__)

FIND_MODELS = {
    'worklist': uids.MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS,
    'patient': uids.PATIENT_ROOT_FIND_SOP_CLASS,
    'study': uids.STUDY_ROOT_FIND_SOP_CLASS,
    'psonly': uids.PATIENT_STUDY_ONLY_FIND_SOP_CLASS,
}
# Query responses written with -X are "Query/Retrieve ... FIND" data sets; DCMTK
# writes them with this meta, and so do we (explicit VR little endian).
_RESPONSE_TS = uids.EXPLICIT_VR_LITTLE_ENDIAN


class FindClient(common.PhasedTimeouts, ClientAE):
    """The requesting AE of findscu."""


def add_model_arguments(parser: argparse.ArgumentParser, worklist: bool,
                        default: str) -> None:
    """-W/-P/-S/-O and the query keys; ``default`` is the model without a flag."""
    def note(model: str) -> str:
        return ' (default)' if model == default else ''
    group = parser.add_argument_group('query information model')
    models = group.add_mutually_exclusive_group()
    if worklist:
        models.add_argument('-W', '--worklist', dest='model', action='store_const',
                            const='worklist', help='modality worklist information model'
                            + (' (default, unless a QueryRetrieveLevel key is given: then '
                               'study root)' if default == 'worklist' else ''))
    models.add_argument('-P', '--patient', dest='model', action='store_const',
                        const='patient', help='patient root information model' + note('patient'))
    models.add_argument('-S', '--study', dest='model', action='store_const', const='study',
                        help='study root information model' + note('study'))
    models.add_argument('-O', '--psonly', dest='model', action='store_const',
                        const='psonly', help='patient/study only information model')
    group = parser.add_argument_group('query keys')
    group.add_argument('-k', '--key', dest='keys', action='append', default=[],
                       metavar='KEY', help='a key: "(gggg,eeee)=value", "Keyword=value", '
                       '"Seq[0].Keyword=value"; no value for universal matching; repeatable')
    group.add_argument('queryfile', nargs='*', metavar='dcmfile-in',
                       help='DICOM file(s) holding the query; -k keys override them')


def identifiers(args: argparse.Namespace) -> List[Dataset]:
    """The query identifiers: one per query file (or one), with the ``-k`` keys."""
    try:
        bases = [pydicom.dcmread(path, force=True) for path in args.queryfile] or [None]
    except (OSError, InvalidDicomError) as exc:
        raise common.ToolError(f'cannot read the query file: {exc}', common.EXIT_USAGE) \
            from exc
    found = []
    for base in bases:
        if base is not None:
            base = Dataset(base)  # the data set only, without its file meta
        try:
            found.append(keys.build_identifier(args.keys, base))
        except keys.BadKey as exc:
            raise common.ToolError(str(exc), common.EXIT_USAGE) from exc
    return found


def describe_keys(identifier: Dataset) -> str:
    """The keys of a query in one line, as ``-k`` would give them:
    ``QueryRetrieveLevel=STUDY StudyInstanceUID=1.2.3``."""
    words = []
    for element in identifier:
        name = element.keyword or str(element.tag)
        if element.VR == 'SQ':
            words.append(name + '[...]')
        elif element.VM > 1:
            words.append(f'{name}=' + '\\'.join(str(v) for v in element.value))
        else:
            words.append(f'{name}={"" if element.value is None else element.value}')
    return ' '.join(words) or 'an empty query'


def choose_model(args: argparse.Namespace, identifier: Dataset) -> str:
    """The model asked for; without -W/-P/-S/-O: worklist, as DCMTK does, unless the
    identifier carries a Query/Retrieve Level (then study root)."""
    if args.model:
        return args.model
    return 'study' if 'QueryRetrieveLevel' in identifier else 'worklist'


def build_parser(prog: str = 'findscu') -> argparse.ArgumentParser:
    parser = common.new_parser(prog, 'Query a DICOM peer (C-FIND) and print the matches.')
    common.add_peer_arguments(parser, 'FINDSCU')
    add_model_arguments(parser, worklist=True, default='worklist')
    syntaxes.add_propose_arguments(parser, title='proposed transmission transfer syntaxes')
    group = parser.add_argument_group('responses')
    group.add_argument('-X', '--extract', action='store_true',
                       help='write each match to rsp0001.dcm, rsp0002.dcm ... in -od')
    group.add_argument('-od', '--output-directory', dest='output', default='.',
                       metavar='DIR', help='where -X writes (default: .)')
    group.add_argument('--json', action='store_true',
                       help='print each match as one line of DICOM JSON (PS3.18 F)')
    group.add_argument('--cancel', type=common.positive_count, metavar='N',
                       help='send C-CANCEL after N matches')
    common.add_network_arguments(parser)
    common.add_association_arguments(parser, 'send each query')
    common.add_tls_arguments(parser)
    return parser


def write_response(ds: Dataset, path: str, sop_class: str) -> None:
    """Write a C-FIND match as a Part-10 file (as DCMTK's findscu -X does)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = _RESPONSE_TS
    out = Dataset(ds)
    out.file_meta = meta
    out.preamble = b'\x00' * 128
    if int(pydicom.__version__.split('.')[0]) >= 3:
        out.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.4
        out.is_little_endian, out.is_implicit_VR = True, False
        out.save_as(path, write_like_original=False)


def find(args: argparse.Namespace, show) -> int:
    """Run the queries; ``show(ds, number)`` reports each match. Returns the exit code."""
    queries = identifiers(args)
    remote = common.remote_ae(args)
    client = common.prepare_client(
        FindClient(args.calling_aet, syntaxes.proposed(args), max_pdu_length=args.max_pdu),
        args)
    models = [choose_model(args, q) for q in queries]
    for model in set(models):
        scu_service = sopclass.modality_work_list_scu if model == 'worklist' \
            else sopclass.qr_find_scu
        client.add_scu(scu_service, [FIND_MODELS[model]])
    if args.extract:
        common.prepare_directory(args.output, 'output directory')
    count = 0
    final = failure = None
    try:
        client.begin_request()
        with client.request_association(
                remote, sop_classes=[FIND_MODELS[m] for m in set(models)]) as assoc:
            repeated = [pair for pair in zip(queries, models) for _ in range(args.repeat)]
            for msg_id, (query, model) in enumerate(repeated, start=1):
                sop_class = FIND_MODELS[model]
                responses = common.service(assoc, sop_class, common.describe_peer(remote))(
                    query, msg_id)
                matches = 0
                try:
                    for ds, status in responses:
                        if status.is_pending:
                            count += 1
                            matches += 1
                            if ds is not None:
                                show(ds, count)
                                if args.extract:
                                    write_response(ds, os.path.join(
                                        args.output, f'rsp{count:04d}.dcm'), sop_class)
                            if args.cancel is not None and matches >= args.cancel:
                                logger.info('cancelling after %d matches', matches)
                                break
                        else:
                            final = status
                finally:
                    responses.close()
                if final is not None:
                    logger.info('C-FIND final status: %s', final)
                    if not (final.is_success or final.is_cancel):
                        failure = final
                        break  # release, then report
                final = None
            common.finish(assoc, args)
    except (NetDICOMError, OSError) as exc:
        raise common.explain(exc, common.describe_peer(remote), client) from exc
    if failure is not None:
        raise common.ToolError(f'C-FIND failed: {failure}', common.EXIT_FAILURE)
    return common.EXIT_OK


def main(argv: Optional[List[str]] = None, prog: str = 'findscu') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)

    def show(ds: Dataset, number: int) -> None:
        if args.quiet:
            return
        if args.json:
            print(json.dumps(ds.to_json_dict()), flush=True)
        else:
            print(f'# match {number}\n{ds}\n', flush=True)
    return common.execute(prog, lambda: find(args, show))
