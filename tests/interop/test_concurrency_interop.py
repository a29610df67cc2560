"""32 associations at once from threads and separate processes into one StorageAE.

Twelve associations come from threads of this process, and twenty from processes of
their own: our ``storescu`` command, DCMTK's ``storescu`` and pynetdicom's. Each stores
100 instances; every instance must land exactly once, byte-identical, and no file may
ever be seen under its final name before it is complete (the watcher of
tests/test_concurrency.py reads each file the moment it appears).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests import peers
from tests.test_concurrency import (
    CT, TIMEOUT, Watcher, client, data_set_bytes, listing, make_sources, pynetdicom2_errors,
    remote, run_threads, storage_server)

THREADS = 12
OURS, DCMTK, PYNETDICOM = 8, 8, 4
PER_ASSOCIATION = 100
DEADLINE = 240          # seconds for the whole run; each process is killed after it


def _command(kind: str, aet: str, port: int, folder) -> list:
    if kind == 'ours':
        return [sys.executable, '-m', 'pynetdicom2', 'storescu', '-q', '-aet', aet,
                '-aec', 'STORE_SCP', '-to', str(TIMEOUT), '127.0.0.1', str(port), str(folder)]
    if kind == 'dcmtk':
        return [peers.dcmtk('storescu'), '-aet', aet, '-aec', 'STORE_SCP', '+sd',
                '-to', str(TIMEOUT), '127.0.0.1', str(port), str(folder)]
    return [peers.pynetdicom_python(), '-m', 'pynetdicom', 'storescu', '-aet', aet,
            '-aec', 'STORE_SCP',
            '127.0.0.1', str(port), str(folder)]


def _overlap(first_seen: dict, group_of: dict) -> int:
    """How many groups were storing at one moment, judged by when their files appeared."""
    spans = {}
    for name, when in first_seen.items():
        group = group_of.get(name[:-len('.dcm')])
        if group is not None:
            low, high = spans.get(group, (when, when))
            spans[group] = (min(low, when), max(high, when))
    edges = sorted([(low, 1) for low, _ in spans.values()] +
                   [(high, -1) for _, high in spans.values()], key=lambda e: (e[0], -e[1]))
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


class TimedWatcher(Watcher):
    """The watcher, also noting when each file first appeared."""

    def __init__(self, *args):
        super().__init__(*args)
        self.first_seen: dict = {}

    def _scan(self):
        for name in os.listdir(self.store_dir):
            self.first_seen.setdefault(name, time.monotonic())
        super()._scan()


def test_threads_and_processes_of_three_implementations_store_everything_once(
        tmp_path, store_dir, caplog):
    dcmtk_env = dict(os.environ, TCP_NODELAY='1')
    peers.dcmtk('storescu')
    peers.require_pynetdicom()
    groups = THREADS + OURS + DCMTK + PYNETDICOM
    assert groups == 32
    sources = make_sources(tmp_path / 'src', groups, PER_ASSOCIATION)
    every = {uid: path for group in sources.values() for uid, path in group.items()}
    group_of = {uid: group for group, members in sources.items() for uid in members}
    # 36 processes share two cores here: a starved peer may stay silent longer than the
    # usual 20 s. Waiting past pynetdicom's own 30 s DIMSE timeout also tells a slow peer
    # (it goes on) from a lost response (it aborts, and files are missing).
    server = storage_server(store_dir, max_associations=40, dcm_timeout=60)
    kinds = ['ours'] * OURS + ['dcmtk'] * DCMTK + ['pynetdicom'] * PYNETDICOM

    def sender(group: int):
        with client(f'THREAD{group:02d}').request_association(remote(server)) as assoc:
            store = assoc.get_scu(CT)
            return [int(store(path, n)) for n, path in enumerate(sources[group].values(), 1)]

    procs = []
    with server, TimedWatcher(store_dir, every) as watcher:
        port = server.local_ae.port
        try:
            for n, kind in enumerate(kinds):
                folder = tmp_path / 'src' / f'g{THREADS + n:02d}'
                procs.append(peers._spawn(_command(kind, f'{kind[:5].upper()}{n:02d}', port,
                                                   folder), env=dcmtk_env))
            results = run_threads([lambda g=g: sender(g) for g in range(THREADS)],
                                  timeout=DEADLINE)
            deadline = time.monotonic() + DEADLINE
            for proc in procs:
                try:
                    proc.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pytest.fail(f'still running after {DEADLINE} s:\n'
                                f'{peers.process_output(proc)}')
        finally:
            for proc in procs:
                peers.stop_process(proc)
    for proc in procs:
        assert proc.returncode == 0, peers.process_output(proc)
    assert results == [[0] * PER_ASSOCIATION] * THREADS
    # Every instance exactly once, under its own name, and nothing else.
    assert listing(store_dir) == sorted(f'{uid}.dcm' for uid in every)
    for uid, path in every.items():
        assert data_set_bytes(store_dir / f'{uid}.dcm') == data_set_bytes(path), uid
    assert watcher.problems == []
    assert len(watcher.checked) == len(every) == 3200
    # The associations really ran side by side, not one after another.
    assert _overlap(watcher.first_seen, group_of) >= 16
    assert pynetdicom2_errors(caplog) == []
