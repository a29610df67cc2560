"""The command-line servers with worker processes (``--workers N`` / ``--fork``) against
peers in processes of their own.

``storescp --workers 2`` receives from eight DCMTK ``storescu`` processes started
together: every file lands once, its data set byte-identical to what was sent, and
no process of the server (parent or worker) peaks above 64 MiB of resident memory.
``qrscp --workers 2`` takes stores of one study from several processes at once, some
of one SOP Instance UID, and its index still says exactly what is on disk.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pydicom
import pytest

from pynetdicom2.apps import qrindex, storescp
from tests import peers
from tests.peers import describe, make_ct_file
from tests.test_apps import our_server, run_app
from tests.test_concurrency import data_set_bytes
from tests.test_qrindex import read_index

ROOT = '1.2.826.0.1.3680043.8.498.77'
DEADLINE = 180


def uid(*parts) -> str:
    return '.'.join([ROOT, *map(str, parts)])


def server_processes(pid: int) -> list:
    """``pid`` and its children (the worker processes), from /proc."""
    children = []
    for task in pathlib.Path(f'/proc/{pid}/task').iterdir():
        children += [int(p) for p in (task / 'children').read_text().split()]
    return [pid, *children]


def peak_rss_mib(pid: int) -> float:
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    raise AssertionError(f'no VmHWM for {pid}')


def wait_all(procs, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    for proc in procs:
        try:
            proc.wait(max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f'still running after {deadline} s:\n{peers.process_output(proc)}')


def test_storescp_with_two_workers_takes_eight_dcmtk_storescu_at_once(tmp_path):
    storescu = peers.dcmtk('storescu')
    sources = {}
    for group in range(8):
        folder = tmp_path / 'src' / f'g{group}'
        folder.mkdir(parents=True)
        for n in range(6):
            path = make_ct_file(folder / f'{n}.dcm', uid(3, group, n), rows=256, cols=256)
            sources[uid(3, group, n)] = path
    out = tmp_path / 'out'
    env = dict(os.environ, TCP_NODELAY='1')
    with our_server('storescp', '--workers', '2', '-od', out) as (proc, port):
        processes = server_processes(proc.pid)
        assert len(processes) == 3, processes      # the parent and two workers
        senders = [peers._spawn([storescu, '-aet', f'SENDER{g}', '-aec', 'STORESCP', '+sd',
                                 '127.0.0.1', str(port), str(tmp_path / 'src' / f'g{g}')],
                                env=env) for g in range(8)]
        try:
            wait_all(senders)
        finally:
            for sender in senders:
                peers.stop_process(sender)
        peaks = {pid: peak_rss_mib(pid) for pid in server_processes(proc.pid)}
        assert set(peaks) == set(processes)        # no worker died and was replaced
    for sender in senders:
        assert sender.returncode == 0, peers.process_output(sender)
    assert all(peak < 64 for peak in peaks.values()), peaks
    assert sorted(p.name for p in out.iterdir() if p.name != '.incoming') == sorted(
        f'{sop}.dcm' for sop in sources)
    assert not list(out.rglob('*.part'))
    for sop, source in sources.items():
        assert data_set_bytes(out / f'{sop}.dcm') == data_set_bytes(source), sop


def test_fork_means_one_worker_per_core_and_a_bad_count_is_refused():
    parser = storescp.build_parser()
    assert storescp.serving_processes(parser.parse_args(['--fork'])) == (os.cpu_count() or 1)
    assert storescp.serving_processes(parser.parse_args(['--workers', '3'])) == 3
    assert storescp.serving_processes(parser.parse_args([])) == 1
    refused = run_app('storescp', '--workers', '-2', '0')
    assert refused.returncode != 0 and 'one per core' in refused.stderr, describe(refused)


STORE_ONE = '''
import sys
from pynetdicom2 import ae, sopclass, uids
port, paths = int(sys.argv[1]), sys.argv[2:]
client = ae.ClientAE('SENDER').add_scu(sopclass.storage_scu, [uids.CT_IMAGE_STORAGE])
remote = {'aet': 'ARCHIVE', 'address': '127.0.0.1', 'port': port}
for n, path in enumerate(paths, 1):
    # One association per instance: stores of different processes interleave.
    with client.request_association(remote) as assoc:
        print(path, int(assoc.get_scu(uids.CT_IMAGE_STORAGE)(path, n)), flush=True)
'''


def test_qrscp_with_two_workers_keeps_its_index_in_agreement_with_the_disk(tmp_path):
    sources = tmp_path / 'src'
    argvs = []
    versions = {}
    for sender in range(6):
        paths = []
        (sources / f's{sender}').mkdir(parents=True)
        for n in range(8):
            # Everything in one study and two series: workers race to create the rows.
            path = make_ct_file(sources / f's{sender}' / f'{n}.dcm', uid(3, sender, n))
            paths.append(path)
        for n in range(3):
            # Every sender also stores instances 9.0 .. 9.2, each its own version.
            path = make_ct_file(sources / f's{sender}' / f'shared{n}.dcm', uid(3, 9, n))
            paths.append(path)
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.PatientID, ds.StudyInstanceUID = 'WORKERS', uid(1, 1)
            ds.SeriesInstanceUID = uid(2, int(ds.SOPInstanceUID.split('.')[-2]) % 2)
            ds.InstanceNumber = len(versions) + 1       # tells the versions apart
            ds.save_as(path)
            versions[str(path)] = ds.InstanceNumber
        argvs.append([str(p) for p in paths])
    script = tmp_path / 'store_one.py'
    script.write_text(STORE_ONE)
    storage = tmp_path / 'pacs'
    with our_server('qrscp', '--storage', storage, '-aet', 'ARCHIVE', '--workers', '2',
                    '--max-associations', '0') as (proc, port):
        assert len(server_processes(proc.pid)) == 3
        senders = [peers._spawn([sys.executable, str(script), str(port), *paths])
                   for paths in argvs]
        try:
            wait_all(senders)
        finally:
            for sender in senders:
                peers.stop_process(sender)
        found = run_app('findscu', '-S', '-aec', 'ARCHIVE', '-k', 'QueryRetrieveLevel=IMAGE',
                        '-k', f'StudyInstanceUID={uid(1, 1)}', '-k', 'SeriesInstanceUID',
                        '-k', 'SOPInstanceUID', '-k', 'InstanceNumber', '--json',
                        '127.0.0.1', port)
        log = peers.process_output(proc)
    for sender in senders:
        assert sender.returncode == 0, (peers.process_output(sender)
                                        + '\n--- the server ---\n' + log)
        statuses = [line.rsplit(' ', 1)[1] for line in
                    pathlib.Path(sender.logdir, 'stdout').read_text().splitlines()]
        assert statuses == ['0'] * 11
    assert 'locked' not in log and 'Traceback' not in log, log
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    try:
        rows = sorted(read_index(index.path, 'SELECT SOPInstanceUID, path, InstanceNumber '
                                             'FROM instance'))
        (pending,), = read_index(index.path, 'SELECT COUNT(*) FROM placement')
        counts = index.counts()
    finally:
        index.close()
    files = sorted(p.relative_to(storage).as_posix() for p in storage.rglob('*.dcm'))
    assert pending == 0
    assert counts == {'PATIENT': 1, 'STUDY': 1, 'SERIES': 2, 'IMAGE': 6 * 8 + 3}
    assert sorted(path for _, path, _ in rows) == files and len(files) == 51
    # Each row describes the file it names: the version that won is the one indexed.
    for sop, path, number in rows:
        on_disk = pydicom.dcmread(storage / path, stop_before_pixels=True)
        assert on_disk.SOPInstanceUID == sop and str(on_disk.InstanceNumber) == str(number)
    assert found.returncode == 0, describe(found)
    answered = sorted(json.loads(line)['00080018']['Value'][0]
                      for line in found.stdout.splitlines())
    assert answered == sorted(sop for sop, _, _ in rows)
