"""Command line entry point: ``python -m pynetdicom2 <tool> ...`` (and the
``pynetdicom2`` console script). The tools live in ``pynetdicom2.apps``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from pynetdicom2._version import __version__
from pynetdicom2.apps import LEGACY, TOOLS
from pynetdicom2.apps.common import EXIT_USAGE, ToolParser, did_you_mean


def _parser() -> ToolParser:
    lines = [f'  {name:<10} {text}' for name, (_, text) in TOOLS.items()]
    lines.append('')
    lines.append('pynetdicom2 0.9.8 commands (kept):')
    lines += [f'  {name:<10} {text}' for name, text in LEGACY.items()]
    parser = ToolParser(
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
    if not argv:
        # No tool is a wrong command line (exit 2, docs/cli.rst), not a request for
        # help: the help goes to stderr, the tools listed in it.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if argv[0].startswith('-'):
        parser.parse_args(argv)  # --version, --help, or an unknown option (exit 2)
    names = [*TOOLS, *LEGACY]
    hint = did_you_mean(argv[0], names) or f'; the tools are {", ".join(names)}'
    print(f'pynetdicom2: error: unknown tool {argv[0]!r}{hint}', file=sys.stderr)
    return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())
