#!/usr/bin/env python3
"""What the integrity check of a received data set costs (``dscheck.scan_data_set``).

The cases of the storage benchmark (a 2 KiB CT, a 512 KiB CT, a 256 MiB CT, written as
``p2_scp.py`` stores them: a bare data set in a file) plus a deflated 512 KiB CT and
a data set of 1000 sequence items, and pydicom reading the tiny CT for scale. The big
file is sparse: the check only seeks over its pixel data, so its bytes never matter.
Run ``python3 -m benchmarks.bench_dscheck [--quick]``; it prints one Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zlib
from typing import Callable, List, Tuple

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydicom.dataset import Dataset  # noqa: E402
from pydicom.filebase import DicomBytesIO  # noqa: E402
from pydicom.filereader import read_dataset  # noqa: E402
from pydicom.filewriter import write_dataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402

from benchmarks.data import _template  # noqa: E402
from benchmarks.micro import measure  # noqa: E402
from pynetdicom2 import uids  # noqa: E402
from pynetdicom2.dscheck import scan_data_set  # noqa: E402

EXPLICIT = str(uids.EXPLICIT_VR_LITTLE_ENDIAN)
IMPLICIT = str(uids.IMPLICIT_VR_LITTLE_ENDIAN)
DEFLATED = str(uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)


def ct(rows: int, cols: int, implicit: bool = False, pixels: bool = True) -> bytes:
    ds = _template(rows, cols)
    ds.SOPInstanceUID = '1.2.826.0.1.3680043.8.498.1'
    if pixels:
        ds.PixelData = bytes(rows * cols * 2)
        ds['PixelData'].VR = 'OW'
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_dataset(fp, ds)
    return fp.getvalue()


def many_items(count: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.88.33'
    ds.SOPInstanceUID = '1.2.3'
    items = []
    for n in range(count):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = str(n), 'DCM', 'x'
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = '1.2', f'1.2.{n}'
        item.PurposeOfReferenceCodeSequence = Sequence([code])
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    write_dataset(fp, ds)
    return fp.getvalue()


def deflate(raw: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(raw) + packer.flush()


def cases(folder: str) -> List[Tuple[str, Callable[[], object], int]]:
    """(name, callable, data-set bytes)."""
    tiny = ct(28, 28)
    tiny_implicit = ct(28, 28, implicit=True)
    ct512 = ct(512, 512)
    items = many_items(1000)
    packed = deflate(ct512)

    def on_disk(name: str, data: bytes, extra: int = 0) -> str:
        path = os.path.join(folder, name)
        with open(path, 'wb') as f:
            f.write(data)
            if extra:  # a sparse tail: pixel data the check seeks over
                f.truncate(len(data) + extra)
        return path

    head = ct(8192, 16384, pixels=False)
    big_pixels = 8192 * 16384 * 2
    big_path = on_disk('big.dcm', head + b'\xe0\x7f\x10\x00OW\0\0'
                       + big_pixels.to_bytes(4, 'little'), big_pixels)
    paths = {'tiny': on_disk('tiny.dcm', tiny), '512k': on_disk('ct512.dcm', ct512)}

    def from_file(path: str, syntax: str) -> Callable[[], object]:
        def run():
            with open(path, 'rb') as f:
                result = scan_data_set(f, syntax)
            assert result.problem is None, result
        return run

    def from_bytes(data: bytes, syntax: str) -> Callable[[], object]:
        def run():
            result = scan_data_set(data, syntax)
            assert result.problem is None, result
        return run

    def pydicom_read(data: bytes) -> Callable[[], object]:
        def run():
            ds = read_dataset(DicomBytesIO(data), False, True)
            for _ in ds.iterall():
                pass
        return run

    return [
        ('tiny CT (2 KiB), bytes', from_bytes(tiny, EXPLICIT), len(tiny)),
        ('tiny CT (2 KiB), Implicit VR, bytes', from_bytes(tiny_implicit, IMPLICIT),
         len(tiny_implicit)),
        ('tiny CT (2 KiB), file (open + scan)', from_file(paths['tiny'], EXPLICIT),
         len(tiny)),
        ('512 KiB CT, file (open + scan)', from_file(paths['512k'], EXPLICIT), len(ct512)),
        ('256 MiB CT, file (open + scan)', from_file(big_path, EXPLICIT),
         os.path.getsize(big_path)),
        ('512 KiB CT, deflated, bytes', from_bytes(packed, DEFLATED), len(ct512)),
        ('1000 items with nested sequences, bytes', from_bytes(items, EXPLICIT), len(items)),
        ('for scale: pydicom reads the tiny CT', pydicom_read(tiny), len(tiny)),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--quick', action='store_true', help='about 0.1 s per case')
    args = p.parse_args(argv)
    budget = 0.1 if args.quick else 1.0
    print('| dscheck case | per call | data-set bytes/s |')
    print('|---|---|---|')
    with tempfile.TemporaryDirectory(prefix='bench-dscheck-') as folder:
        for name, func, size in cases(folder):
            seconds = measure(func, budget)
            shown = f'{seconds * 1e6:,.1f} µs' if seconds < 1e-2 else f'{seconds * 1e3:,.1f} ms'
            print(f'| {name} | {shown} | {size / seconds / (1 << 20):,.0f} MiB/s |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
