#!/usr/bin/env python3
"""The benchmark suite: pynetdicom2 against DCMTK, pynetdicom 3 and raw sockets.

Generates synthetic CT data with pydicom, runs each case with SCP and SCU in
separate processes on 127.0.0.1, repeats it, and prints one Markdown table of
medians with the ratios against DCMTK, raw sockets and pynetdicom.
Run ``python3 -m benchmarks.run --help``; README.rst in this folder explains it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

if __package__ in (None, ''):  # run as a script: python3 benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = 'benchmarks'

from benchmarks import data  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    Peer, PeerError, file_system_of, free_port, run_to_end)

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DCMTK = {tool: f'/usr/bin/{tool}' for tool in ('storescp', 'storescu', 'echoscu', 'findscu')}
# DCMTK's Debian build leaves Nagle on unless told (about 20x slower on small messages).
DCMTK_ENV = dict(os.environ, TCP_NODELAY='1')
PY_ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
# pynetdicom 3 lives in a virtual environment of its own (tests/run_all.sh makes it), so
# its echoscu/storescu scripts never shadow DCMTK's; PYNETDICOM_PYTHON names another.
PND_PY = (os.environ.get('PYNETDICOM_PYTHON')
          or str(ROOT / '.peers' / 'pynetdicom' / 'bin' / 'python'))

MIB = 1024 * 1024
IMPLS = ('p2', 'dcmtk', 'pnd', 'raw')
NAMES = {'p2': 'pynetdicom2', 'dcmtk': 'DCMTK', 'pnd': 'pynetdicom', 'raw': 'raw socket'}
# Our SCP's ways of taking a C-STORE data set (benchmarks/p2_scp.py). "ignore" streams
# into a file object that drops the bytes: the counterpart of storescp --ignore.
P2_VARIANTS = {'p2': 'ignore', 'p2/bytes': 'bytes', 'p2/tempfile': 'tempfile'}


# ------------------------------------------------------------------ plan

@dataclass(frozen=True)
class ScpConfig:
    impl: str           # 'p2', 'p2/bytes', 'p2/tempfile', 'dcmtk', 'pnd', 'raw'
    mode: str           # 'ignore' or 'write'
    pdu: int
    find_matches: int = 0


@dataclass(frozen=True)
class Job:
    """One table row: a case, its settings and the SCU and SCP to run."""
    case: str
    label: str          # what the case moves, for the table
    mode: str           # 'ignore', 'write' or '-'
    pdu: int
    scu: str
    scp: ScpConfig
    unit: str           # 'MiB/s', 'inst/s', 'assoc/s', 'rsp/s'
    amount: float       # MiB moved, instances, associations or responses
    count: int          # what the SCU must report as succeeded
    files: Tuple[str, ...] = ()


@dataclass
class Sample:
    wall: float
    scu_cpu: float
    scp_cpu: float
    scu_rss: float
    scp_rss: float


@dataclass
class Result:
    job: Job
    samples: List[Sample] = field(default_factory=list)
    error: Optional[str] = None

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    @property
    def rate(self) -> Optional[float]:
        if self.error or not self.samples:
            return None
        return self.job.amount / self.median('wall')


def store_jobs(case: str, label: str, files: List[str], unit: str, modes, pdus,
               variants: bool) -> List[Job]:
    size = sum(os.path.getsize(f) for f in files) / MIB
    amount = size if unit == 'MiB/s' else len(files)
    combos = [('p2', 'p2'), ('p2', 'dcmtk'), ('dcmtk', 'p2'), ('dcmtk', 'dcmtk'),
              ('pnd', 'pnd'), ('raw', 'raw')]
    jobs = []
    for pdu in pdus:
        for mode in modes:
            extra = [('p2', v) for v in ('p2/bytes', 'p2/tempfile')] if (
                variants and mode == 'ignore') else []
            for scu, scp in combos + extra:
                jobs.append(Job(case, label, mode, pdu, scu, ScpConfig(scp, mode, pdu), unit,
                                amount, len(files), tuple(files)))
    return jobs


def plan(args: argparse.Namespace, sets: Dict[str, List[str]]) -> List[Job]:
    smoke = args.smoke
    jobs: List[Job] = []
    pdus = args.pdu
    modes = ('ignore', 'write')
    if 'store512k' in args.cases:
        files = sets['ct512k']
        each = os.path.getsize(files[0]) / 1024
        jobs += store_jobs('store512k', f'C-STORE {len(files)} x {each:.0f} KiB', files,
                           'MiB/s', modes, pdus, variants=True)
    if 'tiny' in args.cases:
        files = sets['tiny']
        each = os.path.getsize(files[0]) / 1024
        # All of a 2 KiB instance fits one PDU: the PDU setting changes nothing here.
        jobs += store_jobs('tiny', f'C-STORE {len(files)} x {each:.1f} KiB', files,
                           'inst/s', modes, pdus[:1], variants=False)
    if 'big' in args.cases:
        files = sets['big']
        each = os.path.getsize(files[0]) / MIB
        jobs += store_jobs('big', f'C-STORE 1 x {each:.0f} MiB', files, 'MiB/s', modes,
                           pdus, variants=True)
    if 'echo' in args.cases:
        n = args.echo_count
        label = f'{n} associations x 1 C-ECHO'
        scp_pdu = pdus[0]
        for scu, scp in [('p2', 'p2'), ('p2', 'dcmtk'), ('dcmtk', 'p2'), ('dcmtk', 'dcmtk'),
                         ('pnd', 'pnd'), ('dcmtk-spawn', 'dcmtk')]:
            jobs.append(Job('echo', label, '-', scp_pdu, scu, ScpConfig(scp, 'ignore', scp_pdu),
                            'assoc/s', n, n))
    if 'find' in args.cases:
        n = args.find_matches
        label = f'C-FIND, {n} matches'
        scp_pdu = pdus[0]
        for scu, scp in [('p2', 'p2'), ('dcmtk', 'p2'), ('pnd', 'p2'), ('pnd', 'pnd'),
                         ('dcmtk', 'pnd'), ('p2', 'pnd')]:
            jobs.append(Job('find', label, '-', scp_pdu, scu,
                            ScpConfig(scp, 'ignore', scp_pdu, n), 'rsp/s', n, n))
    wanted = set(args.impls)
    def allowed(job: Job) -> bool:
        return (job.scu.split('-')[0] in wanted
                and job.scp.impl.split('/')[0] in wanted)
    return [job for job in jobs if allowed(job)]


# ------------------------------------------------------------------ peers

@contextlib.contextmanager
def start_scp(cfg: ScpConfig, out_dir: str) -> Iterator[Tuple[Peer, int]]:
    py = sys.executable
    if cfg.impl.startswith('p2'):
        mode = 'write' if cfg.mode == 'write' else P2_VARIANTS[cfg.impl]
        peer = Peer([py, HERE / 'p2_scp.py', '--mode', mode, '--dir', out_dir,
                     '--pdu', cfg.pdu, '--find-matches', cfg.find_matches], env=PY_ENV)
    elif cfg.impl == 'pnd':
        peer = Peer([PND_PY, HERE / 'pnd_peer.py', 'scp', '--mode', cfg.mode, '--dir', out_dir,
                     '--pdu', cfg.pdu, '--find-matches', cfg.find_matches])
    elif cfg.impl == 'raw':
        peer = Peer([py, HERE / 'raw_peer.py', 'recv', '--mode', cfg.mode, '--dir', out_dir,
                     '--chunk', cfg.pdu])
    elif cfg.impl == 'dcmtk':
        port = free_port()
        # storescp accepts PDUs of 4096..131072 bytes: a larger setting is capped.
        pdu = min(cfg.pdu, 131072)
        mode = ['+B', '-od', out_dir] if cfg.mode == 'write' else ['--ignore']
        peer = Peer([DCMTK['storescp'], *mode, '-pdu', pdu, '-dhl', port], env=DCMTK_ENV)
    else:
        raise ValueError(cfg.impl)
    try:
        if cfg.impl == 'dcmtk':
            peer.wait_listening(port)
        else:
            port = peer.read_port()
        yield peer, port
    finally:
        peer.stop()
        peer.cleanup()


def dcmtk_failed(text: str) -> Optional[str]:
    for line in text.splitlines():
        if line.startswith(('E:', 'F:')) or ('Failed' in line and line.startswith('W:')):
            return line.strip()
    return None


def run_scu(job: Job, port: int, file_list: str, timeout: float) -> Tuple[float, float, float]:
    """Run the job's SCU once; returns (wall s, CPU s, peak RSS MiB). Raises PeerError."""
    py = sys.executable
    scu, case = job.scu, job.case
    action = {'echo': 'echo', 'find': 'find'}.get(case, 'store')
    if scu == 'dcmtk-spawn':
        # What an echoscu process costs besides the association: start-up, loading the
        # data dictionary, a refused connection (nothing listens on a free port).
        return _dcmtk_loop([DCMTK['echoscu'], '127.0.0.1', str(free_port())], job.count,
                           timeout, expect_failure=True)
    if scu == 'dcmtk':
        if action == 'echo':
            return _dcmtk_loop([DCMTK['echoscu'], '127.0.0.1', str(port)], job.count, timeout)
        if action == 'find':
            argv = [DCMTK['findscu'], '-S', '-k', 'QueryRetrieveLevel=STUDY',
                    '-k', 'PatientName=*', '-k', 'PatientID', '-k', 'StudyInstanceUID',
                    '-k', 'StudyDate', '127.0.0.1', str(port)]
        else:
            argv = [DCMTK['storescu'], '-R', '-pdu', str(min(job.pdu, 131072)),
                    '127.0.0.1', str(port), *job.files]
        fin = run_to_end(argv, timeout, env=DCMTK_ENV)
        problem = dcmtk_failed(fin.output) if fin.returncode == 0 else f'exit {fin.returncode}'
        if problem:
            raise PeerError(f'{problem}\n{fin.output}')
        return fin.wall, fin.cpu, fin.peak_rss_mib
    if scu == 'p2':
        argv = [py, HERE / 'p2_scu.py', action, '--port', port, '--pdu', job.pdu]
        env = PY_ENV
    elif scu == 'pnd':
        argv = [PND_PY, HERE / 'pnd_peer.py', 'scu', action, '--port', port, '--pdu', job.pdu]
        env = None
    elif scu == 'raw':
        argv = [py, HERE / 'raw_peer.py', 'send', '--port', port, '--chunk', job.pdu]
        env = None
    else:
        raise ValueError(scu)
    if action == 'store':
        argv += ['--file-list', file_list]
    elif action == 'echo':
        argv.append(str(job.count))
    fin = run_to_end([str(a) for a in argv], timeout, env=env, poll_rss=False)
    report = None
    for line in fin.stdout.splitlines():
        if line.startswith('{'):
            report = json.loads(line)
    if fin.returncode != 0 or report is None or report.get('ok') != job.count:
        raise PeerError(f'exit {fin.returncode}, report {report}, expected {job.count} '
                        f'successes\n{fin.output}')
    return report['wall'], report['cpu'], report['rss']


