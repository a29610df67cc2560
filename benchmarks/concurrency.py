#!/usr/bin/env python3
"""The concurrency case: eight SCU processes started together, each storing its share of
500 x 512 KiB over its own association into one SCP.

Rows: DCMTK ``storescu`` x 8 and our SCU x 8 (``ClientAE`` + ``storage_scu``, one
association each) against DCMTK ``storescp --fork`` and against our SCP
(benchmarks/p2_scp.py) with 1 and 2 worker processes (``AE.workers``); ``ignore``
(receive, keep nothing) and ``write`` (files on disk, counted after each run:
``storescp --fork +B -od`` / ``StorageAE``). Prints a Markdown table of medians:
instances/s, the SCP's CPU seconds per 1000 instances (parent and every child
process, from /proc), the SCUs' CPU, the peak RSS of each SCP process and of the
SCUs, and the ratio against DCMTK -> DCMTK in the same mode. The SCPs of a mode run
side by side and each repeat runs every row once, in turn (forward, then backward).

Our SCU processes import first and start storing together when told (interpreter
start-up is not timed); DCMTK's start-up (about 15 ms) is. ``--handler-case`` measures
instead what workers are for: a handler that needs the CPU (each C-ECHO does 5 ms of
Python work), eight associations at once from threads of this process, served by
1 and 2 workers. Run ``python3 -m benchmarks.concurrency --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

if __package__ in (None, ''):  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = 'benchmarks'

from benchmarks import data  # noqa: E402
from benchmarks.procs import Peer, PeerError, file_system_of, free_port  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
STORESCP, STORESCU = '/usr/bin/storescp', '/usr/bin/storescu'
DCMTK_ENV = dict(os.environ, TCP_NODELAY='1')
PY_ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
TICKS = os.sysconf('SC_CLK_TCK')


# -- /proc: a process and its children ---------------------------------------------------

def process_tree(pid: int) -> List[int]:
    """``pid`` and its live children (worker processes, storescp --fork's children)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in pathlib.Path(f'/proc/{pid}/task').iterdir():
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / 'children').read_text().split()]
    return pids


def _stat(pid: int) -> List[str]:
    with open(f'/proc/{pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, of its children still alive and of those it reaped
    (utime + stime + cutime + cstime of each), so far."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError):
            total += sum(int(v) for v in _stat(member)[11:15])
    return total / TICKS


def peak_rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):
        pathlib.Path(f'/proc/{pid}/clear_refs').write_text('5')


# -- one of our SCU processes ------------------------------------------------------------

def scu_main(argv: List[str]) -> int:
    """``scu PORT PDU FILE...``: import, say READY, wait for a line on stdin, store every
    file over one association; print one JSON line (ok, failed, wall, cpu, rss)."""
    from benchmarks.p2_scu import cpu, peak_rss_mib as own_peak, store
    from pynetdicom2.ae import ClientAE
    port, pdu, files = int(argv[0]), int(argv[1]), argv[2:]
    ae = ClientAE('P2SCU', max_pdu_length=pdu)
    ae.dcm_timeout = 60
    print('READY', flush=True)
    sys.stdin.readline()
    wall, used = time.perf_counter(), cpu()
    result = store(ae, {'aet': 'ANY-SCP', 'address': '127.0.0.1', 'port': port}, files)
    result.update(wall=time.perf_counter() - wall, cpu=cpu() - used, rss=own_peak())
    print(json.dumps(result), flush=True)
    return 0 if result['failed'] == 0 else 1


# -- a handler that needs the CPU ---------------------------------------------------------

