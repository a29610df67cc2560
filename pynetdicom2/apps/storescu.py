"""``storescu``: send Part-10 files and directories (recursively) with C-STORE.

All the files go over one association, which proposes exactly the presentation
contexts they need: per SOP class, one with the uncompressed syntaxes (the files' own
first, then explicit and implicit VR little endian; or those a ``-x?`` switch names)
and one for each compressed syntax of its files, alone, so that a compressed file goes
as it is when the peer takes it and is converted when it does not. Past 128 contexts
(PS3.8 9.3.2.2) the files are split over as many associations as needed. A progress
bar shows on a terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Dict, List, NamedTuple, Optional, Tuple

import pydicom

from pynetdicom2 import sopclass, uids
from pynetdicom2.ae import ClientAE
from pynetdicom2.apps import common, syntaxes
from pynetdicom2.apps.syntaxes import LOCAL_UNCOMPRESSED
from pynetdicom2.asceprovider import AssociationRequester, PContextDefList
from pynetdicom2.exceptions import (
    AssociationError, ClassNotSupportedError, DCMTimeoutError, DIMSEProcessingError,
    NetDICOMError, PDUProcessingError)
from pynetdicom2.services.storage import REENCODABLE_TS, read_file_meta

logger = logging.getLogger(__name__)

MAX_CONTEXTS = 128
_FALLBACK_TS = (uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN)
# Failures after which the association is gone: the remaining files cannot go on it.
_ASSOCIATION_LOST = (AssociationError, DCMTimeoutError, DIMSEProcessingError,
                     PDUProcessingError)


class StoreClient(common.PhasedTimeouts, ClientAE):
    """The requesting AE of storescu."""


class Instance(NamedTuple):
    """A file to send and what its meta information says."""
    path: str
    sop_class: str
    sop_instance: str
    transfer_syntax: Optional[str]  # None: no file meta, any native syntax will do
    size: int


def read_instance(path: str) -> Optional[Instance]:
    """What ``path`` holds, or None when it is not a DICOM file we can send."""
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as fp:
            meta = read_file_meta(fp)
        if meta is not None:
            return Instance(path, meta.sop_class_uid, meta.sop_instance_uid,
                            meta.transfer_syntax, size)
        # No file meta information: a bare data set, if pydicom can make sense of it.
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True,
                             specific_tags=['SOPClassUID', 'SOPInstanceUID'])
    except Exception as exc:  # OSError, InvalidDicomError; on arbitrary bytes, anything
        logger.debug('%s: %s', path, exc)
        return None
    sop_class, sop_instance = ds.get('SOPClassUID'), ds.get('SOPInstanceUID')
    if not sop_class or not sop_instance:
        return None
    return Instance(path, str(sop_class), str(sop_instance), None, size)


def _is_native(instance: Instance) -> bool:
    return instance.transfer_syntax is None or instance.transfer_syntax in REENCODABLE_TS


def _class_contexts(sop_class: str, files: List[Instance],
                    preferred: Optional[List[str]]) -> List[List[str]]:
    """The contexts (their syntaxes) to propose for the files of one SOP class.

    One with the uncompressed syntaxes: by default the files' own first, then
    explicit and implicit VR little endian; with a ``-x?`` switch, its syntaxes (a
    compressed or deflated first one alone, as DCMTK's storescu does). And one
    per compressed syntax among the files, alone: a peer that takes it gets the bytes
    as they are; one that does not still accepts the class in the uncompressed
    context, and the file is converted for it.
    """
    if preferred is None:
        own = [i.transfer_syntax for i in files if _is_native(i) and i.transfer_syntax]
        groups = [list(dict.fromkeys(own + list(_FALLBACK_TS)))]
    elif preferred[0] in LOCAL_UNCOMPRESSED or len(preferred) == 1:
        groups = [list(preferred)]
    else:
        groups = [[preferred[0]], list(preferred[1:])]
    for instance in files:
        if not _is_native(instance) and [instance.transfer_syntax] not in groups:
            groups.append([instance.transfer_syntax])
    return groups


def plan_associations(instances: List[Instance], max_contexts: int = MAX_CONTEXTS,
                      preferred: Optional[List[str]] = None
                      ) -> List[Tuple[Dict[int, PContextDefList], List[Instance]]]:
    """Group the files into associations of at most ``max_contexts`` contexts each
    (the contexts of one SOP class always together; see ``_class_contexts``).

    Returns ``[(contexts to propose, files to send), ...]``, the files in their
    given order within each association.
    """
    by_class: Dict[str, List[Tuple[int, Instance]]] = {}
    for position, instance in enumerate(instances):
        by_class.setdefault(instance.sop_class, []).append((position, instance))
    plans = []
    contexts: Dict[int, PContextDefList] = {}
    files: List[Tuple[int, Instance]] = []
    for sop_class, members in by_class.items():
        groups = _class_contexts(sop_class, [i for _, i in members], preferred)
        if contexts and len(contexts) + len(groups) > max_contexts:
            plans.append((contexts, [instance for _, instance in sorted(files)]))
            contexts, files = {}, []
        for syntaxes in groups:
            pc_id = 2 * len(contexts) + 1
            contexts[pc_id] = PContextDefList(pc_id, sop_class, syntaxes)
        files.extend(members)
    if contexts:
        plans.append((contexts, [instance for _, instance in sorted(files)]))
    return plans


def build_parser(prog: str = 'storescu') -> argparse.ArgumentParser:
    parser = common.new_parser(
        prog, 'Send DICOM files, and every DICOM file under the given directories, with '
        'C-STORE over one association.')
    common.add_peer_arguments(parser, 'STORESCU')
    syntaxes.add_propose_arguments(parser, syntaxes.IMAGE_LETTERS,
                                   'proposed transmission transfer syntaxes')
    parser.add_argument('paths', nargs='+', metavar='file-or-dir',
                        help='DICOM files and directories to send')
    group = parser.add_argument_group('input')
    group.add_argument('--no-recurse', dest='recurse', action='store_false',
                       help='send only the files directly in each directory')
    group.add_argument('+sd', '--scan-directories', action='store_true',
                       help='accepted for DCMTK command lines (directories are always '
                       'scanned)')
    group.add_argument('+r', '--recurse', dest='dcmtk_recurse', action='store_true',
                       help='accepted for DCMTK command lines (scanning is recursive)')
    group.add_argument('-nh', '--no-halt', action='store_true',
                       help='accepted for DCMTK command lines (storescu never halts at a '
                       'failed store: it sends every file, then reports the failures)')
    group = parser.add_argument_group('progress')
    progress = group.add_mutually_exclusive_group()
    progress.add_argument('--progress', dest='progress', action='store_const', const=True,
                          help='show the progress bar even when stderr is not a terminal')
    progress.add_argument('--no-progress', dest='progress', action='store_const',
                          const=False, help='never show the progress bar')
    common.add_network_arguments(parser, max_send_pdu=True)
    common.add_association_arguments(parser, 'send each file')
    common.add_tls_arguments(parser)
    return parser


class _Run:
    """One storescu run: the counts and how to report a failed file."""

    def __init__(self, progress: common.Progress) -> None:
        self.progress = progress
        self.sent = 0
        self.warnings = 0
        self.failed: List[Tuple[str, str]] = []

    def failure(self, path: str, reason: str) -> None:
        self.failed.append((path, reason))
        text = f'{path}: {reason}'
        if self.progress.enabled:
            self.progress.message(f'E: {text}')
        else:
            logger.error('%s', text)


def _send(client: StoreClient, remote, contexts, files: List[Instance], run: _Run,
          msg_id: int, args: argparse.Namespace) -> int:
    """Send ``files`` on one association proposing ``contexts``, each ``--repeat``
    times in a row (as DCMTK's storescu); returns the next message ID. Association
    failures propagate."""
    assoc = AssociationRequester(client, client.max_pdu_length, remote, contexts)
    client.begin_request()
    assoc.request()
    if args.max_send_pdu and not 0 < assoc.peer_max_pdu_length <= args.max_send_pdu:
        # The peer's Maximum Length Received (0: no limit) caps what we send; we may
        # send less (PS3.8 D.1).
        assoc.peer_max_pdu_length = args.max_send_pdu
    try:
        for instance in (i for i in files for _ in range(args.repeat)):
            try:
                # storage_scu chooses the context and converts the file when needed;
                # when nothing fits, its error names the syntax the peer refused.
                status = sopclass.storage_scu(assoc, None, instance.path, msg_id)
            except _ASSOCIATION_LOST:
                raise
            except ClassNotSupportedError as exc:
                run.failure(instance.path, str(exc))
            except (NetDICOMError, OSError, ValueError) as exc:
                run.failure(instance.path, f'not sent: {exc}')
            else:
                if status.is_success or status.is_warning:
                    run.sent += 1
                    run.warnings += status.is_warning
                    logger.info('%s: %s', instance.path, status)
                else:
                    run.failure(instance.path, f'{status}')
            msg_id = msg_id % 0xFFFF + 1
            run.progress.advance(1, instance.size)
    except BaseException:
        assoc.abort()
        raise
    common.finish(assoc, args)
    assoc.release()
    return msg_id


def check_paths(paths: List[str]) -> None:
    """Every file and directory named on the command line can be read, or a
    ``ToolError`` (exit 2: the command line is wrong) says which cannot, before
    anything is sent; DCMTK's storescu stops there too."""
    problems = []
    for path in paths:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                with open(path, 'rb'):
                    pass
        except OSError as exc:
            problems.append(f'cannot read {path}: {exc.strerror or exc}')
    if problems:
        more = f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''
        raise common.ToolError(problems[0] + more, common.EXIT_USAGE)


def referenced_files(dicomdir: str) -> List[str]:
    """The files a DICOMDIR's directory records reference (Referenced File ID,
    PS3.3 F.3.2.2: path components relative to the DICOMDIR's folder), in record
    order. A component is matched without regard to case when the exact name is not
    there (a CD mounted with lower-case names)."""
    ds = pydicom.dcmread(dicomdir, force=True)
    root = os.path.dirname(os.path.abspath(dicomdir))
    found = []
    for record in ds.get('DirectoryRecordSequence', []):
        file_id = record.get('ReferencedFileID')
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        found.append(_resolve(root, [str(p).strip() for p in parts]))
    return found


def _resolve(root: str, parts: List[str]) -> str:
    path = root
    for part in parts:
        exact = os.path.join(path, part)
        if not os.path.exists(exact) and os.path.isdir(path):
            match = [n for n in os.listdir(path) if n.lower() == part.lower()]
            if match:
                exact = os.path.join(path, match[0])
        path = exact
    return path


def collect(paths: List[str], recurse: bool = True,
            instances: Optional[List[Instance]] = None) -> List[Instance]:
    """The instances to send: every DICOM file named or found under the directories,
    each once. A DICOMDIR is not an instance to store (its SOP class, Media Storage
    Directory, has no storage service): the files it references are sent instead,
    as DCMTK's dcmsend +rd does. ``instances``: the list to fill (and return)."""
    instances = [] if instances is None else instances
    # A file a DICOMDIR references and the scan of its folder finds too goes once;
    # a file named twice on the command line goes twice, as before.
    scanned, referenced_once = set(), set()

    def add(path: str, named_by: Optional[str] = None) -> None:
        real = os.path.realpath(path)
        if real in referenced_once or (named_by and real in scanned):
            return
        (referenced_once if named_by else scanned).add(real)
        instance = read_instance(path)
        where = f'{path} (named by {named_by})' if named_by else path
        if instance is None and not os.access(path, os.R_OK):
            logger.error('cannot read %s, skipped', where)
        elif instance is None:
            logger.warning('%s: not a DICOM file, skipped', where)
        elif instance.sop_class == uids.MEDIA_STORAGE_DIRECTORY_STORAGE:
            try:
                referenced = referenced_files(path)
            except Exception as exc:  # pydicom raises many kinds on a broken DICOMDIR
                logger.error('%s: a DICOMDIR that cannot be read (%s), skipped', path, exc)
                return
            logger.info('%s: a DICOMDIR; sending the %d files it references', path,
                        len(referenced))
            for file in referenced:
                add(file, path)
        else:
            instances.append(instance)

    for path in common.iter_files(paths, recurse):
        add(path)
    return instances


def store(args: argparse.Namespace, stream=None) -> _Run:
    """Scan the paths, then send every DICOM file found."""
    check_paths(args.paths)
    remote = common.remote_ae(args)  # its command-line mistakes before the scan
    instances: List[Instance] = []
    try:
        collect(args.paths, args.recurse, instances)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f'nothing sent (while reading the files, {len(instances)} '
                                'found)') from None
    if not instances:
        raise common.ToolError('no DICOM files to send', common.EXIT_FAILURE)
    client = common.prepare_client(
        StoreClient(args.calling_aet, max_pdu_length=args.max_pdu), args)
    progress = common.Progress(len(instances) * args.repeat,
                               sum(i.size for i in instances) * args.repeat,
                               stream=stream if stream is not None else sys.stderr,
                               enabled=args.progress)
    run = _Run(progress)
    msg_id = 1
    try:
        for contexts, files in plan_associations(instances,
                                                 preferred=syntaxes.proposed(args)):
            msg_id = _send(client, remote, contexts, files, run, msg_id, args)
    except (NetDICOMError, OSError) as exc:
        raise common.explain(exc, common.describe_peer(remote), client) from exc
    except KeyboardInterrupt:
        # _send aborted the association; say how far we got, as the summary would.
        failed = f', {len(run.failed)} failed' if run.failed else ''
        raise KeyboardInterrupt(f'sent {run.sent} of {progress.total} instances{failed}') \
            from None
    finally:
        progress.finish()  # end the bar's line whatever happened
    return run


def main(argv: Optional[List[str]] = None, prog: str = 'storescu') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)

    def job() -> int:
        run = store(args)
        elapsed, rate, mbps = run.progress.rates()
        if not args.quiet:
            total = run.progress.total
            text = (f'sent {run.sent} of {total} instances '
                    f'({run.progress.done_bytes / 1e6:.1f} MB) in {elapsed:.2f} s: '
                    f'{rate:.1f} instances/s, {mbps:.2f} MB/s')
            if run.failed:
                text += f'; {len(run.failed)} failed'
            print(text)
        return common.EXIT_FAILURE if run.failed else common.EXIT_OK
    return common.execute(prog, job)