def _dcmtk_loop(argv: List[str], count: int, timeout: float, expect_failure: bool = False
                ) -> Tuple[float, float, float]:
    """Run a DCMTK tool ``count`` times one after another; total wall and CPU, max RSS."""
    start = time.monotonic()
    cpu = rss = 0.0
    for _ in range(count):
        fin = run_to_end(argv, max(1.0, timeout - (time.monotonic() - start)), env=DCMTK_ENV)
        if expect_failure:
            if fin.returncode == 0:
                raise PeerError(f'expected a refused connection\n{fin.output}')
        elif fin.returncode != 0 or dcmtk_failed(fin.output):
            raise PeerError(f'exit {fin.returncode}\n{fin.output}')
        cpu += fin.cpu
        rss = max(rss, fin.peak_rss_mib)
    return time.monotonic() - start, cpu, rss


def check_written(job: Job, out_dir: str) -> None:
    """Write mode: exactly the instances sent are in ``out_dir`` (then emptied)."""
    names = [n for n in os.listdir(out_dir) if not n.startswith('.')]
    size = sum(os.path.getsize(os.path.join(out_dir, n)) for n in names)
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    # Each run starts with nothing left for the disk to write back: a run that
    # follows the deletion of a previous run's files pays no one else's I/O.
    os.sync()
    if job.mode == 'write' and len(names) != job.count:
        raise PeerError(f'{len(names)} files written, {job.count} sent')
    if job.mode == 'write' and job.unit == 'MiB/s' and size < 0.99 * job.amount * MIB:
        raise PeerError(f'{size} bytes written, {job.amount * MIB:.0f} sent')


