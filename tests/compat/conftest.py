"""Fixtures of the differential tests: the released 0.9.8's interpreter and the input
files, made once so that every pair of a scenario sends the very same instances."""

from __future__ import annotations

import pathlib

import pydicom
import pytest

from tests import peers
from tests.peers import make_ct_file


@pytest.fixture(scope='session', autouse=True)
def original_098() -> str:
    """pynetdicom2 0.9.8 in its own virtual environment; skip (fail on CI) without it."""
    return peers.original_python()


def ct_with(path: pathlib.Path, patient_id: str) -> pathlib.Path:
    """A small CT file (16 x 16) whose PatientID is ``patient_id``."""
    make_ct_file(path, rows=16, cols=16)
    ds = pydicom.dcmread(path)
    ds.PatientID = patient_id
    ds.save_as(path)
    return path


@pytest.fixture(scope='session')
def ct_files(tmp_path_factory) -> list[pathlib.Path]:
    """Three CT files (Explicit VR Little Endian), each a new instance."""
    folder = tmp_path_factory.mktemp('compat-ct')
    return [ct_with(folder / f'ct{n}.dcm', f'PID{n}') for n in (1, 2, 3)]
