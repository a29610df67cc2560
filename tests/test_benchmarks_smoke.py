"""The benchmark harness (benchmarks/) still runs end to end: ``--smoke`` mode.

No timing is asserted: only that every case ran for every implementation pair and the
one Markdown table came out with its rows. The micro-benchmarks run in quick mode.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from benchmarks.procs import file_system_of
from tests.peers import dcmtk, require_pynetdicom

ROOT = pathlib.Path(__file__).resolve().parent.parent

HEADER = ('| case | PDU | SCP mode | SCU → SCP | wall s | rate | SCU CPU s | SCP CPU s '
          '| SCU RSS MiB | SCP RSS MiB | × DCMTK | × raw | × pynetdicom |')

STORE_PAIRS = ['pynetdicom2 → pynetdicom2', 'pynetdicom2 → DCMTK', 'DCMTK → pynetdicom2',
               'DCMTK → DCMTK', 'pynetdicom → pynetdicom', 'raw socket → raw socket']
VARIANTS = ['pynetdicom2 → pynetdicom2 (bytes)', 'pynetdicom2 → pynetdicom2 (tempfile)']
ECHO_PAIRS = ['pynetdicom2 → pynetdicom2', 'pynetdicom2 → DCMTK', 'DCMTK → pynetdicom2',
              'DCMTK → DCMTK', 'pynetdicom → pynetdicom',
              'DCMTK start-up only (echoscu, port closed) → DCMTK']
FIND_PAIRS = ['pynetdicom2 → pynetdicom2', 'DCMTK → pynetdicom2', 'pynetdicom → pynetdicom2',
              'pynetdicom → pynetdicom', 'DCMTK → pynetdicom', 'pynetdicom2 → pynetdicom']


def run(argv: list, timeout: float) -> subprocess.CompletedProcess:
    """Run a harness command; on timeout SIGTERM it (it stops its peers), then kill."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=5)
        pytest.fail(f'{argv} did not finish within {timeout} s\n{out}\n{err}')
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def table_rows(text: str) -> list:
    """(case, PDU, mode, pair, rest...) of every data row of the Markdown table."""
    lines = [line for line in text.splitlines() if line.startswith('|')]
    assert lines and lines[0] == HEADER, text
    assert set(lines[1]) <= {'|', '-'}, lines[1]
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines[2:]]


def test_smoke_run_prints_every_row():
    dcmtk('storescp')
    require_pynetdicom()
    result = run([sys.executable, '-m', 'benchmarks.run', '--smoke'], timeout=240)
    assert result.returncode == 0, f'{result.stdout}\n{result.stderr}'
    rows = table_rows(result.stdout)
    failed = [row for row in rows if row[4].startswith('FAILED')]
    assert not failed, failed

    def pairs(case_prefix: str, mode: str) -> list:
        return [row[3] for row in rows if row[0].startswith(case_prefix) and row[2] == mode]

    for case in ('C-STORE 4 x', 'C-STORE 1 x'):
        assert pairs(case, 'ignore') == STORE_PAIRS + VARIANTS
        assert pairs(case, 'write') == STORE_PAIRS
    assert pairs('C-STORE 10 x', 'ignore') == STORE_PAIRS
    assert pairs('C-STORE 10 x', 'write') == STORE_PAIRS
    assert pairs('5 associations x 1 C-ECHO', '-') == ECHO_PAIRS
    assert pairs('C-FIND, 50 matches', '-') == FIND_PAIRS
    assert len(rows) == 2 * 8 + 2 * 6 + 2 * 6 + 6 + 6
    # Every row measured something: a rate with its unit, and the reference rows
    # compare to themselves as 1.00.
    for row in rows:
        assert row[5].split()[-1] in ('MiB/s', 'inst/s', 'assoc/s', 'rsp/s'), row
        assert float(row[5].split()[0].replace(',', '')) > 0, row
    dcmtk_rows = [row for row in rows if row[3] == 'DCMTK → DCMTK' and row[0].startswith('C-')]
    assert dcmtk_rows and all(row[10] == '1.00' for row in dcmtk_rows)
    assert 'Echo: DCMTK has no tool' in result.stdout