def run_all(jobs: List[Job], repeat: int, work: str, log) -> List[Result]:
    """Run every job ``repeat`` times; returns their results in the jobs' order.

    The SCPs of one case and setting (one process per configuration, so memory one
    left behind never shows in another's RSS) run side by side, and each repeat runs
    every job of them once: forward on even repeats, backward on odd ones. A drift
    in the machine's state (inodes freed by earlier runs, page cache, other load) then
    reaches every row of the case alike, not the SCP that happens to run first.
    """
    results = {job: Result(job) for job in jobs}
    cases: Dict[Tuple[str, str, int], Dict[ScpConfig, List[Job]]] = {}
    for job in jobs:
        cases.setdefault((job.case, job.mode, job.pdu), {}).setdefault(job.scp, []).append(job)
    for (case, mode, pdu), by_scp in cases.items():
        log(f'{case} mode={mode} pdu={pdu}: {len(by_scp)} SCP(s), '
            f'{sum(map(len, by_scp.values()))} job(s) x {repeat}')
        with contextlib.ExitStack() as stack:
            scps: Dict[ScpConfig, Tuple[Peer, int, str]] = {}
            for cfg, group in by_scp.items():
                out_dir = os.path.join(work, f'received-{len(scps)}')
                os.makedirs(out_dir, exist_ok=True)
                try:
                    scps[cfg] = (*stack.enter_context(start_scp(cfg, out_dir)), out_dir)
                except PeerError as exc:
                    _scp_failed(cfg, group, results, exc, log)
            order = [job for cfg, group in by_scp.items() if cfg in scps for job in group]
            for rep in range(repeat):
                for job in (order if rep % 2 == 0 else order[::-1]):
                    res = results[job]
                    if res.error:
                        continue
                    scp, port, out_dir = scps[job.scp]
                    try:
                        res.samples.append(run_one(job, scp, port, work, out_dir))
                    except PeerError as exc:
                        res.error = str(exc).splitlines()[0][:120]
                        log(f'  FAILED {job.case} {job.scu}->{job.scp.impl}: {exc}')
                        if scp.proc.poll() is not None:
                            _scp_failed(job.scp, by_scp[job.scp], results,
                                        PeerError(f'the SCP died\n{scp.output()}'), log, repeat)
                    else:
                        log(f'  {job.case} {job.scu}->{job.scp.impl} {job.mode} '
                            f'#{rep + 1}: {res.samples[-1].wall:.3f} s')
    return [results[job] for job in jobs]