def handler_case(workers_list: List[int], repeat: int, threads: int = 8,
                 per_association: int = 40) -> str:
    """C-ECHOs whose handler works 5 ms of CPU each: the server is the bottleneck."""
    import threading
    from pynetdicom2 import ae as ae_module, sopclass, statuses, uids

    class Busy(ae_module.AE):
        def on_receive_echo(self, context):
            end = time.process_time() + 0.005        # 5 ms of this thread's CPU
            while time.process_time() < end:
                pass
            return statuses.SUCCESS

    def burst(port: int) -> float:
        client = ae_module.ClientAE('CLIENT').add_scu(sopclass.verification_scu)
        remote = {'aet': 'BUSY', 'address': '127.0.0.1', 'port': port}

        def association() -> None:
            with client.request_association(remote) as assoc:
                echo = assoc.get_scu(uids.VERIFICATION_SOP_CLASS)
                for msg_id in range(1, per_association + 1):
                    echo(msg_id)
        start = time.perf_counter()
        running = [threading.Thread(target=association) for _ in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join(600)
        return threads * per_association / (time.perf_counter() - start)

    servers = {}
    rates: Dict[int, List[float]] = {w: [] for w in workers_list}
    try:
        for workers in workers_list:
            server = Busy('BUSY', 0, bind_address='127.0.0.1', workers=workers)
            server.add_scp(sopclass.verification_scp)
            servers[workers] = server.__enter__()
        for _ in range(repeat):       # alternating, so that load changes hit all alike
            for workers, server in servers.items():
                rates[workers].append(burst(server.local_ae.port))
    finally:
        for server in servers.values():
            server.quit()
    first = statistics.median(rates[workers_list[0]])
    out = ['| server | C-ECHO/s (5 ms of CPU each) | x first row |', '|---|---|---|']
    for workers in workers_list:
        rate = statistics.median(rates[workers])
        out.append(f'| pynetdicom2, {workers} worker(s) | {rate:.0f} | {rate / first:.2f} |')
    return '\n'.join(out)


# -- the harness ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    scu: str            # 'dcmtk' or 'p2'
    scp: str            # 'dcmtk' (storescp --fork) or 'p2'
    workers: int        # our SCP's worker processes (0 for DCMTK)
    mode: str           # 'ignore' or 'write'
    processes: int = 8  # SCU processes

    @property
    def label(self) -> str:
        scp = 'DCMTK storescp --fork' if self.scp == 'dcmtk' else (
            f'pynetdicom2, {self.workers} worker{"s" if self.workers > 1 else ""}'
            if self.workers > 1 else 'pynetdicom2, 1 process')
        scu = 'DCMTK storescu' if self.scu == 'dcmtk' else 'pynetdicom2'
        return f'{scu} x {self.processes} -> {scp}'


@dataclass
class Sample:
    wall: float
    scp_cpu: float
    scu_cpu: float
    scp_rss: Dict[int, float]
    scu_rss: float
    processes: int


@dataclass
class Result:
    row: Row
    samples: List[Sample] = field(default_factory=list)
    error: Optional[str] = None

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)


class Scp:
    """One SCP process (with its workers or children) for the rows of one setting."""

    def __init__(self, row: Row, pdu: int, out: pathlib.Path) -> None:
        self.out = out
        if row.scp == 'dcmtk':
            self.port = free_port()
            storage = ['+B', '-od', str(out)] if row.mode == 'write' else ['--ignore']
            self.peer = Peer([STORESCP, '--fork', '-pdu', str(min(pdu, 131072)), *storage,
                              str(self.port)], env=DCMTK_ENV)
            self.peer.wait_listening(self.port)
        else:
            args = [sys.executable, str(HERE / 'p2_scp.py'), '--mode', row.mode, '--pdu',
                    str(pdu), '--workers', str(row.workers)]
            if row.mode == 'write':
                args += ['--dir', str(out)]
            self.peer = Peer(args, env=PY_ENV)
            self.port = self.peer.read_port()

    def stop(self) -> None:
        self.peer.stop()
        self.peer.cleanup()


def _scu_argvs(row: Row, port: int, pdu: int, shares: List[List[str]]) -> List[List[str]]:
    if row.scu == 'dcmtk':
        return [[STORESCU, '-aec', 'ANY-SCP', '-pdu', str(min(pdu, 131072)), '127.0.0.1',
                 str(port), *share] for share in shares]
    return [[sys.executable, '-m', 'benchmarks.concurrency', 'scu', str(port), str(pdu),
             *share] for share in shares]


