"""Start, watch and stop real DICOM peers (DCMTK tools, a pynetdicom 3 script) for tests.

Every process started here runs in its own session, is recorded in ``CHILDREN`` until it
is stopped, and is stopped by its PID with bounded waits; nothing here can hang forever.

pynetdicom 3 and the released pynetdicom2 0.9.8 each live in a virtual environment of
their own, made by tests/run_all.sh under ``.peers/`` (so pynetdicom's ``echoscu`` /
``storescu`` ... scripts never shadow DCMTK's, and 0.9.8 is never importable by the test
process); ``PYNETDICOM_PYTHON`` and ``PYNETDICOM2_098_PYTHON`` name other interpreters.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Optional, Sequence

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID, CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID,
    RLELossless, generate_uid,
)

PEER_SCRIPT = pathlib.Path(__file__).resolve().parent / "interop/peers/pynetdicom_peer.py"
REPO = pathlib.Path(__file__).resolve().parent.parent
PEERS_DIR = REPO / ".peers"

# Processes started by the helpers and not yet stopped; the autouse fixture in
# tests/conftest.py fails any test that leaves one alive. Import this module as
# ``tests.peers`` everywhere, so that there is one list.
CHILDREN: list[subprocess.Popen] = []

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


def _missing(what: str) -> None:
    """Fail on CI (a missing peer must never pass silently), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required on CI but missing", pytrace=False)
    pytest.skip(f"{what} is not available")


def dcmtk(tool: str) -> str:
    """Absolute path of a DCMTK tool; never PATH, where pynetdicom's same-named scripts sit."""
    path = f"/usr/bin/{tool}"
    if not os.access(path, os.X_OK):
        _missing(f"DCMTK {path}")
    return path


def _peer_python(variable: str, venv: str) -> pathlib.Path:
    return pathlib.Path(os.environ.get(variable) or PEERS_DIR / venv / "bin" / "python")


def pynetdicom_python() -> str:
    """The interpreter of pynetdicom 3's own virtual environment (``PYNETDICOM_PYTHON``,
    default ``.peers/pynetdicom/bin/python``); skip (fail on CI) when it is missing.

    pynetdicom 3 needs Python 3.10+: on an older Python tests/run_all.sh makes no such
    environment and the tests that need it skip, on CI too.
    """
    path = _peer_python("PYNETDICOM_PYTHON", "pynetdicom")
    if not os.access(path, os.X_OK):
        if sys.version_info < (3, 10):
            pytest.skip("pynetdicom 3 needs Python 3.10+")
        _missing(f"pynetdicom 3 in its virtual environment ({path}; tests/run_all.sh "
                 f"makes it)")
    return str(path)


def require_pynetdicom() -> str:
    """Skip (fail on CI) when pynetdicom 3 cannot run here; return its interpreter."""
    return pynetdicom_python()


def original_python() -> str:
    """The interpreter of the released pynetdicom2 0.9.8's own virtual environment
    (``PYNETDICOM2_098_PYTHON``, default ``.peers/pynetdicom2-098/bin/python``); skip
    (fail on CI) when it is missing. Our test process never imports that package.
    """
    path = _peer_python("PYNETDICOM2_098_PYTHON", "pynetdicom2-098")
    if not os.access(path, os.X_OK):
        _missing(f"pynetdicom2 0.9.8 in its virtual environment ({path}; "
                 f"tests/run_all.sh makes it)")
    return str(path)