def _scp_failed(cfg: ScpConfig, group: List[Job], results: Dict[Job, Result],
                exc: PeerError, log, repeat: int = 1) -> None:
    """The jobs of ``cfg`` that still had runs to make fail with its SCP."""
    log(f'  SCP {cfg.impl} failed: {exc}')
    for job in group:
        if not results[job].error and len(results[job].samples) < repeat:
            results[job].error = 'SCP failed: ' + str(exc).splitlines()[0][:100]


def run_one(job: Job, scp: Peer, port: int, work: str, out_dir: str) -> Sample:
    file_list = os.path.join(work, 'files.txt')
    with open(file_list, 'w') as f:
        f.write('\n'.join(job.files))
    mib = job.amount if job.unit == 'MiB/s' else 0
    timeout = 120 + mib + 0.3 * job.count
    scp.reset_peak()
    cpu0 = scp.cpu_seconds()
    wall, scu_cpu, scu_rss = run_scu(job, port, file_list, timeout)
    scp_cpu = scp.cpu_seconds() - cpu0
    scp_rss = scp.peak_rss_mib()
    if job.case not in ('echo', 'find'):
        check_written(job, out_dir)
    return Sample(wall, scu_cpu, scp_cpu, scu_rss, scp_rss)


# ------------------------------------------------------------------ table

def _name(impl: str) -> str:
    if impl == 'dcmtk-spawn':
        return 'DCMTK start-up only (echoscu, port closed)'
    base, _, variant = impl.partition('/')
    return NAMES[base] + (f' ({variant})' if variant else '')


def _reference(results: List[Result], job: Job, scu: str, scp: str) -> Optional[float]:
    for res in results:
        j = res.job
        if (j.case, j.mode, j.pdu, j.scu, j.scp.impl) == (job.case, job.mode, job.pdu, scu, scp):
            return res.rate
    return None


def _ratio(value: Optional[float], ref: Optional[float]) -> str:
    if value is None or not ref:
        return '—'
    return f'{value / ref:.2f}'


def _pdu_text(job: Job) -> str:
    if job.case in ('echo', 'find'):
        return '—'
    return f'{job.pdu // 1024} KiB' if job.pdu < MIB else f'{job.pdu // MIB} MiB'


