"""``qrscp``: a small archive. Storage SCP, Query/Retrieve SCP (C-FIND, C-MOVE, C-GET;
patient root, study root, patient/study only), Storage Commitment SCP and Verification.

Received instances are kept as ``<storage>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``
(UIDs validated first) and indexed in an SQLite database (``--database``, default
``<storage>/index.sqlite``); ``--reindex`` rebuilds the index from the files. C-MOVE
sends to destinations named with ``--move-dest AET=HOST:PORT`` or in a ``--config``
file's ``[move_destinations]`` section.

What a Success promises here: the file is under its final name and the index says
so, in one step (``qrindex.Index.place``); a second copy of a SOP Instance UID
replaces the first; an instance that would re-parent a stored study or series is
refused (0xC000) and nothing is kept. At start the archive removes the temporary
files a crash left and settles the stores it interrupted. A retrieve whose unique
key is not one value (a wildcard, a range) is refused (0xC000). Every refusal carries
an Error Comment and is logged as a WARNING naming the peer.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import logging
import os
import sqlite3
import stat
import threading
from typing import Dict, Iterator, List, Optional

from pynetdicom2 import sopclass, statuses, uids
from pynetdicom2.ae import AE
from pynetdicom2.apps import common, qrindex, syntaxes
from pynetdicom2.apps.filestore import INCOMING, ReceivedFiles, clean_uid, uid_problem
from pynetdicom2.apps.storescp import ALL_TS, add_worker_arguments, serving_processes
from pynetdicom2.exceptions import EventHandlingError
from pynetdicom2.services.common import error_comment

logger = logging.getLogger(__name__)

#: The information model (``qrindex.levels_for``) of each FIND / MOVE / GET SOP class.
MODELS = {
    uids.PATIENT_ROOT_FIND_SOP_CLASS: 'patient', uids.PATIENT_ROOT_MOVE_SOP_CLASS: 'patient',
    uids.PATIENT_ROOT_GET_SOP_CLASS: 'patient',
    uids.STUDY_ROOT_FIND_SOP_CLASS: 'study', uids.STUDY_ROOT_MOVE_SOP_CLASS: 'study',
    uids.STUDY_ROOT_GET_SOP_CLASS: 'study',
    uids.PATIENT_STUDY_ONLY_FIND_SOP_CLASS: 'patient-study',
    uids.PATIENT_STUDY_ONLY_MOVE_SOP_CLASS: 'patient-study',
    uids.PATIENT_STUDY_ONLY_GET_SOP_CLASS: 'patient-study',
}
DEFAULT_STORAGE = 'pacs'
DEFAULT_AET = 'QRSCP'
DEFAULT_PORT = 11112
# Storage commitment failure reasons (PS3.4 J.3.3, Failure Reason (0008,1197)).
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
# C-FIND "identifier does not match SOP class" (PS3.4 C.4.1.1.4).
IDENTIFIER_DOES_NOT_MATCH = 0xA900
#: The names of the temporary files of transfers in progress: ``<storage>/.incoming/
#: *.part`` and ``.tmp-*.part`` anywhere in the storage. Only these are removed at start.
TEMPORARY_PREFIX = '.tmp-'
TEMPORARY_SUFFIX = '.part'
LOCK_NAME = '.qrscp.lock'


class Archive(common.ServerTLS, ReceivedFiles, AE):
    """The qrscp AE: every hook answered from the storage directory and its index."""

    study_folders = True
    read_tags = qrindex.INDEXED_KEYWORDS

    def __init__(self, storage_dir: str, index: Optional[qrindex.Index], ae_title: str,
                 port: int, move_destinations: Optional[Dict[str, dict]] = None,
                 supported_ts=None, max_pdu_length: int = 65536,
                 bind_address: str = '') -> None:
        self.storage_dir = os.fspath(storage_dir)
        self.index = index
        self.move_destinations = dict(move_destinations or {})
        AE.__init__(self, ae_title, port, ALL_TS if supported_ts is None else supported_ts,
                    max_pdu_length, bind_address=bind_address)
        for service in (sopclass.verification_scp, sopclass.storage_scp,
                        sopclass.qr_find_scp, sopclass.qr_move_scp, sopclass.qr_get_scp):
            self.add_scp(service)
        self.add_scp(sopclass.StorageCommitment())
        self._association = threading.local()

    def on_worker_start(self) -> None:
        # A worker process (--workers): an index connection of its own. Leftovers
        # were removed and interrupted stores settled once, before the fork.
        self.index.after_fork()

    def on_association_request(self, asce, assoc) -> None:
        # The hooks below run in the association's thread: remember whom it serves,
        # for the log lines of refusals.
        self._association.peer = asce.dul.peer
        super().on_association_request(asce, assoc)

    def peer(self) -> str:
        """The peer of the association this thread serves (``AET@host:port``)."""
        return getattr(self._association, 'peer', None) or 'a peer'

    def refuse(self, what: str, comment: str, details: Optional[str] = None):
        """Log a refusal as a WARNING naming the peer; the ``EventHandlingError`` that
        answers it, with ``comment`` as Error Comment (0xC000 unless given a
        ``status``; cut to the 64 characters of LO after a whole word, PS3.5 6.2)."""
        logger.warning('%s from %s refused: %s', what, self.peer(), details or comment)
        return EventHandlingError(error_comment(comment))

    # -- storage ---------------------------------------------------------------------

    def final_path(self, command_uid, attrs):
        """As ``ReceivedFiles``; an instance must also name its series to be indexed."""
        path = super().final_path(command_uid, attrs)
        problem = uid_problem(clean_uid(attrs.get('SeriesInstanceUID')), 'Series Instance UID')
        if problem:
            raise EventHandlingError(problem)
        return path

    def place_instance(self, temp_path: str, final_path: str, attrs, context) -> str:
        """Move the received file to its final name and index it, as one step.

        A second copy of a SOP Instance UID replaces the first (file and row); an
        instance whose study belongs to another patient, or whose series to another
        study, is refused with 0xC000 and nothing changes (``qrindex.Conflict``).
        """
        uid = os.path.splitext(os.path.basename(final_path))[0]
        if not attrs.get('SOPInstanceUID'):
            attrs.SOPInstanceUID = uid
        if not attrs.get('SOPClassUID'):
            attrs.SOPClassUID = context.sop_class
        try:
            self.index.place(attrs, temp_path, final_path, os.path.getsize(temp_path),
                             context.supported_ts)
        except qrindex.Conflict as exc:
            raise self.refuse(f'C-STORE of {uid}', exc.comment, str(exc)) from exc
        except ValueError as exc:  # the instance lacks a UID of the hierarchy
            raise self.refuse(f'C-STORE of {uid}', str(exc)) from exc
        except sqlite3.Error as exc:
            # Nothing is kept (``place`` settles the index with the disk): 0xA700.
            raise OSError(f'indexing {uid} failed: {exc}') from exc
        logger.info('stored %s', final_path)
        return final_path

    # -- query / retrieve ------------------------------------------------------------

    def on_receive_find(self, context, ds):
        model = MODELS.get(context.sop_class, 'patient')
        try:
            matches = self.index.find(ds, model)
        except qrindex.QueryError as exc:
            # 0xA900 "identifier does not match SOP class" (PS3.4 C.4.1.1.4): the
            # level is missing or not one of this information model's.
            refusal = self.refuse('C-FIND', str(exc))
            refusal.status = IDENTIFIER_DOES_NOT_MATCH
            raise refusal from exc
        except sqlite3.Error as exc:
            raise EventHandlingError(f'index: {exc}') from exc
        logger.info('C-FIND %s level %s: %d match(es)', model, matches[0].level if matches
                    else ds.get('QueryRetrieveLevel'), len(matches))
        return ((qrindex.match_dataset(m, ds, self.local_ae.aet), statuses.C_FIND_PENDING)
                for m in matches)

    def _retrieve(self, context, ds, what: str) -> List[str]:
        try:
            return self.index.retrieve(ds, MODELS.get(context.sop_class, 'patient'))
        except qrindex.QueryError as exc:
            # 0xC000 "unable to process" (PS3.4 C.4.2.1.5, C.4.3.1.4): a retrieve names
            # its entities by unique keys, one value each or a list of UIDs
            # (C.4.2.2.1); anything else would retrieve more than was named.
            raise self.refuse(what, str(exc)) from exc
        except sqlite3.Error as exc:
            raise EventHandlingError(f'index: {exc}') from exc

    def on_receive_move(self, context, ds, destination):
        remote = self.move_destinations.get(destination)
        if remote is None:
            logger.warning('C-MOVE from %s to unknown destination %r refused (known: %s)',
                           self.peer(), destination,
                           ', '.join(sorted(self.move_destinations)) or 'none')
            return None
        paths = self._retrieve(context, ds, 'C-MOVE')
        logger.info('C-MOVE of %d instance(s) to %s', len(paths), destination)
        return remote, len(paths), paths

    def on_receive_get(self, context, ds):
        paths = self._retrieve(context, ds, 'C-GET')
        logger.info('C-GET of %d instance(s)', len(paths))
        return len(paths), paths

    # -- storage commitment ----------------------------------------------------------

    def on_commitment_request(self, remote_aet, uids_to_commit):
        """Commit what the archive holds (file present, same SOP class)."""
        success, failure = [], []
        for sop_class, sop_instance in uids_to_commit:
            found = self.index.instance(sop_instance)
            if found is None or not os.path.isfile(found[1]):
                failure.append((sop_class, sop_instance, NO_SUCH_OBJECT_INSTANCE))
            elif found[0] != sop_class:
                failure.append((sop_class, sop_instance, CLASS_INSTANCE_CONFLICT))
            else:
                success.append((sop_class, sop_instance))
        logger.info('storage commitment for %s: %d committed, %d failed', remote_aet,
                    len(success), len(failure))
        return self.move_destinations.get(remote_aet), success, failure


# -- configuration ---------------------------------------------------------------------

def parse_destination(text: str):
    """``AET=HOST:PORT`` as ``(aet, remote AE dict)``."""
    aet, sep, where = text.partition('=')
    if not sep:
        raise ValueError(f'{text!r} is not AET=HOST:PORT')
    aet = common.ae_title(aet)
    host, port = common.host_port(where.strip())
    return aet, {'aet': aet, 'address': host, 'port': port}


def read_config(path: str) -> configparser.ConfigParser:
    """An INI file: ``[qrscp]`` (aet, port, storage, database, bind) and
    ``[move_destinations]`` (``AET = HOST:PORT`` lines)."""
    config = configparser.ConfigParser()
    config.optionxform = str  # AE titles keep their case
    try:
        with open(path, encoding='utf-8') as fp:
            config.read_file(fp)
    except (OSError, configparser.Error) as exc:
        raise common.ToolError(f'cannot read {path}: {exc}', common.EXIT_USAGE) from exc
    unknown = set(config.sections()) - {'qrscp', 'move_destinations'}
    if unknown:
        raise common.ToolError(f'{path}: unknown section(s) {", ".join(sorted(unknown))}',
                               common.EXIT_USAGE)
    return config


def build_parser(prog: str = 'qrscp') -> argparse.ArgumentParser:
    parser = common.new_parser(
        prog, 'Run a DICOM archive: storage, query/retrieve (C-FIND, C-MOVE, C-GET), '
        'storage commitment and verification, with an SQLite index.')
    # 16 associations at once, as DCMTK's dcmqrscp.cfg sets MaxAssociations.
    common.add_server_arguments(parser, DEFAULT_AET, DEFAULT_PORT, max_associations=16)
    parser.set_defaults(aet=None)
    group = parser.add_argument_group('archive')
    group.add_argument('--storage', '-od', dest='storage', metavar='DIR',
                       help=f'where the instances are kept (default: ./{DEFAULT_STORAGE})')
    group.add_argument('--database', metavar='PATH',
                       help='the SQLite index (default: <storage>/index.sqlite)')
    group.add_argument('--reindex', action='store_true',
                       help='rebuild the index from the files in the storage, then exit')
    group.add_argument('--move-dest', action='append', default=[], metavar='AET=HOST:PORT',
                       help='a C-MOVE destination; repeatable')
    group.add_argument('--config', metavar='FILE',
                       help='INI file with [qrscp] settings and [move_destinations]')
    syntaxes.add_accept_arguments(
        parser, title='preferred network transfer syntaxes',
        default="every syntax; a stored instance keeps the sender's first choice")
    add_worker_arguments(parser)
    common.add_network_arguments(parser, server=True)
    common.add_tls_arguments(parser, server=True)
    return parser


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """Command line over config file over defaults."""
    config = read_config(args.config) if args.config else None
    section = config['qrscp'] if config is not None and config.has_section('qrscp') else {}
    unknown = set(section) - {'aet', 'port', 'storage', 'database', 'bind'}
    if unknown:
        raise common.ToolError(f'{args.config}: unknown [qrscp] setting(s) '
                               f'{", ".join(sorted(unknown))}', common.EXIT_USAGE)
    try:
        if args.aet is None:
            args.aet = common.ae_title(section.get('aet', DEFAULT_AET))
        if args.port is None and args.port_option is None and 'port' in section:
            args.port_option = common.port_number(section['port'])
    except argparse.ArgumentTypeError as exc:
        raise common.ToolError(f'{args.config}: {exc}', common.EXIT_USAGE) from exc
    args.storage = args.storage or section.get('storage') or DEFAULT_STORAGE
    args.database = args.database or section.get('database') or os.path.join(
        args.storage, 'index.sqlite')
    args.bind = args.bind or section.get('bind', '')
    destinations = {}
    entries = [f'{aet.strip()}={where.strip()}' for aet, where in (
        config['move_destinations'].items() if config is not None
        and config.has_section('move_destinations') else [])]
    for text in entries + list(args.move_dest):
        try:
            name, remote = parse_destination(text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise common.ToolError(f'move destination: {exc}', common.EXIT_USAGE) from exc
        destinations[name] = remote
    args.destinations = destinations
    return args


def remove_leftovers(storage_dir: str) -> List[str]:
    """Delete the temporary files of transfers a crash interrupted; their paths.

    Only ours: ``*.part`` files in ``<storage>/.incoming`` and ``.tmp-*.part`` files
    anywhere under the storage directory, regular files only, never following a
    symbolic link out of the tree.
    """
    root = os.path.abspath(storage_dir)
    incoming = os.path.join(root, INCOMING)
    removed = []
    for folder, dirs, files in os.walk(root):  # does not follow directory links
        for name in files:
            if not name.endswith(TEMPORARY_SUFFIX):
                continue
            if not (name.startswith(TEMPORARY_PREFIX) or folder == incoming):
                continue
            path = os.path.join(folder, name)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


@contextlib.contextmanager
def storage_lock(storage_dir: str) -> Iterator[None]:
    """Hold ``<storage>/.qrscp.lock`` while serving: one qrscp per storage directory,
    so that cleaning up at start never takes another's transfers in progress."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one qrscp per storage, please)
        yield
        return
    path = os.path.join(storage_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise common.ToolError(f'another qrscp is using the storage {storage_dir} '
                                   f'({path} is locked)', common.EXIT_FAILURE) from exc
        yield
    finally:
        os.close(fd)


def open_index(args: argparse.Namespace, recreate: bool = False) -> qrindex.Index:
    try:
        return qrindex.Index(args.database, args.storage, recreate=recreate)
    except OSError as exc:
        raise common.ToolError(str(exc), common.EXIT_FAILURE) from exc


def start_archive(args: argparse.Namespace) -> qrindex.Index:
    """What happens at every start: leftovers removed, the index opened (rebuilt when
    its schema is older) and interrupted stores settled."""
    for path in remove_leftovers(args.storage):
        logger.warning('removed %s, left by a transfer that never finished', path)
    index = open_index(args, recreate=args.reindex)
    if not args.reindex:
        try:
            index.recover()
        except (OSError, sqlite3.Error) as exc:
            index.close()
            raise common.ToolError(f'cannot settle the index {args.database}: {exc}',
                                   common.EXIT_FAILURE) from exc
    return index


def main(argv: Optional[List[str]] = None, prog: str = 'qrscp') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)

    def job() -> int:
        settings(args)
        if args.reindex:
            common.prepare_directory(args.storage)
            with storage_lock(args.storage):
                return serve(args, prog)
        # The port first, then the storage: a port in use leaves nothing behind, a
        # storage that cannot be used is said in one line before anything is served.
        try:
            ae = Archive(args.storage, None, args.aet, common.listen_port(args),
                         args.destinations, supported_ts=syntaxes.accepted(args),
                         max_pdu_length=args.max_pdu, bind_address=args.bind)
            ae.prefer_proposed_ts_for_storage = syntaxes.keeps_senders_choice(args)
        except OSError as exc:
            raise common.ToolError(f'cannot listen on port {common.listen_port(args)}: '
                                   f'{exc.strerror or exc}', common.EXIT_LOCAL) from exc
        try:
            common.prepare_directory(args.storage)
            with storage_lock(args.storage):
                return serve(args, prog, ae)
        finally:
            ae.server_close()
    return common.execute(prog, job)


def serve(args: argparse.Namespace, prog: str, ae: Optional[Archive] = None) -> int:
    """Rebuild the index (``--reindex``), or serve with ``ae`` (bound, not started)."""
    index = start_archive(args)
    try:
        if args.reindex:
            indexed, skipped = index.rebuild()
            if not args.quiet:
                print(f'{prog}: indexed {indexed} instance(s) from '
                      f'{os.path.abspath(args.storage)} into '
                      f'{os.path.abspath(args.database)}'
                      + (f'; {skipped} file(s) skipped' if skipped else ''))
            return common.EXIT_OK
        ae.index = index
        common.configure_server(ae, args)
        ae.workers = serving_processes(args)
        for aet, remote in sorted(args.destinations.items()):
            logger.info('move destination %s at %s:%s', aet, remote['address'],
                        remote['port'])
        counts = index.counts()
        return common.serve_until_stopped(
            ae, f'{prog}: {args.aet} listening on {args.bind or "*"}:{ae.local_ae.port}; '
            f'storage {os.path.abspath(args.storage)}, index {os.path.abspath(args.database)} '
            f'({counts["IMAGE"]} instances, {counts["STUDY"]} studies)')
    finally:
        index.close()
