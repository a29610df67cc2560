"""Serving with worker processes (pynetdicom2.workers, ``AE(workers=N)``), as users see it.

An AE subclass with two workers answers 16 associations from four client processes,
each answer naming the process that served it (``os.getpid()`` in a C-FIND
identifier): both workers served. ``quit()`` and ``shutdown()`` leave no process
(checked in /proc), workers die with their parent, a worker killed with SIGKILL is
replaced while the other keeps serving, ``max_associations`` holds over all workers
(also after a worker died holding an association), and a StorageAE with two workers
keeps every file intact, colliding names resolved as in one process. qrscp's index
moves a file and its rows as one step across processes. The command-line tools and
DCMTK peers are in tests/interop/test_workers_interop.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import signal
import sys
import threading
import time
from typing import List

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids, workers
from pynetdicom2.exceptions import AssociationRejectedError
from tests import peers
from tests.peers import make_ct_file
from tests.test_concurrency import data_set_bytes, wait_until
from tests.test_qrindex import read_index

TIMEOUT = 20
FIND = uids.STUDY_ROOT_FIND_SOP_CLASS

# A client process: COUNT associations at once (threads), one C-FIND each; prints the
# PatientID and PatientName of every answer, one JSON list per line.
FIND_CLIENT = '''
import json, sys, threading
from pydicom.dataset import Dataset
from pynetdicom2 import ae, sopclass, uids
port, count = int(sys.argv[1]), int(sys.argv[2])
answers, lock = [], threading.Lock()
def one():
    client = ae.ClientAE('CLIENT').add_scu(sopclass.qr_find_scu)
    client.dcm_timeout = 20
    remote = {'aet': 'WORKERS', 'address': '127.0.0.1', 'port': port}
    with client.request_association(remote) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = 'STUDY'
        query.PatientID = ''
        query.PatientName = ''
        for ds, status in assoc.get_scu(uids.STUDY_ROOT_FIND_SOP_CLASS)(query, 1):
            if ds is not None:
                with lock:
                    answers.append([ds.PatientID, str(ds.PatientName)])
threads = [threading.Thread(target=one) for _ in range(count)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
print(json.dumps(answers))
'''

# A client process storing the files named on its command line over one association.
STORE_CLIENT = '''
import sys
from pynetdicom2 import ae, sopclass, uids
port, paths = int(sys.argv[1]), sys.argv[2:]
client = ae.ClientAE('CLIENT').add_scu(sopclass.storage_scu, [uids.CT_IMAGE_STORAGE])
client.dcm_timeout = 20
remote = {'aet': 'WORKERS', 'address': '127.0.0.1', 'port': port}
with client.request_association(remote) as assoc:
    store = assoc.get_scu(uids.CT_IMAGE_STORAGE)
    for n, path in enumerate(paths, 1):
        status = store(path, n)
        print(path, int(status))
'''


class PidAE(ae_module.AE):
    """Answers every C-FIND with one identifier naming the serving process:
    PatientID the process ID, PatientName ``<worker number>^<pid seen at start>``."""

    hold_seconds = 0.0
    started_in = None

    def on_worker_start(self):
        self.started_in = os.getpid()

    def on_receive_find(self, context, ds):
        # Keep the association a moment: associations from the clients overlap.
        time.sleep(self.hold_seconds)
        answer = Dataset()
        answer.QueryRetrieveLevel = 'STUDY'
        answer.PatientID = str(os.getpid())
        answer.PatientName = f'{self.worker_number}^{self.started_in}'
        yield answer, 0xFF00


def pid_server(count: int = 2, **attributes) -> PidAE:
    server = PidAE('WORKERS', 0, bind_address='127.0.0.1', workers=count)
    server.add_scp(sopclass.qr_find_scp)
    server.dcm_timeout = TIMEOUT
    for name, value in attributes.items():
        setattr(server, name, value)
    return server


def remote(server) -> dict:
    return {'aet': 'WORKERS', 'address': '127.0.0.1', 'port': server.local_ae.port}


def client() -> ae_module.ClientAE:
    scu = ae_module.ClientAE('CLIENT').add_scu(sopclass.qr_find_scu)
    scu.dcm_timeout = TIMEOUT
    return scu


def serving_pid(assoc) -> int:
    """The process ID the server's handler reports on this association."""
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.PatientID = ''
    answers = [ds for ds, _ in assoc.get_scu(FIND)(query, 1) if ds is not None]
    assert len(answers) == 1
    return int(answers[0].PatientID)