def table(results: List[Result]) -> str:
    head = ('| case | PDU | SCP mode | SCU → SCP | wall s | rate | SCU CPU s | SCP CPU s '
            '| SCU RSS MiB | SCP RSS MiB | × DCMTK | × raw | × pynetdicom |')
    lines = [head, '|' + '|'.join(['---'] * (head.count('|') - 1)) + '|']
    for res in results:
        job = res.job
        rate = res.rate
        pair = f'{_name(job.scu)} → {_name(job.scp.impl)}'
        if res.error or not res.samples:
            lines.append(f'| {job.label} | {_pdu_text(job)} | {job.mode} | {pair} | FAILED: '
                         f'{(res.error or "no sample").replace("|", "/")} '
                         '| | | | | | | | |')
            continue
        dcmtk_ref = _reference(results, job, 'dcmtk', 'dcmtk')
        raw_ref = _reference(results, job, 'raw', 'raw') if job.unit == 'MiB/s' or \
            job.case == 'tiny' else None
        pnd_ref = _reference(results, job, 'dcmtk' if job.scu == 'dcmtk' else 'pnd', 'pnd')
        if job.case == 'find':
            dcmtk_ref = None  # DCMTK has no Q/R C-FIND SCP to compare with
        if job.case == 'echo':
            # echoscu's start-up dwarfs its association (see the notes): compare with
            # storescp driven by our in-process SCU, which compares the SCPs.
            dcmtk_ref = None if job.scu == 'dcmtk' else _reference(results, job, 'p2', 'dcmtk')
        if job.scu == 'dcmtk-spawn':
            dcmtk_ref = pnd_ref = None  # a baseline, not a contender
        lines.append(
            f'| {job.label} | {_pdu_text(job)} | {job.mode} | {pair} '
            f'| {res.median("wall"):.3f} | {rate:,.1f} {job.unit} '
            f'| {res.median("scu_cpu"):.2f} | {res.median("scp_cpu"):.2f} '
            f'| {res.median("scu_rss"):.0f} | {res.median("scp_rss"):.0f} '
            f'| {_ratio(rate, dcmtk_ref)} | {_ratio(rate, raw_ref)} | {_ratio(rate, pnd_ref)} |')
    return '\n'.join(lines)


def notes(results: List[Result], args: argparse.Namespace) -> str:
    out = []
    echo = {r.job.scu: r for r in results if r.job.case == 'echo' and r.job.scp.impl == 'dcmtk'}
    if echo:
        whole, startup = echo.get('dcmtk'), echo.get('dcmtk-spawn')
        times = ''
        if whole and startup and whole.samples and startup.samples:
            n = whole.job.count
            times = (f' (here {whole.median("wall") / n * 1e3:.1f} ms per echoscu process, '
                     f'{startup.median("wall") / n * 1e3:.1f} ms with nothing listening)')
        out.append('- Echo: DCMTK has no tool that opens many associations from one process '
                   '(echoscu --repeat sends its C-ECHOs on one association), so the DCMTK '
                   'SCU rows run one echoscu process per association, and its start-up '
                   '(mostly loading the data dictionary) dwarfs the association itself'
                   + times + '. The echo rows\' × DCMTK is therefore against pynetdicom2 → '
                   'DCMTK: storescp driven by the same in-process client, which compares '
                   'the SCPs.')
    out.append('- × DCMTK: against DCMTK storescu → storescp (same case, PDU and mode; echo: see above); '
               'storescp/storescu accept at most 128 KiB PDUs, so in the 1 MiB rows DCMTK '
               'runs at 128 KiB. × raw: against plain Python sockets moving the same file '
               'bytes with one 4-byte acknowledgement per instance. × pynetdicom: against '
               'pynetdicom → pynetdicom (for C-FIND with a DCMTK findscu client: findscu → '
               'pynetdicom).')
    out.append('- Wall time: Python SCUs time the network work themselves (interpreter '
               'start and imports excluded); DCMTK SCUs are timed as whole processes. CPU: '
               'user + system of each process during the run; RSS: peak resident set '
               '(VmHWM) of each process, reset before each run for the SCPs.')
    if any(r.job.scp.impl in ('p2/bytes', 'p2/tempfile') for r in results):
        out.append('- Our SCP in ignore mode streams each data set into a file object that '
                   'drops the bytes (the counterpart of storescp --ignore); "(bytes)" takes '
                   'the storage classes out of store_in_file, so each data set is gathered '
                   'in memory; "(tempfile)" keeps the AE\'s default get_file (a temporary '
                   'Part-10 file per instance). Write mode: StorageAE vs storescp +B -od.')
    if any(r.job.mode == 'write' for r in results):
        where = os.path.dirname(getattr(args, 'work', '')) or tempfile.gettempdir()
        out.append(f'- Write mode: the SCPs wrote into {where} ({file_system_of(where)}); '
                   'creating a file costs very differently on other file systems, and on '
                   'ext4 without a journal it grows with the files deleted in the last '
                   'minutes (docs/performance.rst).')
    load = os.getloadavg()
    out.append(f'- {args.repeat} repeat(s), medians; each repeat runs the rows of a case, '
               f'mode and PDU setting in turn (forward, then backward), against SCPs '
               f'started side by side; {os.cpu_count()} CPUs, load average '
               f'{getattr(args, "load_at_start", 0.0):.2f} at the start and {load[0]:.2f} at '
               f'the end (other work on the machine competes for the same cores); Python '
               f'{platform.python_version()}.')
    return '\n'.join(out)


