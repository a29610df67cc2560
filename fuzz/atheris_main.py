"""Coverage-guided fuzzing with atheris (libFuzzer), for long runs by hand; not run on CI.

    pip install atheris
    python3 fuzz/atheris_main.py pdu /tmp/pdu-corpus -max_total_time=600

libFuzzer adds the inputs it finds interesting to the corpus directory it is given;
an empty one is first seeded with ``fuzz/corpus/<target>/`` (decoded from hex), so
the kept corpus is never written to.

Targets: ``pdu`` (decode_pdu and the P-DATA splitter), ``item`` (every item and
sub-item decoder), ``command`` (decode_message), ``stream`` (a whole session through
a storage AE's server code). Anything but the library's own error is a finding:
libFuzzer saves the input as ``crash-<sha1>``; turn it into a corpus file (README).
"""

from __future__ import annotations

import io
import pathlib
import sys
import tempfile
import warnings

import atheris

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from pynetdicom2 import dimse, pdu  # noqa: E402
    from pynetdicom2.exceptions import NetDICOMError  # noqa: E402

from fuzz.harness import serve_stream  # noqa: E402
from fuzz.strategies import ITEM_DECODERS, load_corpus  # noqa: E402


def fuzz_pdu(data: bytes) -> None:
    try:
        pdu.decode_pdu(data)
    except NetDICOMError:
        pass
    try:
        list(pdu.iter_pdvs(data))
    except NetDICOMError:
        pass


def fuzz_item(data: bytes) -> None:
    for decoder in ITEM_DECODERS:
        try:
            decoder(io.BytesIO(data))
        except NetDICOMError:
            pass


def fuzz_command(data: bytes) -> None:
    try:
        dimse.decode_message(data)
    except NetDICOMError:
        pass


def fuzz_stream(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as storage:
        serve_stream(data[:60000], True, storage)


TARGETS = {'pdu': fuzz_pdu, 'item': fuzz_item, 'command': fuzz_command,
           'stream': fuzz_stream}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f'usage: {sys.argv[0]} {{{",".join(TARGETS)}}} [corpus dir] [libFuzzer options]')
    name = sys.argv.pop(1)
    target = TARGETS[name]
    for arg in sys.argv[1:]:
        folder = pathlib.Path(arg)
        if not arg.startswith('-') and folder.is_dir() and not any(folder.iterdir()):
            for file_name, raw in load_corpus(name).items():
                (folder / (pathlib.Path(file_name).stem + '.bin')).write_bytes(raw)
    warnings.simplefilter('ignore')     # pydicom's warnings about hostile UIDs
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == '__main__':
    main()
