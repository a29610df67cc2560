"""The subcommands of pynetdicom2 0.9.8 — ``verify``, ``find``, ``store``, ``move`` —
with their long options and their output lines, so old command lines keep working.

They run on the one-call helpers of ``pynetdicom2.commands``, as they did. Failures
get the new tools' messages and exit codes (``pynetdicom2.apps.common``).
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Iterator, List, Optional

from pydicom.errors import InvalidDicomError
from pydicom.dataset import Dataset

from pynetdicom2 import commands, uids
from pynetdicom2.apps import common, keys
from pynetdicom2.asceprovider import RemoteAEConfig
from pynetdicom2.exceptions import NetDICOMError


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--local_aet', default='PYNETDICOM2', help='Local AE Title')
    parser.add_argument('--aet', required=True, help='Remote AE Title')
    parser.add_argument('--address', required=True, help='Remote IP address')
    parser.add_argument('--port', type=int, required=True, help='Remote port')
    parser.add_argument('--username', help='Username for DICOM authorization')
    parser.add_argument('--password', help='Password for DICOM authorization')
    parser.add_argument('--kerberos', help='Kerberos key for DICOM authorization')
    parser.add_argument('--saml', help='SAML key for DICOM authorization')
    parser.add_argument('--jwt', help='JWT for DICOM authorization')


def _query(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--level', choices=['patient', 'study', 'series', 'image'],
                        default='study', help='level of the request')
    parser.add_argument('--root', choices=['patient', 'study'], default='study',
                        help='request root (either patient or study)')
    parser.add_argument('--attr', nargs='*', action='extend', default=[],
                        help='search attribute: <name or tag>=<value>, e.g. '
                        'PatientName=Test^Name or 00100010=Test^Name')
    parser.add_argument('--encoding', default='ISO_IR 192',
                        help='character set of the request (default: UTF-8)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        'pynetdicom2', description='pynetdicom2 0.9.8 commands')
    commands_ = parser.add_subparsers(dest='command', title='commands')
    verify = commands_.add_parser('verify', help='send C-ECHO to a remote AE')
    _connection(verify)
    find = commands_.add_parser('find', help='C-FIND and print the results')
    _connection(find)
    _query(find)
    store = commands_.add_parser('store', help='store a file or a folder (recursively)')
    store.add_argument('--file_or_dir', required=True, help='path to a file or folder')
    _connection(store)
    move = commands_.add_parser('move', help='C-MOVE, optionally receiving the instances')
    move.add_argument('--local_port', type=int, default=None,
                      help='run a storage SCP on this port to receive the instances')
    move.add_argument('--storage_dir', default=None,
                      help='where received instances go (with --local_port; default: .)')
    move.add_argument('--dest_aet', default='PYNETDICOM2', help='move destination AE title')
    _connection(move)
    _query(move)
    return parser


def _remote(args: argparse.Namespace) -> RemoteAEConfig:
    return RemoteAEConfig(aet=args.aet, address=args.address, port=args.port,
                          username=args.username, password=args.password,
                          kerberos=args.kerberos, saml=args.saml, jwt=args.jwt)


def _request(args: argparse.Namespace) -> Dataset:
    specs = [spec if '=' in spec else f'{spec}=' for spec in args.attr]
    try:
        ds = keys.build_identifier(specs)
    except keys.BadKey as exc:
        raise common.ToolError(f'--attr: {exc}', common.EXIT_USAGE) from exc
    ds.QueryRetrieveLevel = args.level.upper()
    ds.SpecificCharacterSet = args.encoding
    return ds


def verify(args: argparse.Namespace) -> Iterator[str]:
    yield f'Verification result {commands.verify(args.local_aet, _remote(args))}'


def find(args: argparse.Namespace) -> Iterator[str]:
    root = (uids.PATIENT_ROOT_FIND_SOP_CLASS if args.root == 'patient'
            else uids.STUDY_ROOT_FIND_SOP_CLASS)
    for ds in commands.find(args.local_aet, _remote(args), _request(args), root):
        yield f'C-FIND response:\n{ds}'


def store(args: argparse.Namespace) -> Iterator[str]:
    target = pathlib.Path(args.file_or_dir)
    paths = [target] if not target.is_dir() else sorted(
        p for p in target.glob('**/*') if not p.is_dir())
    for path in paths:
        try:
            yield f'Store result: {commands.store(args.local_aet, _remote(args), str(path))}'
        except InvalidDicomError:
            yield f'Invalid DICOM file {path}, skipping'


def move(args: argparse.Namespace) -> Iterator[str]:
    root = (uids.PATIENT_ROOT_MOVE_SOP_CLASS if args.root == 'patient'
            else uids.STUDY_ROOT_MOVE_SOP_CLASS)
    request = _request(args)

    def results() -> str:
        found = commands.move(args.local_aet, _remote(args), request, args.dest_aet, root)
        return f'Move results: {found}'
    if args.local_port is None:
        yield results()
        return
    storage_dir = args.storage_dir or str(pathlib.Path.cwd())
    with commands.storage(storage_dir, args.local_aet, args.local_port):
        yield results()


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``argv`` (``['verify', '--aet', ...]``); print each result line."""
    args = build_parser().parse_args(argv)
    job = {'verify': verify, 'find': find, 'store': store, 'move': move}[args.command]
    common.configure_logging(argparse.Namespace())
    peer = f'{args.aet}@{args.address}:{args.port}'

    def run() -> int:
        try:
            for line in job(args):
                print(line, flush=True)
        except (NetDICOMError, OSError) as exc:
            raise common.explain(exc, peer) from exc
        return common.EXIT_OK
    return common.execute(f'pynetdicom2 {args.command}', run)