# ------------------------------------------------------------------ main

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--smoke', action='store_true',
                   help='a few tiny files, one repeat, 16 KiB PDU: checks the harness runs')
    p.add_argument('--cases', default='store512k,tiny,big,echo,find',
                   help='comma-separated subset of store512k,tiny,big,echo,find')
    p.add_argument('--impls', default=','.join(IMPLS),
                   help='comma-separated subset of p2,dcmtk,pnd,raw (a row runs when both '
                        'its SCU and SCP are in it)')
    p.add_argument('--repeat', type=int, help='runs per row; the median is reported '
                   '(default 3, 1 with --smoke)')
    p.add_argument('--pdu', help='comma-separated maximum PDU lengths (default '
                   '16384,1048576; 16384 with --smoke)')
    p.add_argument('--echo-count', type=int, help='associations in the echo case (200)')
    p.add_argument('--find-matches', type=int, help='matches in the C-FIND case (5000)')
    p.add_argument('--data-dir', help='keep the generated data here and reuse it '
                   '(default: a temporary folder, deleted at the end)')
    p.add_argument('--write-dir', help='where the SCPs write in write mode (default: the '
                   'system\'s temporary folder); the notes name its file system')
    p.add_argument('--quiet', action='store_true', help='no progress lines on stderr')
    args = p.parse_args(argv)
    args.cases = [c for c in args.cases.split(',') if c]
    args.impls = [i for i in args.impls.split(',') if i]
    unknown = set(args.cases) - {'store512k', 'tiny', 'big', 'echo', 'find'}
    unknown |= set(args.impls) - set(IMPLS)
    if unknown:
        p.error(f'unknown: {", ".join(sorted(unknown))}')
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 3
    args.pdu = [int(x) for x in (args.pdu or ('16384' if args.smoke else '16384,1048576'))
                .split(',')]
    if args.echo_count is None:
        args.echo_count = 5 if args.smoke else 200
    if args.find_matches is None:
        args.find_matches = 50 if args.smoke else 5000
    return args


def available(args: argparse.Namespace, log) -> None:
    """Drop implementations that cannot run here, saying so."""
    if 'dcmtk' in args.impls and not all(os.access(p, os.X_OK) for p in DCMTK.values()):
        log('DCMTK tools missing in /usr/bin: DCMTK rows skipped')
        args.impls.remove('dcmtk')
    if 'pnd' in args.impls:
        if not os.access(PND_PY, os.X_OK):
            log(f'pynetdicom is not installed at {PND_PY}: its rows skipped')
            args.impls.remove('pnd')


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like an exception, so every peer is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    available(args, log)
    args.load_at_start = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix='pynetdicom2-bench-', dir=args.write_dir)
    args.work = work
    data_dir = args.data_dir or os.path.join(work, 'data')
    try:
        t0 = time.monotonic()
        sets = data.prepare(data_dir, data.SMOKE_SETS if args.smoke else data.FULL_SETS)
        log(f'data ready in {data_dir} ({time.monotonic() - t0:.1f} s)')
        jobs = plan(args, sets)
        results = run_all(jobs, args.repeat, work, log)
        print(table(results))
        print()
        print(notes(results, args))
        failed = sum(1 for r in results if r.error)
        log(f'{len(results)} rows, {failed} failed, {time.monotonic() - t0:.0f} s')
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