def _listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(port: int, timeout: float = 10,
                   proc: Optional[subprocess.Popen] = None) -> None:
    """Wait until something LISTENs on ``port``, reading /proc/net/tcp{,6}.

    A connect-and-close probe would not do: storescp serves one association at a time
    and sits on a bare TCP connection until its ACSE timeout. If ``proc`` is given and
    exits first, raise RuntimeError with its output.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port in _listening_ports():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening "
                               f"on port {port}\n{process_output(proc)}")
        time.sleep(0.02)
    extra = f"\n{process_output(proc)}" if proc is not None else ""
    raise TimeoutError(f"nothing listening on TCP port {port} after {timeout} s "
                       f"(checked /proc/net/tcp and /proc/net/tcp6){extra}")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1.

    Racy: another process may take the port between this call and its use. Prefer a
    peer that binds port 0 and reports the number (the pynetdicom peer does); use this
    only for tools that need the port on their command line (DCMTK).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(argv: Sequence[str], env: Optional[dict] = None) -> subprocess.Popen:
    """Start ``argv`` in its own session with stdout/stderr in append-mode temp files.

    Files instead of pipes: a chatty peer can never block on a full pipe, and the output
    can be read while the process runs.
    """
    logdir = tempfile.mkdtemp(prefix="peer-")
    out_path = os.path.join(logdir, "stdout")
    err_path = os.path.join(logdir, "stderr")
    with open(out_path, "ab") as out, open(err_path, "ab") as err:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, start_new_session=True)
    proc.logdir = logdir  # type: ignore[attr-defined]
    CHILDREN.append(proc)
    return proc


def process_output(proc: subprocess.Popen) -> str:
    """The stdout and stderr a process started by these helpers has written so far."""
    logdir = getattr(proc, "logdir", None)
    if logdir is None:
        return "(output not captured)"
    parts = [f"argv: {proc.args}"]
    for name in ("stdout", "stderr"):
        try:
            text = pathlib.Path(logdir, name).read_text(errors="replace")
        except OSError:
            text = "(gone)"
        parts.append(f"--- {name} ---\n{text}")
    return "\n".join(parts)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # The child leads its own session, so its PID is the group of it and of anything it
    # forked (storescp --fork); nothing outside that group is touched.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen, timeout: float = 5) -> None:
    """Terminate ``proc`` (and its process group), then kill it; each wait bounded."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout)
    else:
        _signal_group(proc, signal.SIGKILL)  # leftovers of a forking server
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def stop_leaked_children() -> list[str]:
    """Stop every recorded process still alive and forget the rest.

    Returns a description (argv and output so far) of each process that was still alive.
    """
    leaked = [process_output(proc) for proc in CHILDREN if proc.poll() is None]
    for proc in list(CHILDREN):
        stop_process(proc)
        _discard_logs(proc)
    return leaked


def _discard_logs(proc: subprocess.Popen) -> None:
    logdir = getattr(proc, "logdir", None)
    if logdir:
        shutil.rmtree(logdir, ignore_errors=True)


@contextlib.contextmanager
def start_dcmtk_scp(tool: str, args: Sequence[str], timeout: float = 10
                    ) -> Iterator[tuple[subprocess.Popen, int]]:
    """Run ``/usr/bin/<tool> *args <port>`` on a free port; yield ``(proc, port)``.

    TCP_NODELAY=1 in its environment makes DCMTK disable Nagle, as our peers will.
    """
    path = dcmtk(tool)
    port = free_port()
    env = dict(os.environ, TCP_NODELAY="1")
    proc = _spawn([path, *args, str(port)], env=env)
    try:
        wait_listening(port, timeout, proc=proc)
        yield proc, port
    finally:
        stop_process(proc)
        _discard_logs(proc)


@contextlib.contextmanager
def start_pynetdicom_peer(args: Sequence[str], timeout: float = 15, script=PEER_SCRIPT
                          ) -> Iterator[tuple[subprocess.Popen, int]]:
    """Run a pynetdicom 3 peer script (default: the general one) as an SCP; yield
    ``(proc, port)``.

    The peer binds port 0 and prints ``PORT <n>``; we poll its stdout file for that
    line, bounded by ``timeout``.
    """
    python = require_pynetdicom()
    proc = _spawn([python, str(script), *args])
    try:
        port = _read_port_line(proc, timeout)
        yield proc, port
    finally:
        stop_process(proc)
        _discard_logs(proc)