def test_smoke_subset_and_unknown_case():
    result = run([sys.executable, '-m', 'benchmarks.run', '--smoke', '--cases', 'tiny',
                  '--impls', 'p2,raw', '--quiet'], timeout=120)
    assert result.returncode == 0, f'{result.stdout}\n{result.stderr}'
    rows = table_rows(result.stdout)
    assert [(row[2], row[3]) for row in rows] == [
        ('ignore', 'pynetdicom2 → pynetdicom2'), ('ignore', 'raw socket → raw socket'),
        ('write', 'pynetdicom2 → pynetdicom2'), ('write', 'raw socket → raw socket')]
    assert all(row[11] != '—' for row in rows)  # × raw is filled in
    bad = run([sys.executable, '-m', 'benchmarks.run', '--cases', 'nope'], timeout=60)
    assert bad.returncode == 2 and 'unknown: nope' in bad.stderr


def test_micro_benchmarks_print_their_table():
    result = run([sys.executable, '-m', 'benchmarks.micro', '--quick'], timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '| micro-benchmark | per call | rate |'
    names = [line.split('|')[1].strip() for line in lines[2:]]
    assert 'A-ASSOCIATE-RQ decode (10 contexts)' in names
    assert 'C-STORE-RQ command set decode (decode_message)' in names
    assert 'iter_pdu_batches 16 MiB file, 1 MiB PDU' in names
    assert len(names) == 13


def run_order(stderr: str, case: str) -> list:
    """``(repeat, SCU->SCP, mode)`` of each run, in the order the progress lines give."""
    runs = []
    for line in stderr.splitlines():
        words = line.split()
        if len(words) == 6 and words[0] == case and words[3].startswith('#'):
            runs.append((int(words[3][1:].rstrip(':')), words[1], words[2]))
    return runs


def test_each_repeat_runs_the_rows_in_turn_forward_then_backward(tmp_path):
    dcmtk('storescp')
    result = run([sys.executable, '-m', 'benchmarks.run', '--smoke', '--cases', 'tiny',
                  '--impls', 'p2,dcmtk', '--repeat', '3', '--write-dir', str(tmp_path)],
                 timeout=120)
    assert result.returncode == 0, f'{result.stdout}\n{result.stderr}'
    # The notes say where the files went and on what file system; nothing stays there.
    assert f'the SCPs wrote into {tmp_path} ({file_system_of(str(tmp_path))})' \
        in result.stdout
    assert not file_system_of(str(tmp_path)).startswith('unknown')
    assert os.listdir(tmp_path) == []
    # One SCP process per configuration for all repeats: both started before the first run.
    assert 'tiny mode=write pdu=16384: 2 SCP(s), 4 job(s) x 3' in result.stderr
    forward = ['p2->p2', 'dcmtk->p2', 'p2->dcmtk', 'dcmtk->dcmtk']
    runs = [(rep, pair) for rep, pair, mode in run_order(result.stderr, 'tiny')
            if mode == 'write']
    assert runs == ([(1, pair) for pair in forward] + [(2, pair) for pair in forward[::-1]]
                    + [(3, pair) for pair in forward])


def test_concurrency_smoke_counts_files_and_takes_turns(tmp_path):
    dcmtk('storescp')
    result = run([sys.executable, '-m', 'benchmarks.concurrency', '--modes', 'ignore,write',
                  '--count', '12', '--processes', '2', '--repeat', '2', '--workers', '1',
                  '--scus', 'dcmtk', '--write-dir', str(tmp_path)], timeout=180)
    # A run whose files on disk are not the instances sent fails the whole command.
    assert result.returncode == 0, f'{result.stdout}\n{result.stderr}'
    assert f'Write mode wrote into {tmp_path} ({file_system_of(str(tmp_path))})' \
        in result.stdout
    assert os.listdir(tmp_path) == []
    rows = [line.split('|')[1:3] for line in result.stdout.splitlines()
            if line.startswith('| DCMTK')]
    pairs = ['DCMTK storescu x 2 -> DCMTK storescp --fork',
             'DCMTK storescu x 2 -> pynetdicom2, 1 process']
    assert [(name.strip(), mode.strip()) for name, mode in rows] == \
        [(pair, mode) for mode in ('ignore', 'write') for pair in pairs]
    assert 'SCU CPU s (all 2)' in result.stdout
    for mode in ('ignore', 'write'):
        order = [line.split(' [')[0] for line in result.stderr.splitlines()
                 if line.endswith(' s') and f' [{mode}]: ' in line]
        assert order == pairs + pairs[::-1], mode