def ask_once(server) -> int:
    with client().request_association(remote(server)) as assoc:
        return serving_pid(assoc)


def associate_when_admitted(server, timeout: float = 10):
    """Enter an association, trying again while it is rejected (2, 3, 2): a released
    association stops counting only once the server's thread has finished it, a
    moment after the release reached the requester."""
    deadline = time.monotonic() + timeout
    while True:
        manager = client().request_association(remote(server))
        try:
            return manager, manager.__enter__()
        except AssociationRejectedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def our_children() -> set:
    """PIDs of this process's live (or unreaped) children, from /proc."""
    children = set()
    for task in pathlib.Path(f'/proc/{os.getpid()}/task').iterdir():
        try:
            children.update(int(p) for p in (task / 'children').read_text().split())
        except OSError:
            continue
    return children


def process_state(pid: int):
    """The state letter of ``pid`` in /proc ('Z' zombie ...), None when gone."""
    try:
        return pathlib.Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError:
        return None


def run_clients(script: str, argvs: List[List[str]], tmp_path, timeout: float = 90):
    """Start one Python process per argv at once; wait for all; their stdout texts."""
    path = tmp_path / 'client.py'
    path.write_text(script)
    procs = [peers._spawn([sys.executable, str(path), *argv]) for argv in argvs]
    outputs = []
    try:
        deadline = time.monotonic() + timeout
        for proc in procs:
            proc.wait(max(1.0, deadline - time.monotonic()))
            text = pathlib.Path(proc.logdir, 'stdout').read_text()
            assert proc.returncode == 0, peers.process_output(proc)
            outputs.append(text)
    finally:
        for proc in procs:
            peers.stop_process(proc)
    return outputs


pytestmark = pytest.mark.skipif(not workers.FORK_AVAILABLE, reason='worker processes need fork')


# -- serving ------------------------------------------------------------------------------

def test_two_workers_serve_sixteen_associations_from_four_processes(tmp_path):
    server = pid_server(2, hold_seconds=0.3)
    with server:
        pids = server.worker_pids
        assert len(pids) == 2 and os.getpid() not in pids
        outputs = run_clients(FIND_CLIENT, [[str(server.local_ae.port), '4']] * 4, tmp_path)
    answers = [answer for text in outputs for answer in json.loads(text)]
    assert len(answers) == 16
    # Every handler ran in a worker; both workers served; each knew its number and
    # had run on_worker_start in its own process.
    served = {int(pid) for pid, _ in answers}
    assert served == set(pids)
    for pid, name in answers:
        number, started_in = name.split('^')
        assert int(started_in) == int(pid) and number in ('0', '1')
    assert len({name for _, name in answers}) == 2


def test_port_zero_is_read_back_before_the_workers_start():
    server = pid_server(2)
    port = server.local_ae.port
    assert port > 0
    with server:
        assert server.local_ae.port == port
        assert ask_once(server) in server.worker_pids


def test_quit_leaves_no_worker_process():
    server = pid_server(3)
    with server:
        pids = server.worker_pids
        assert len(pids) == 3 and set(pids) <= our_children()
        assert ask_once(server) in pids
    assert server.worker_pids == []
    # Reaped: not even a zombie is left, and this process has none of them as child.
    assert [process_state(pid) for pid in pids] == [None, None, None]
    assert not set(pids) & our_children()
    # The AE can serve again, with new workers.
    with server:
        again = server.worker_pids
        assert len(again) == 3 and not set(again) & set(pids)
        assert ask_once(server) in again
    assert [process_state(pid) for pid in again] == [None, None, None]


