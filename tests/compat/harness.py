"""Run tests/compat/scenarios.py under the released pynetdicom2 0.9.8 and under ours, as
separate processes, and collect what each side observed.

``ORIG`` runs with the interpreter of 0.9.8's own virtual environment, isolated (``-I``:
no PYTHONPATH, no user site, no script directory), so it can only import the release;
``OURS`` runs with the test interpreter and this checkout first on PYTHONPATH. Every
process is started and stopped through tests.peers (own session, bounded waits).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import pydicom
import pytest

from tests import peers

SCRIPT = pathlib.Path(__file__).resolve().parent / 'scenarios.py'
ORIG, OURS = 'orig', 'ours'
#: (SCU side, SCP side): each library against itself, then the mixed pairs.
PAIRS = [(ORIG, ORIG), (OURS, OURS), (ORIG, OURS), (OURS, ORIG)]
PAIR_IDS = [f'{scu}-scu-{scp}-scp' for scu, scp in PAIRS]
WAIT = 30               # seconds for anything a peer should do at once


def argv(impl: str, *args: str) -> list[str]:
    if impl == ORIG:
        return [peers.original_python(), '-I', str(SCRIPT), *args]
    return [sys.executable, str(SCRIPT), *args]


def env(impl: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    if impl == OURS:
        environment['PYTHONPATH'] = str(peers.REPO)
    return environment


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{')]


def check_library(lines: Sequence[dict], impl: str, what: str) -> None:
    """The process imported the library it was meant to: 0.9.8 from its venv, or ours."""
    library = next((line for line in lines if line['event'] == 'library'), None)
    assert library is not None, what
    if impl == ORIG:
        assert library['version'] == '0.9.8', (library, what)
    else:
        assert pathlib.Path(library['path']) == peers.REPO / 'pynetdicom2', (library, what)


@dataclass
class Server:
    """A scenario's SCP process and what it printed."""
    impl: str
    proc: object
    port: int

    def events(self, name: Optional[str] = None) -> list[dict]:
        text = pathlib.Path(self.proc.logdir, 'stdout').read_text(errors='replace')
        lines = json_lines(text)
        return [line for line in lines if name is None or line['event'] == name]

    def wait_until(self, done: Callable[[list], bool], since: int = 0,
                   timeout: float = WAIT) -> None:
        """Wait until ``done(events printed since event number since)`` is true;
        fails after ``timeout`` seconds, with the SCP's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.events()[since:]):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f'{self.impl} SCP: the events expected did not come\n'
                    f'{peers.process_output(self.proc)}', pytrace=False)


@contextlib.contextmanager
def scp(impl: str, scenario: str, *args: str) -> Iterator[Server]:
    """Run the scenario's SCP under ``impl``; yield it once it listens."""
    proc = peers._spawn(argv(impl, '--scenario', scenario, '--role', 'scp', *args),
                        env=env(impl))
    try:
        port = peers._read_port_line(proc, WAIT)
        server = Server(impl, proc, port)
        check_library(server.events(), impl, peers.process_output(proc))
        yield server
    finally:
        peers.stop_process(proc)
        peers._discard_logs(proc)


def run(impl: str, scenario: str, role: str, *args: str, timeout: float = 90) -> dict:
    """Run the scenario's SCU (or offline) side under ``impl``; its result line."""
    result = peers.run_tool(argv(impl, '--scenario', scenario, '--role', role, *args),
                            timeout=timeout, env=env(impl))
    lines = json_lines(result.stdout)
    assert result.returncode == 0 and lines and lines[-1]['event'] == 'result', \
        peers.describe(result)
    check_library(lines, impl, peers.describe(result))
    return lines[-1]


@dataclass
class Outcome:
    """What one (SCU, SCP) pair observed: the SCU's result, the SCP's events during
    the run, the files the SCP kept and, through a ``Relay``, the bytes of each
    connection."""
    scu: dict
    scp_events: list = field(default_factory=list)
    wire: list = field(default_factory=list)
    files: dict = field(default_factory=dict)

    def scp(self, name: str) -> list[dict]:
        return [without(event, 'event') for event in self.scp_events
                if event['event'] == name]


def run_pairs(scenario: str, pairs: Sequence[tuple[str, str]] = PAIRS,
              scp_args: Sequence[str] = (), scu_args=lambda scu, scp: (),
              scp_dir: Optional[pathlib.Path] = None,
              settle: Optional[Callable[[list], bool]] = None, relay: bool = False) -> dict:
    """Run ``scenario`` for each (SCU, SCP) pair; returns {pair: Outcome}.

    One SCP process per SCP side serves the SCU runs of every pair with that SCP,
    one after the other; the events it prints during a run belong to that run. The
    SCP's hooks keep no state across associations, so a run cannot see the one
    before it. ``scu_args(scu, scp)`` gives a run's SCU arguments. ``scp_dir`` (also
    passed as the SCP's ``--dir``) is emptied after each run into ``<scp_dir>-<scu>-
    <scp>``, whose files become ``Outcome.files``. ``settle(events)`` tells, after
    each run, whether the SCP events of the run include what the SCP does after the
    SCU has gone (an abort it notices); the run waits for it. ``relay`` puts a
    recording ``Relay`` between them.
    """
    outcomes = {}
    extra = []
    if scp_dir is not None:
        scp_dir.mkdir(parents=True, exist_ok=True)   # 0.9.8's StorageAE never made it
        extra = ['--dir', str(scp_dir)]
    for scp_impl in dict.fromkeys(side for _, side in pairs):
        with scp(scp_impl, scenario, *extra, *scp_args) as server:
            for scu_impl in [scu for scu, side in pairs if side == scp_impl]:
                outcomes[scu_impl, scp_impl] = _run_one(
                    server, scu_impl, scenario, scu_args(scu_impl, scp_impl), scp_dir,
                    settle, relay)
    return {pair: outcomes[pair] for pair in pairs}