def run_sample(row: Row, scp: Scp, pdu: int, shares: List[List[str]]) -> Sample:
    pid = scp.peer.pid
    for member in process_tree(pid):
        reset_peak(member)
    cpu_before = tree_cpu(pid)
    procs = []
    env = DCMTK_ENV if row.scu == 'dcmtk' else PY_ENV
    try:
        if row.scu == 'p2':
            for argv in _scu_argvs(row, scp.port, pdu, shares):
                procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, env=env, cwd=ROOT,
                                              text=True))
            for proc in procs:
                if proc.stdout.readline().strip() != 'READY':
                    raise PeerError(f'an SCU did not start: {proc.args[:4]}')
            start = time.perf_counter()
            for proc in procs:
                proc.stdin.write('go\n')
                proc.stdin.flush()
        else:
            start = time.perf_counter()
            for argv in _scu_argvs(row, scp.port, pdu, shares):
                procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, env=env, text=True))
        scu_cpu = 0.0
        scu_rss = 0.0
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise PeerError(f'an SCU exited with {proc.returncode}: {proc.args[:6]}')
            if row.scu == 'p2':
                report = json.loads(proc.stdout.read().splitlines()[-1])
                scu_cpu += report['cpu']
                scu_rss = max(scu_rss, report['rss'])
            else:
                scu_cpu += usage.ru_utime + usage.ru_stime
        wall = time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    # storescp --fork: its children end after their association; wait for them.
    deadline = time.monotonic() + 10
    while row.scp == 'dcmtk' and len(process_tree(pid)) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    processes = process_tree(pid)
    rss = {member: peak_rss_mib(member) for member in processes}
    scp_cpu = tree_cpu(pid) - cpu_before
    if row.mode == 'write':
        kept = sum(1 for p in scp.out.rglob('*') if p.is_file() and not p.name.startswith('.'))
        for path in scp.out.iterdir():
            if path.is_file():
                path.unlink()
        # The next run never pays for the disk writing back what this one left.
        os.sync()
        if kept != sum(len(s) for s in shares):
            raise PeerError(f'{kept} files on disk, {sum(len(s) for s in shares)} sent')
    return Sample(wall, scp_cpu, scu_cpu, rss, scu_rss, len(processes))


def plan(args) -> List[Row]:
    rows = []
    n = args.processes
    for mode in args.modes:
        rows.append(Row('dcmtk', 'dcmtk', 0, mode, n))
        for workers in args.workers:
            rows.append(Row('dcmtk', 'p2', workers, mode, n))
        if 'p2' in args.scus:
            rows.append(Row('p2', 'dcmtk', 0, mode, n))
            for workers in args.workers:
                rows.append(Row('p2', 'p2', workers, mode, n))
    return rows


def table(results: List[Result], count: int, processes: int) -> str:
    out = [f'| SCU -> SCP | mode | inst/s | x DCMTK | SCP CPU s / 1000 inst | SCU CPU s '
           f'(all {processes}) | SCP processes: peak RSS MiB | SCU peak RSS MiB |',
           '|---|---|---|---|---|---|---|---|']
    reference = {r.row.mode: count / r.median('wall') for r in results
                 if r.row.scu == 'dcmtk' and r.row.scp == 'dcmtk' and r.samples}
    for r in results:
        if r.error or not r.samples:
            out.append(f'| {r.row.label} | {r.row.mode} | failed: {r.error} |||||')
            continue
        rate = count / r.median('wall')
        ratio = rate / reference[r.row.mode] if r.row.mode in reference else float('nan')
        peaks = [max(s.scp_rss.values()) for s in r.samples]
        last = r.samples[-1]
        rss = ', '.join(f'{v:.0f}' for v in sorted(last.scp_rss.values(), reverse=True))
        scu_rss = f'{r.median("scu_rss"):.0f}' if r.row.scu == 'p2' else '-'
        out.append(f'| {r.row.label} | {r.row.mode} | {rate:.0f} | {ratio:.2f} | '
                   f'{1000 * r.median("scp_cpu") / count:.2f} | {r.median("scu_cpu"):.2f} | '
                   f'{rss} (max {max(peaks):.0f}) | {scu_rss} |')
    return '\n'.join(out)


