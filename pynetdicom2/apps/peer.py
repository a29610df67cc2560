"""The peer an SCU tool talks to: ``peer port -aec`` with the user identity its
flags give (``-usr``/``-pwd``, ``-kt``, ``--saml``, ``--jwt``, ``-rsp``), and its name in
messages.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional

from pynetdicom2 import userdataitems
from pynetdicom2.apps.exits import EXIT_USAGE, ToolError
from pynetdicom2.asceprovider import RemoteAEConfig


@dataclasses.dataclass
class ToolRemoteAE(RemoteAEConfig):
    """A peer as the tools name it: the identity asks for a positive response only
    with ``-rsp`` (as DCMTK's tools; PS3.7 D.3.3.7.1)."""

    positive_response: bool = False

    def user_identity(self) -> Optional[userdataitems.UserIdentityNegotiationSubItem]:
        item = super().user_identity()
        if item is not None:
            item.positive_response_req = int(self.positive_response)
        return item


_IDENTITY_FILES = (('kerberos', '-kt'), ('saml', '--saml'), ('jwt', '--jwt'))


def remote_ae(args: argparse.Namespace) -> RemoteAEConfig:
    """The peer of an SCU tool, with its user identity (``-usr``/``-pwd``, ``-kt``,
    ``--saml``, ``--jwt``: one of them; the files are read here)."""
    username = getattr(args, 'username', None)
    if getattr(args, 'password', None) and not username:
        raise ToolError('-pwd needs -usr', EXIT_USAGE)
    given = (['-usr'] if username else []) + [
        flag for key, flag in _IDENTITY_FILES if getattr(args, key, None)]
    if len(given) > 1:
        raise ToolError(f'one user identity at a time: {" and ".join(given)} given',
                        EXIT_USAGE)
    if getattr(args, 'pos_response', False) and not given:
        raise ToolError('-rsp needs a user identity (-usr, -kt, --saml or --jwt)',
                        EXIT_USAGE)
    identity = {}
    for key, flag in _IDENTITY_FILES:
        path = getattr(args, key, None)
        if path:
            identity[key] = _identity_file(path, flag, binary=key == 'kerberos')
    return ToolRemoteAE(aet=args.called_aet, address=args.peer, port=args.port,
                        username=username, password=getattr(args, 'password', None),
                        positive_response=getattr(args, 'pos_response', False), **identity)


def _identity_file(path: str, flag: str, binary: bool):
    """A credential file: bytes for a Kerberos ticket; text (UTF-8, without the line
    end an editor adds) for a SAML assertion or a JWT."""
    try:
        with open(path, 'rb') as fp:
            data = fp.read()
    except OSError as exc:
        raise ToolError(f'{flag}: cannot read {path}: {exc.strerror or exc}',
                        EXIT_USAGE) from exc
    if binary:
        return data
    try:
        return data.decode('utf-8').rstrip('\r\n')
    except UnicodeDecodeError as exc:
        raise ToolError(f'{flag}: {path} is not UTF-8 text', EXIT_USAGE) from exc


def describe_peer(remote: RemoteAEConfig) -> str:
    return f'{remote.aet}@{remote.address}:{remote.port}'
