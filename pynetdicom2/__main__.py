"""Command line entry point: ``python -m pynetdicom2 <tool> ...`` (and the
``pynetdicom2`` console script). The tools live in ``pynetdicom2.apps``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from pynetdicom2._version import __version__
from pynetdicom2.apps import LEGACY, TOOLS


def _parser() -> argparse.ArgumentParser:
    lines = [f'  {name:<10} {text}' for name, (_, text) in TOOLS.items()]
    lines.append('')
    lines.append('pynetdicom2 0.9.8 commands (kept):')
    lines += [f'  {name:<10} {text}' for name, text in LEGACY.items()]
    parser = argparse.ArgumentParser(
        prog='pynetdicom2', usage='%(prog)s [--version] <tool> [options]',
        description='pynetdicom2: DICOM networking tools',
        epilog='tools:\n' + '\n'.join(lines) + '\n\n"pynetdicom2 <tool> --help" describes '
        'each tool.', formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'pynetdicom2 {__version__}')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and run the chosen tool; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        module = importlib.import_module(TOOLS[argv[0]][0])
        return module.main(argv[1:], prog=f'pynetdicom2 {argv[0]}')
    if argv and argv[0] in LEGACY:
        from pynetdicom2.apps import legacy
        return legacy.main(argv)
    parser = _parser()
    if argv:
        parser.parse_args(argv)  # --version, --help, or an error (exit 2)
    # No tool: help and exit 1, as pynetdicom2 0.9.8 did.
    parser.print_help()
    return 1


if __name__ == '__main__':
    sys.exit(main())
