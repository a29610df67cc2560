"""Synthetic CT instances for the benchmark, written with pydicom into a scratch folder.

Nothing here is committed: a folder is filled on demand and reused while its
``spec.json`` says it holds the same sets.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Dict, List

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

_PYDICOM3 = int(pydicom.__version__.split('.')[0]) >= 3

#: name -> (count, rows, columns) of 16-bit single-frame CT images.
FULL_SETS = {
    'ct512k': (500, 512, 512),     # 512 KiB of pixel data each
    'tiny': (2000, 28, 28),        # about 2 KiB each
    'big': (1, 8192, 16384),       # 256 MiB of pixel data
}
SMOKE_SETS = {
    'ct512k': (4, 128, 128),
    'tiny': (10, 28, 28),
    'big': (1, 512, 1024),
}


def _template(rows: int, cols: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL']
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = '20240101'
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = '120000'
    ds.Modality = 'CT'
    ds.Manufacturer = 'pynetdicom2 benchmarks'
    ds.PatientName = 'BENCH^CT'
    ds.PatientID = 'BENCH0001'
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyID = '1'
    ds.SeriesNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = '-1024'
    ds.RescaleSlope = '1'
    # A repeating ramp: cheap to build, not all zeros.
    size = rows * cols * 2
    ramp = bytes(range(256)) * 16
    ds.PixelData = (ramp * (size // len(ramp) + 1))[:size]
    return ds


def _write_set(folder: pathlib.Path, name: str, count: int, rows: int, cols: int) -> List[str]:
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    ds = _template(rows, cols)
    paths = []
    for i in range(count):
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i + 1
        path = target / f'{i:05d}.dcm'
        if _PYDICOM3:
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
        else:  # pydicom 2.4 (Python 3.9) takes the encoding from the data set
            ds.is_little_endian, ds.is_implicit_VR = True, False
            pydicom.dcmwrite(path, ds, write_like_original=False)
        paths.append(str(path))
    return paths


def prepare(folder: os.PathLike, sets: Dict[str, tuple]) -> Dict[str, List[str]]:
    """Make sure ``folder`` holds ``sets``; returns name -> sorted file paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / 'spec.json'
    spec = {name: list(value) for name, value in sorted(sets.items())}
    try:
        done = json.loads(spec_file.read_text())
    except (OSError, ValueError):
        done = {}
    result = {}
    for name, (count, rows, cols) in sets.items():
        existing = sorted(str(p) for p in (folder / name).glob('*.dcm'))
        if done.get(name) == [count, rows, cols] and len(existing) == count:
            result[name] = existing
            continue
        for path in existing:
            os.unlink(path)
        done.pop(name, None)
        spec_file.write_text(json.dumps(done))
        result[name] = _write_set(folder, name, count, rows, cols)
        done[name] = spec[name]
        spec_file.write_text(json.dumps(done))
    return result
