"""Fixtures of the differential tests: the released 0.9.8's interpreter and the input
files, made once so that every pair of a scenario sends the very same instances."""

from __future__ import annotations

import pathlib

import pytest

from tests import peers
from tests.compat.harness import ct_with


@pytest.fixture(scope='session', autouse=True)
def original_098() -> str:
    """pynetdicom2 0.9.8 in its own virtual environment; skip (fail on CI) without it."""
    return peers.original_python()


@pytest.fixture(scope='session')
def ct_files(tmp_path_factory) -> list[pathlib.Path]:
    """Three CT files (Explicit VR Little Endian), each a new instance."""
    folder = tmp_path_factory.mktemp('compat-ct')
    return [ct_with(folder / f'ct{n}.dcm', f'PID{n}') for n in (1, 2, 3)]
