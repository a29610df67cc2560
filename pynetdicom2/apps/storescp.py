"""``storescp``: a storage SCP writing what it receives into a directory.

Each instance becomes ``<od>/<SOPInstanceUID>.dcm`` (``--study-folders``:
``<od>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``), named only after UIDs that passed
validation. Verification is served too. Every transfer syntax is accepted, the one
the sender proposed first kept (its files are written as they arrive); ``+x?``
switches name the syntaxes to accept, in our order of preference (DCMTK's).
``-pm`` (promiscuous) accepts any storage-like SOP class, known or not.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import List, Optional

from pydicom.uid import UID

from pynetdicom2 import sopclass, uids
from pynetdicom2.ae import AE
from pynetdicom2.apps import common, receiving, syntaxes
from pynetdicom2.apps.filestore import ReceivedFiles
from pynetdicom2.apps.receiving import Reception

logger = logging.getLogger(__name__)

#: The uncompressed transfer syntaxes (PS3.5 A.1-A.3, A.5).
UNCOMPRESSED_TS = [uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN,
                   uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_BIG_ENDIAN]
#: Every transfer syntax we know, uncompressed preferred (``+xa``).
ALL_TS = list(dict.fromkeys(UNCOMPRESSED_TS + list(uids.ALL_TS)))


def is_storage_like(uid: str) -> bool:
    """True for a SOP class promiscuous mode takes as storage: a UID pydicom does not
    know, or one it names "... Storage" (a storage class newer than our list)."""
    name = UID(uid).name
    return name == uid or name.endswith('Storage') or 'Storage -' in name


class StorageSCP(common.ServerTLS, Reception, ReceivedFiles, AE):
    """The AE of storescp: verification and storage into ``storage_dir``, with
    DCMTK's folders, names and commands (``Reception``)."""

    promiscuous = False

    def __init__(self, storage_dir: str, ae_title: str, port: int, supported_ts=None,
                 max_pdu_length: int = 65536, bind_address: str = '') -> None:
        self.storage_dir = os.fspath(storage_dir)
        # The port first: a port in use leaves no directory behind.
        AE.__init__(self, ae_title, port, supported_ts, max_pdu_length,
                    bind_address=bind_address)
        try:
            common.prepare_directory(self.storage_dir)
        except BaseException:
            self.server_close()
            raise
        self.add_scp(sopclass.verification_scp)
        self.add_scp(sopclass.storage_scp)

    def on_association_request(self, asce, assoc) -> None:
        """In promiscuous mode, serve any proposed storage-like SOP class as storage."""
        super().on_association_request(asce, assoc)
        if not self.promiscuous:
            return
        known = self.acceptable_sop_classes()
        new = []
        for item in assoc.presentation_context_items:
            uid = item.abs_sub_item.name if item.abs_sub_item else None
            if uid and uid not in known and uid not in new and is_storage_like(uid):
                new.append(uid)
        if new:
            logger.info('promiscuous mode: accepting %s', ', '.join(new))
            with self.lock:
                for uid in new:
                    self.supported_scp[uid] = sopclass.storage_scp
            self.update_context_def_list(new, store_in_file=True)


def worker_processes(value: str) -> int:
    """``--workers``: 0 (one per core) or more processes."""
    return common.counted(value, 'a number of processes', 0,
                          ' processes: give 0 (one per core) or more')


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` and DCMTK's ``--fork``: serve with several processes (every core)."""
    group = parser.add_argument_group('processes')
    group.add_argument('--workers', type=worker_processes, default=1, metavar='N',
                       help='serve with N worker processes sharing the port, each with a '
                       'thread per association; 0: one per core (default: 1, this process)')
    group.add_argument('--fork', dest='workers', action='store_const', const=0,
                       help="as DCMTK's --fork, use every core: the same as --workers 0")


def serving_processes(args: argparse.Namespace) -> int:
    """The number of worker processes ``--workers`` / ``--fork`` ask for."""
    return args.workers or os.cpu_count() or 1


def build_parser(prog: str = 'storescp') -> argparse.ArgumentParser:
    parser = common.new_parser(prog, 'Receive DICOM instances (C-STORE) into a directory.')
    # 32 senders at once: room for a site's modalities, a bound on threads and disk I/O.
    common.add_server_arguments(parser, 'STORESCP', max_associations=32)
    group = parser.add_argument_group('storage')
    group.add_argument('-od', '--output-directory', dest='output', default='.', metavar='DIR',
                       help='write the received files here (default: .)')
    group.add_argument('--study-folders', action='store_true',
                       help='one folder per study: DIR/<StudyInstanceUID>/<SOPInstanceUID>.dcm')
    group.add_argument('--ignore', action='store_true',
                       help='receive and answer success, but keep nothing')
    group.add_argument('-pm', '--promiscuous', action='store_true',
                       help='also accept storage SOP classes we do not know')
    receiving.add_arguments(parser)
    syntaxes.add_accept_arguments(parser, title='preferred network transfer syntaxes')
    add_worker_arguments(parser)
    common.add_network_arguments(parser, server=True)
    common.add_tls_arguments(parser, server=True)
    return parser


def make_ae(args: argparse.Namespace) -> StorageSCP:
    ae = StorageSCP(args.output, args.aet, common.listen_port(args),
                    syntaxes.accepted(args), args.max_pdu, args.bind)
    ae.prefer_proposed_ts_for_storage = syntaxes.keeps_senders_choice(args)
    ae.study_folders = args.study_folders
    ae.discard = args.ignore
    ae.promiscuous = args.promiscuous
    ae.workers = serving_processes(args)
    receiving.configure(ae, args)
    common.configure_server(ae, args)
    return ae


def main(argv: Optional[List[str]] = None, prog: str = 'storescp') -> int:
    args = build_parser(prog).parse_args(argv)
    common.configure_logging(args)

    def job() -> int:
        receiving.check_arguments(args)
        try:
            ae = make_ae(args)
        except OSError as exc:
            raise common.ToolError(f'cannot listen on port {common.listen_port(args)}: '
                                   f'{exc.strerror or exc}', common.EXIT_LOCAL) from exc
        where = f'{args.bind or "*"}:{ae.local_ae.port}'
        return common.serve_until_stopped(
            ae, f'{prog}: {args.aet} listening on {where}, storing into '
            f'{os.path.abspath(args.output)}')
    return common.execute(prog, job)
