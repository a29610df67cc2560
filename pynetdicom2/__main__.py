"""Command line entry point: ``python -m pynetdicom2``."""

from __future__ import annotations

import argparse
import sys

from pynetdicom2._version import __version__


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen tool; return the exit code."""
    parser = argparse.ArgumentParser(
        prog='pynetdicom2', description='pynetdicom2: DICOM networking tools')
    parser.add_argument('--version', action='version',
                        version=f'pynetdicom2 {__version__}')
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == '__main__':
    sys.exit(main())
