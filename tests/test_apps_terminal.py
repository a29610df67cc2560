"""storescu on a terminal: the progress bar (instances/s, MB/s) shows under a pseudo-
terminal (stdlib ``pty``) and stays out of a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from tests import peers
from tests.peers import describe, make_ct_file
from tests.test_apps import our_server, run_app

pytestmark = pytest.mark.skipif(sys.platform == 'win32', reason='needs a POSIX pty')

_BAR = re.compile(r'\r\s*\d+% \[[#-]+\] \d+/120 instances  [\d.]+ instances/s  [\d.]+ MB/s')


def run_on_terminal(argv, timeout: float = 30) -> tuple:
    """Run ``argv`` with stdin, stdout and stderr on a new pty; (exit code, output)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal,
                            start_new_session=True)
    peers.CHILDREN.append(proc)
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            pytest.fail(f'{argv} did not finish within {timeout} s: '
                        f'{b"".join(chunks)!r}', pytrace=False)
        code = proc.wait(timeout=5)
    finally:
        os.close(controller)
        peers.stop_process(proc)
    return code, b''.join(chunks).decode('utf-8', 'replace')


def test_progress_bar_on_a_terminal_and_none_in_a_pipe(tmp_path):
    source = tmp_path / 'src'
    source.mkdir()
    for n in range(120):
        make_ct_file(source / f'ct{n:03d}.dcm', rows=16, cols=16)
    with our_server('storescp', '-od', tmp_path / 'out', '--ignore') as (proc, port):
        code, shown = run_on_terminal(
            [sys.executable, '-m', 'pynetdicom2', 'storescu', '127.0.0.1', str(port),
             str(source)])
        piped = run_app('storescu', '127.0.0.1', port, source)
    assert code == 0, shown
    bars = _BAR.findall(shown)
    assert bars, shown
    assert re.search(r'100% \[#+\] 120/120 instances', shown), shown
    assert 'sent 120 of 120 instances' in shown

    assert piped.returncode == 0, describe(piped)
    assert piped.stderr == ''
    assert '\r' not in piped.stdout and '[#' not in piped.stdout
    assert piped.stdout.startswith('sent 120 of 120 instances')
