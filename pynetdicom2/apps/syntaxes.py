"""DCMTK's transfer-syntax switches for the tools, as lists of transfer syntaxes (most
preferred first): ``-x=``, ``-xe`` ... say what an SCU proposes, ``+x=``, ``+xe`` ...
what a server, or a tool receiving C-STOREs, accepts (DCMTK 3.6.7's spellings and
meanings). Only the syntaxes whose pixel data our codecs read are offered (no MPEG or
HEVC switches).
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence

from pynetdicom2 import uids

ELE = uids.EXPLICIT_VR_LITTLE_ENDIAN
EBE = uids.EXPLICIT_VR_BIG_ENDIAN
ILE = uids.IMPLICIT_VR_LITTLE_ENDIAN
DEFLATED = uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN

#: The uncompressed syntaxes, explicit VR in this machine's byte order first (PS3.5 A.1-A.3).
LOCAL_UNCOMPRESSED = ((ELE, EBE) if sys.byteorder == 'little' else (EBE, ELE)) + (ILE,)
#: What a retrieving tool or a server takes when no switch says otherwise: every syntax
#: that carries a data set, the uncompressed ones first (DCMTK's four, as before),
#: then the compressed ones, the most common in archives first.
ALL_SYNTAXES = tuple(dict.fromkeys((
    ELE, ILE, DEFLATED, EBE,
    uids.JPEG_BASELINE_PROCESS_1,
    uids.JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION_PROCESS_14_SELECTION_VALUE_1,
    uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY, uids.JPEG_2000_IMAGE_COMPRESSION,
    uids.JPEG_EXTENDED_PROCESS_2_AND_4, uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION,
    uids.RLE_LOSSLESS) + tuple(uids.ALL_TS)))


class Switch(NamedTuple):
    """One ``-x?``/``+x?`` switch: its letter, DCMTK's long names and the syntax it
    puts first (None: the uncompressed ones alone)."""
    letter: str
    propose: str        # DCMTK's long option of the SCU tools (``--propose-...``)
    prefer: str         # and of the servers (``--prefer-...``)
    first: Optional[str]
    what: str


SWITCHES: Dict[str, Switch] = {s.letter: s for s in (
    Switch('=', 'propose-uncompr', 'prefer-uncompr', None,
           'the uncompressed syntaxes, explicit VR in the local byte order first'),
    Switch('e', 'propose-little', 'prefer-little', ELE,
           'the uncompressed syntaxes, explicit VR little endian first'),
    Switch('b', 'propose-big', 'prefer-big', EBE,
           'the uncompressed syntaxes, explicit VR big endian first'),
    Switch('i', 'propose-implicit', 'implicit', ILE, 'implicit VR little endian only'),
    Switch('d', 'propose-deflated', 'prefer-deflated', DEFLATED,
           'deflated explicit VR little endian, then the uncompressed syntaxes'),
    Switch('s', 'propose-lossless', 'prefer-lossless',
           uids.JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION_PROCESS_14_SELECTION_VALUE_1,
           'JPEG lossless (process 14, SV1), then the uncompressed syntaxes'),
    Switch('y', 'propose-jpeg8', 'prefer-jpeg8', uids.JPEG_BASELINE_PROCESS_1,
           'JPEG baseline (lossy, 8 bit), then the uncompressed syntaxes'),
    Switch('x', 'propose-jpeg12', 'prefer-jpeg12', uids.JPEG_EXTENDED_PROCESS_2_AND_4,
           'JPEG extended (lossy, 12 bit), then the uncompressed syntaxes'),
    Switch('v', 'propose-j2k-lossless', 'prefer-j2k-lossless',
           uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY,
           'JPEG 2000 lossless, then the uncompressed syntaxes'),
    Switch('w', 'propose-j2k-lossy', 'prefer-j2k-lossy', uids.JPEG_2000_IMAGE_COMPRESSION,
           'JPEG 2000 (lossy allowed), then the uncompressed syntaxes'),
    Switch('t', 'propose-jls-lossless', 'prefer-jls-lossless',
           uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION,
           'JPEG-LS lossless, then the uncompressed syntaxes'),
    Switch('u', 'propose-jls-lossy', 'prefer-jls-lossy',
           uids.JPEG_LS_LOSSY_NEAR_LOSSLESS_IMAGE_COMPRESSION,
           'JPEG-LS near-lossless, then the uncompressed syntaxes'),
    Switch('r', 'propose-rle', 'prefer-rle', uids.RLE_LOSSLESS,
           'RLE lossless, then the uncompressed syntaxes'),
)}
#: The switches of DCMTK's query tools (findscu; movescu and getscu for their query).
QUERY_LETTERS = '=ebdi'
#: Those of the tools that send or receive images (storescu; storescp, getscu +x ...).
IMAGE_LETTERS = '=ebidsyxvwtur'


def syntaxes_for(letter: str) -> List[str]:
    """The transfer syntaxes a switch names, most preferred first."""
    first = SWITCHES[letter].first
    if first == ILE:
        return [ILE]                     # -xi / +xi: implicit VR little endian only
    return list(dict.fromkeys(([first] if first else []) + list(LOCAL_UNCOMPRESSED)))


def add_propose_arguments(parser: argparse.ArgumentParser, letters: str = QUERY_LETTERS,
                          title: str = 'proposed transfer syntaxes') -> None:
    """``-x=``, ``-xe`` ...: what we propose (``args.propose``: a letter, or None for
    the tool's default)."""
    group = parser.add_argument_group(title)
    for letter in letters:
        switch = SWITCHES[letter]
        group.add_argument(f'-x{letter}', f'--{switch.propose}', dest='propose',
                           action='store_const', const=letter,
                           help=f'propose {switch.what}')


def add_accept_arguments(parser: argparse.ArgumentParser, letters: str = IMAGE_LETTERS,
                         title: str = 'accepted transfer syntaxes',
                         default: str = 'every syntax, the sender\'s first choice kept',
                         accept_all: bool = True) -> None:
    """``+x=``, ``+xe`` ... (and ``+xa``): what we accept, in our order of preference
    (``args.accept``: a letter, ``'a'``, or None for the tool's default)."""
    group = parser.add_argument_group(title, f'default: {default}')
    for letter in letters:
        switch = SWITCHES[letter]
        what = switch.what if letter == 'i' else f'prefer {switch.what}'
        group.add_argument(f'+x{letter}', f'--{switch.prefer}', dest='accept',
                           action='store_const', const=letter, help=f'accept {what}')
    if accept_all:
        group.add_argument('+xa', '--accept-all', dest='accept', action='store_const',
                           const='a', help='accept every syntax, the sender\'s first choice '
                           'kept (the default)')


def proposed(args: argparse.Namespace, default: Optional[Sequence[str]] = None
             ) -> Optional[List[str]]:
    """The syntaxes ``-x?`` asks to propose, or ``default``."""
    letter = getattr(args, 'propose', None)
    return syntaxes_for(letter) if letter else (None if default is None else list(default))


def accepted(args: argparse.Namespace, default: Sequence[str] = ALL_SYNTAXES) -> List[str]:
    """The syntaxes ``+x?`` asks to accept, in our order; ``default`` for ``+xa`` or
    no switch."""
    letter = getattr(args, 'accept', None)
    return syntaxes_for(letter) if letter and letter != 'a' else list(default)


def keeps_senders_choice(args: argparse.Namespace) -> bool:
    """True unless a ``+x?`` switch names a preference: a server then accepts, for a
    storage class, the syntax the sender proposed first (``prefer_proposed_ts_for_storage``);
    with one, our order decides for every SOP class, as DCMTK's servers choose."""
    return getattr(args, 'accept', None) in (None, 'a')


__all__ = ['ALL_SYNTAXES', 'LOCAL_UNCOMPRESSED', 'QUERY_LETTERS', 'IMAGE_LETTERS', 'SWITCHES',
           'Switch', 'accepted', 'add_accept_arguments', 'add_propose_arguments',
           'keeps_senders_choice', 'proposed', 'syntaxes_for']