def test_serve_forever_and_shutdown_as_in_0_9_8():
    server = pid_server(2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(server.worker_pids) == 2)
        pids = server.worker_pids
        assert ask_once(server) in pids
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        server.server_close()
    assert not thread.is_alive()
    assert [process_state(pid) for pid in pids] == [None, None]


PARENT = '''
import os, sys, time
from pynetdicom2 import ae
server = ae.AE('WORKERS', 0, bind_address='127.0.0.1', workers=2)
with server:
    print('PIDS', *server.worker_pids, flush=True)
    time.sleep(120)
'''


def test_workers_die_with_their_parent(tmp_path):
    script = tmp_path / 'parent.py'
    script.write_text(PARENT)
    proc = peers._spawn([sys.executable, str(script)])
    try:
        out = pathlib.Path(proc.logdir, 'stdout')
        assert wait_until(lambda: 'PIDS' in out.read_text(), 30), peers.process_output(proc)
        pids = [int(p) for p in out.read_text().split()[1:3]]
        assert all(process_state(pid) not in (None, 'Z') for pid in pids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
        # Gone, or a zombie waiting for whoever adopted it to reap it: not running.
        assert wait_until(lambda: all(process_state(pid) in (None, 'Z') for pid in pids))
    finally:
        peers.stop_process(proc)


def test_a_worker_killed_with_sigkill_is_replaced_and_the_other_keeps_serving(caplog):
    server = pid_server(2)
    with server:
        first, second = server.worker_pids
        os.kill(first, signal.SIGKILL)
        # Until it is replaced, the other worker serves every association.
        for _ in range(3):
            assert ask_once(server) in (second, *server.worker_pids)
        assert wait_until(lambda: len(server.worker_pids) == 2
                          and first not in server.worker_pids)
        now = server.worker_pids
        assert second in now
        served = {ask_once(server) for _ in range(4)}
        assert served <= set(now)
    assert process_state(first) is None
    assert [process_state(pid) for pid in now] == [None, None]


def test_a_worker_stopped_with_sigterm_ends_its_associations_cleanly_and_is_replaced(caplog):
    server = pid_server(2)
    with caplog.at_level(logging.WARNING, logger='pynetdicom2.workers'):
        with server:
            manager, assoc = associate_when_admitted(server)
            victim = serving_pid(assoc)
            os.kill(victim, signal.SIGTERM)
            # The worker closes the association it serves before it ends (waited for:
            # a request sent before the signal is handled would still be answered).
            assert wait_until(lambda: process_state(victim) in (None, 'Z'))
            with pytest.raises(Exception):
                serving_pid(assoc)
            with contextlib.suppress(Exception):
                manager.__exit__(None, None, None)
            assert wait_until(lambda: len(server.worker_pids) == 2
                              and victim not in server.worker_pids)
            assert ask_once(server) in server.worker_pids
    ended = [r.getMessage() for r in caplog.records if f'(pid {victim}) ended' in r.getMessage()]
    assert len(ended) == 1 and '(exit status 0)' in ended[0], ended


# -- max_associations over all workers ------------------------------------------------------

def _open_in_both_workers(server, tries: int = 10):
    """Two associations held open, served by different workers; [(assoc, pid), ...]."""
    held = []
    for _ in range(tries):
        manager, assoc = associate_when_admitted(server)
        pid = serving_pid(assoc)
        if any(pid == other for _, _, other in held):
            manager.__exit__(None, None, None)   # same worker: release, try again
            continue
        held.append((manager, assoc, pid))
        if len(held) == 2:
            return held
    for manager, _, _ in held:
        manager.__exit__(None, None, None)
    pytest.fail('no two associations landed in different workers')


def test_max_associations_counts_over_all_workers():
    server = pid_server(2, max_associations=2)
    with server:
        held = _open_in_both_workers(server)
        try:
            # Each worker serves one: only the count over both says "full".
            for _ in range(4):
                with pytest.raises(AssociationRejectedError) as rejected:
                    with client().request_association(remote(server)):
                        pass
                assert (rejected.value.result, rejected.value.source,
                        rejected.value.diagnostic) == (2, 3, 2)
        finally:
            manager, _, _ = held.pop()
            manager.__exit__(None, None, None)
        # One released, one more admitted (into either worker).
        try:
            manager, assoc = associate_when_admitted(server)
            with_pid = serving_pid(assoc)
            manager.__exit__(None, None, None)
            assert with_pid in server.worker_pids
        finally:
            for manager, _, _ in held:
                manager.__exit__(None, None, None)


def test_a_dead_workers_associations_stop_counting():
    server = pid_server(2, max_associations=1)
    with server:
        manager = client().request_association(remote(server))
        assoc = manager.__enter__()
        victim = serving_pid(assoc)
        with pytest.raises(AssociationRejectedError):
            ask_once(server)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(Exception):
            manager.__exit__(None, None, None)   # its association died with it
        assert wait_until(lambda: len(server.worker_pids) == 2
                          and victim not in server.worker_pids)
        manager, assoc = associate_when_admitted(server)
        with_pid = serving_pid(assoc)
        manager.__exit__(None, None, None)
        assert with_pid in server.worker_pids


# -- storage ----------------------------------------------------------------------------------

def test_storage_ae_with_workers_keeps_every_file_intact(tmp_path):
    sources = tmp_path / 'sources'
    sources.mkdir()
    files = [make_ct_file(sources / f'{n:02d}.dcm') for n in range(24)]
    # Two processes also send the same instance: both copies are kept, as in one process.
    shared = make_ct_file(sources / 'shared.dcm')
    store = tmp_path / 'store'
    server = ae_module.StorageAE(store, 'WORKERS', 0, bind_address='127.0.0.1', workers=2)
    server.dcm_timeout = TIMEOUT
    with server:
        port = str(server.local_ae.port)
        argvs = [[port, *map(str, files[n::4]), str(shared)] for n in range(4)]
        outputs = run_clients(STORE_CLIENT, argvs, tmp_path)
    statuses = [line.rsplit(' ', 1)[1] for text in outputs for line in text.splitlines()]
    assert statuses == ['0'] * 28
    kept = sorted(p.name for p in store.iterdir())
    uid = pydicom.dcmread(shared).SOPInstanceUID
    expected = sorted([f'{pydicom.dcmread(f).SOPInstanceUID}.dcm' for f in files]
                      + [f'{uid}.dcm'] + [f'{uid}_{n}.dcm' for n in (1, 2, 3)])
    assert kept == expected        # nothing else: no temporary file left
    for source in files + [shared] * 4:
        name = f'{pydicom.dcmread(source).SOPInstanceUID}.dcm'
        assert data_set_bytes(store / name) == data_set_bytes(source)
    for n in (1, 2, 3):
        assert data_set_bytes(store / f'{uid}_{n}.dcm') == data_set_bytes(shared)


# -- qrscp's index under several writing processes -------------------------------------------

def test_index_place_is_one_step_across_processes(tmp_path):
    """Two processes place versions of one SOP Instance UID; the first is held up
    between its rows and its file move. The second must wait for the whole step (the
    writer lock), else the disk would keep the first's file under the second's row."""
    from pynetdicom2.apps import qrindex
    storage = tmp_path / 'pacs'
    storage.mkdir()
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    final = storage / 'study' / 'instance.dcm'
    versions = []
    for number in (1, 2):
        path = make_ct_file(tmp_path / f'v{number}.dcm', '1.2.826.0.1.3680043.8.498.90.1')
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = '1.2.3.1', '1.2.3.2'
        ds.PatientID, ds.InstanceNumber = 'P', number
        ds.save_as(path)
        versions.append((pydicom.dcmread(path, stop_before_pixels=True), str(path)))
    moving_r, moving_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the first process: rows written, then held up before its move
        code = 1
        try:
            index.after_fork()
            real_replace = os.replace

            def slow_replace(src, dst):
                os.write(moving_w, b'm')
                # Wait (at most 1 s) for the other process to finish its own store.
                import select
                select.select([done_r], [], [], 1.0)
                real_replace(src, dst)
            os.replace = slow_replace
            ds, path = versions[0]
            index.place(ds, path, str(final), os.path.getsize(path))
            code = 0
        finally:
            os._exit(code)
    try:
        import select
        assert select.select([moving_r], [], [], TIMEOUT)[0], 'the first store never moved'
        ds, path = versions[1]
        index.place(ds, path, str(final), os.path.getsize(path))
        os.write(done_w, b'd')
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (moving_r, moving_w, done_r, done_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    try:
        (row,) = read_index(index.path, 'SELECT InstanceNumber, path FROM instance')
        (pending,), = read_index(index.path, 'SELECT COUNT(*) FROM placement')
    finally:
        index.close()
    on_disk = pydicom.dcmread(final, stop_before_pixels=True)
    assert pending == 0 and row[1] == 'study/instance.dcm'
    # The row describes the file on disk: the second store, which came last.
    assert (str(row[0]), str(on_disk.InstanceNumber)) == ('2', '2')


# -- configuration --------------------------------------------------------------------------

def test_without_fork_an_ae_serves_in_one_process_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(workers, 'FORK_AVAILABLE', False)
    workers.reset_warnings()
    server = pid_server(2)
    with caplog.at_level(logging.WARNING, logger='pynetdicom2.workers'):
        with server:
            assert server.worker_pids == []
            assert ask_once(server) == os.getpid()
    assert any('no fork()' in r.getMessage() for r in caplog.records)


@pytest.mark.unit
def test_the_no_fork_warning_is_logged_once_until_reset(monkeypatch, caplog):
    monkeypatch.setattr(workers, 'FORK_AVAILABLE', False)
    workers.reset_warnings()
    with caplog.at_level(logging.WARNING, logger='pynetdicom2.workers'):
        assert [workers.process_count(3), workers.process_count(3)] == [1, 1]
        workers.reset_warnings()
        assert workers.process_count(2) == 1
    said = [r.getMessage() for r in caplog.records if 'no fork()' in r.getMessage()]
    assert [line.split()[0] for line in said] == ['3', '2']


@pytest.mark.unit
@pytest.mark.parametrize('bad', [0, -1])
def test_fewer_than_one_worker_is_refused(bad):
    with pytest.raises(ValueError, match='at least 1'):
        ae_module.AE('WORKERS', 0, bind_address='127.0.0.1', bind_and_activate=False,
                     workers=bad)



def _admit_and_leave(counts: workers.SharedCounts, slot: int) -> List[BaseException]:
    """Eight threads admitting and leaving 2000 times each; what they raised."""
    errors: List[BaseException] = []

    def run() -> None:
        try:
            for _ in range(2000):
                assert counts.admit(slot, None)
                counts.leave(slot)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    return errors


def test_shared_counts_take_turns_between_the_threads_of_several_processes():
    # A file lock belongs to a process: threads of several processes taking it at once
    # made Linux refuse one (EDEADLK: qrscp --workers aborted that association) and
    # lost counts. The parent and two workers, eight threads each.
    counts = workers.SharedCounts(3)
    children = []
    for slot in (1, 2):
        child = os.fork()
        if child == 0:  # a worker: exit status 0 when none of its threads failed
            code = 1
            try:
                code = 1 if _admit_and_leave(counts, slot) else 0
            finally:
                os._exit(code)
        children.append(child)
    try:
        errors = _admit_and_leave(counts, 0)
    finally:
        statuses = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    assert errors == [] and statuses == [0, 0]
    assert counts.admitted() == 0


def test_a_worker_forked_while_a_thread_holds_the_counts_starts_with_them_free():
    # The forking thread's siblings do not exist in the child: a lock one of them held
    # at the fork would stay held there for ever.
    held, release = threading.Event(), threading.Event()
    every = [workers.SharedCounts(2), workers.SharedCounts(2)]

    def hold():
        with every[0]._thread_lock, every[1]._thread_lock:
            held.set()
            release.wait(TIMEOUT)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(TIMEOUT)
        child = os.fork()
        if child == 0:
            free = True
            for c in every:
                free = free and c._thread_lock.acquire(timeout=2)
                if free:
                    c._thread_lock.release()
            os._exit(0 if free and every[0].admit(1, None) else 1)
        status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    finally:
        release.set()
        holder.join(TIMEOUT)
    assert status == 0