def _run_one(server: Server, scu_impl: str, scenario: str, scu_args: Sequence[str],
             scp_dir: Optional[pathlib.Path], settle, relay: bool) -> 'Outcome':
    before = len(server.events())
    with (Relay(server.port) if relay else contextlib.nullcontext()) as recorder:
        port = recorder.port if relay else server.port
        result = run(scu_impl, scenario, 'scu', '--port', str(port), *scu_args)
        if settle:
            server.wait_until(settle, since=before)
    files = {}
    if scp_dir is not None:
        kept = scp_dir.with_name(f'{scp_dir.name}-{scu_impl}-{server.impl}')
        kept.mkdir()
        for path in list(scp_dir.iterdir()):
            path.rename(kept / path.name)
        files = listing(kept)
    return Outcome(result, server.events()[before:],
                   recorder.connections if relay else [], files)


# ---------------------------------------------------------------- comparing

def without(record: dict, *keys: str) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


def plain(value):
    """``value`` without exception messages and the SCU's 'event' key: what the
    libraries must agree on (our messages say more, by design)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in ('message', 'event')}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def scp_story(outcome: Outcome) -> list[dict]:
    """The SCP's hook calls, in order, without the bookkeeping lines."""
    return [plain(event) for event in outcome.scp_events
            if event['event'] not in ('library', 'stopped')]


def file_obs(path: pathlib.Path) -> dict:
    """A stored Part-10 file as a user checks it: preamble and magic, what the file
    meta says it is, and a digest of the data set bytes after the meta group. (Each
    library writes its own Implementation Class UID, so the meta is not compared as
    bytes.)"""
    raw = path.read_bytes()
    meta = pydicom.filereader.read_file_meta_info(path)
    data_set = raw[132 + 12 + int(meta.FileMetaInformationGroupLength):]
    return {'dicm': raw[128:132].decode('latin-1'),
            'sop_class': str(meta.MediaStorageSOPClassUID),
            'sop_instance': str(meta.MediaStorageSOPInstanceUID),
            'transfer_syntax': str(meta.TransferSyntaxUID),
            'data_set_sha256': hashlib.sha256(data_set).hexdigest()}


def listing(directory: pathlib.Path) -> dict:
    """Every file in ``directory`` (recursively) by relative path, observed as stored."""
    return {str(p.relative_to(directory)): file_obs(p)
            for p in sorted(directory.rglob('*')) if p.is_file()}


def ct_with(path: pathlib.Path, patient_id: str) -> pathlib.Path:
    """A small CT file (16 x 16, Explicit VR Little Endian) whose PatientID is
    ``patient_id``; a new instance each time."""
    peers.make_ct_file(path, rows=16, cols=16)
    ds = pydicom.dcmread(path)
    ds.PatientID = patient_id
    ds.save_as(path)
    return path


# ---------------------------------------------------------------- bytes on the wire

class Relay:
    """A TCP relay on 127.0.0.1 in front of ``target_port`` that keeps every byte of
    each connection: ``connections`` is a list of ``{'rq': bytes from the requester,
    'ac': bytes from the acceptor}``. Threads and sockets end in ``stop()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._records: list[dict] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._start(self._accept_loop)

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            server = socket.create_connection(('127.0.0.1', self.target_port), timeout=WAIT)
            server.settimeout(None)
            record = {'rq': bytearray(), 'ac': bytearray()}
            self._records.append(record)
            self._sockets += [client, server]
            self._start(self._pump, client, server, record['rq'])
            self._start(self._pump, server, client, record['ac'])

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, kept: bytearray) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                kept += data
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    @property
    def connections(self) -> list[dict]:
        return [{k: bytes(v) for k, v in record.items()} for record in self._records]

    def stop(self) -> None:
        self._stopping.set()
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)   # wakes a pump blocked in recv()
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> 'Relay':
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def pdus(stream: bytes) -> list[tuple[int, bytes]]:
    """The PDUs of one direction of a connection: ``(type, whole PDU)`` (PS3.8 9.3:
    type, reserved byte, 4-byte big-endian length)."""
    found, offset = [], 0
    while offset + 6 <= len(stream):
        pdu_type, length = stream[offset], struct.unpack('>L', stream[offset + 2:offset + 6])[0]
        found.append((pdu_type, stream[offset:offset + 6 + length]))
        offset += 6 + length
    return found


def ae_title_fields(associate_pdu: bytes) -> tuple[bytes, bytes]:
    """The called and calling AE title fields, 16 bytes each, of an A-ASSOCIATE-RQ or
    -AC as sent (PS3.8 9.3.2, 9.3.3)."""
    return associate_pdu[10:26], associate_pdu[26:42]


def pdv_kinds(p_data_pdu: bytes) -> list[str]:
    """What each PDV of a P-DATA-TF PDU carries: 'command' or 'data set' (PS3.8
    9.3.5.1: bit 0 of the message control header)."""
    kinds, offset = [], 6
    while offset + 6 <= len(p_data_pdu):
        length = struct.unpack('>L', p_data_pdu[offset:offset + 4])[0]
        header = p_data_pdu[offset + 5]
        kinds.append('command' if header & 1 else 'data set')
        offset += 4 + length
    return kinds