def _read_port_line(proc: subprocess.Popen, timeout: float) -> int:
    out_path = os.path.join(proc.logdir, "stdout")  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in pathlib.Path(out_path).read_text(errors="replace").splitlines():
            if line.startswith("PORT "):
                return int(line.split()[1])
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode} before printing its "
                               f"port\n{process_output(proc)}")
        time.sleep(0.02)
    raise TimeoutError(f"peer printed no PORT line within {timeout} s\n"
                       f"{process_output(proc)}")


def run_tool(argv: Sequence[str], timeout: float = 30, env: Optional[dict] = None
             ) -> subprocess.CompletedProcess:
    """Run a command to completion with text output captured; never hangs.

    On timeout the process group is killed and the test fails with the output so far.
    """
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True, env=env)
    CHILDREN.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild still holds the pipes
            out, err = "", "(output unavailable)"
        pytest.fail(f"{list(argv)} did not finish within {timeout} s\n"
                    f"--- stdout ---\n{out}\n--- stderr ---\n{err}", pytrace=False)
    finally:
        if proc.poll() is not None:
            CHILDREN.remove(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_pynetdicom_scu(args: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the pynetdicom 3 peer script in SCU mode (``--scu echo|store|find ...``)."""
    return run_tool([require_pynetdicom(), str(PEER_SCRIPT), *args], timeout=timeout)


def describe(result: subprocess.CompletedProcess) -> str:
    """A run's argv, exit status and output, for assertion messages."""
    return (f"argv: {result.args}\nexit: {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")


def receiving_files(folder) -> int:
    """Files of ``folder`` that may be receiving a data set: ``.part`` names, and the
    unnamed files of ``folder`` this process holds open (Linux ``O_TMPFILE``: a folder
    storage's incoming files have no name until they are kept)."""
    count = sum(1 for name in os.listdir(folder) if name.endswith('.part'))
    prefix = os.path.realpath(folder) + os.sep
    with contextlib.suppress(OSError):
        for fd in os.listdir('/proc/self/fd'):
            with contextlib.suppress(OSError):
                target = os.readlink(f'/proc/self/fd/{fd}')
                if target.startswith(prefix) and target.endswith(' (deleted)'):
                    count += 1
    return count


def make_ct_file(path: str | os.PathLike, sop_instance_uid: Optional[str] = None,
                 rows: int = 64, cols: int = 64,
                 transfer_syntax: str = ExplicitVRLittleEndian) -> pathlib.Path:
    """Write a small but valid CT Image Storage Part-10 file (PS3.10 7.1) with pixel data.

    ``transfer_syntax`` may be any uncompressed syntax, or RLE Lossless (encoded by
    pydicom). Pixel values are a ramp, so a received copy can be compared exactly.
    """
    transfer_syntax = UID(transfer_syntax)
    sop_instance_uid = sop_instance_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    # RLE is made by compressing an Explicit VR Little Endian data set below.
    rle = transfer_syntax == RLELossless
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if rle else transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "CT"
    ds.Manufacturer = "pynetdicom2 tests"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "TEST^CT"
    ds.PatientID = "PID0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.KVP = "120"
    ds.SliceThickness = "1.0"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    # PS3.5 7.3: OW pixel data is byte-swapped in big endian; pydicom writes bytes as given.
    byteorder = "big" if transfer_syntax == "1.2.840.10008.1.2.2" else "little"
    ds.PixelData = b"".join((i % 4096).to_bytes(2, byteorder) for i in range(rows * cols))
    pydicom3 = int(pydicom.__version__.split(".")[0]) >= 3
    if transfer_syntax == RLELossless:
        # pydicom 3 would give the compressed copy a new SOP Instance UID by default.
        ds.compress(RLELossless, **({"generate_instance_uid": False} if pydicom3 else {}))
    elif transfer_syntax.is_compressed:
        raise ValueError(f"make_ct_file cannot encode {transfer_syntax.name}")

    path = pathlib.Path(path)
    if pydicom3:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:  # pydicom 2.4 (Python 3.9) reads the encoding from the data set
        ds.is_little_endian = byteorder == "little"
        ds.is_implicit_VR = transfer_syntax == "1.2.840.10008.1.2"
        pydicom.dcmwrite(path, ds, write_like_original=False)
    return path