def run_rows(rows: List[Row], args, shares: List[List[str]],
             out: pathlib.Path) -> List[Result]:
    """Run every row ``args.repeat`` times; returns their results in the rows' order.

    The SCPs of one mode run side by side (one per row, each with its own folder), and
    each repeat runs every row of the mode once: forward on even repeats, backward on
    odd ones, so a drift in the machine's state reaches every row alike.
    """
    results = {row: Result(row) for row in rows}
    for mode in dict.fromkeys(row.mode for row in rows):
        group = [row for row in rows if row.mode == mode]
        scps: Dict[Row, Scp] = {}
        try:
            for row in group:
                folder = out / f'{mode}-{len(scps)}'
                folder.mkdir()
                try:
                    scps[row] = Scp(row, args.pdu, folder)
                except (PeerError, OSError, ValueError) as exc:
                    results[row].error = str(exc).splitlines()[0][:200]
            for rep in range(args.repeat):
                for row in (group if rep % 2 == 0 else group[::-1]):
                    result = results[row]
                    if result.error:
                        continue
                    scp = scps[row]
                    try:
                        result.samples.append(run_sample(row, scp, args.pdu, shares))
                    except (PeerError, OSError, ValueError) as exc:
                        result.error = str(exc).splitlines()[0][:200]
                        print(scp.peer.output(2000), file=sys.stderr)
                        continue
                    print(f'{row.label} [{row.mode}]: {args.count / result.samples[-1].wall:.0f}'
                          f' inst/s, SCP CPU {result.samples[-1].scp_cpu:.2f} s',
                          file=sys.stderr, flush=True)
        finally:
            for scp in scps.values():
                scp.stop()
    return [results[row] for row in rows]


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['scu']:
        return scu_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--modes', type=lambda v: v.split(','), default=['ignore', 'write'])
    p.add_argument('--workers', type=lambda v: [int(x) for x in v.split(',')],
                   default=[1, 2], help='our SCP\'s worker counts (default 1,2)')
    p.add_argument('--scus', type=lambda v: v.split(','), default=['dcmtk', 'p2'])
    p.add_argument('--pdu', type=int, default=16384)
    p.add_argument('--processes', type=int, default=8, help='SCU processes (default 8)')
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--count', type=int, default=500, help='instances of 512 KiB (500)')
    p.add_argument('--data-dir', help='where to generate (and reuse) the data')
    p.add_argument('--write-dir', help='where the SCPs write in write mode (default: the '
                   'system\'s temporary folder)')
    p.add_argument('--handler-case', action='store_true',
                   help='only the case of a handler that needs the CPU (no data)')
    args = p.parse_args(argv)
    if args.handler_case:
        print(handler_case(args.workers, args.repeat))
        load = os.getloadavg()
        print(f'\n8 associations at once, 40 C-ECHOs each, medians of {args.repeat}; '
              f'{os.cpu_count()} cores, load average {load[0]:.1f} at the end.')
        return 0
    data_dir = args.data_dir or tempfile.mkdtemp(prefix='bench-concurrency-')
    files = data.prepare(data_dir, {'ct512k': (args.count, 512, 512)})['ct512k']
    shares = [files[n::args.processes] for n in range(args.processes)]
    out = pathlib.Path(tempfile.mkdtemp(prefix='bench-concurrency-out-', dir=args.write_dir))
    try:
        results = run_rows(plan(args), args, shares, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(table(results, len(files), args.processes))
    load = os.getloadavg()
    print(f'\n{args.processes} SCU processes, {len(files)} instances, PDU {args.pdu}, '
          f'medians of {args.repeat}; {os.cpu_count()} cores, load average '
          f'{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end. Write mode wrote into '
          f'{out.parent} ({file_system_of(str(out.parent))}).')
    return 0 if all(not r.error for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
