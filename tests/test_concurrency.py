"""Many associations at once into one AE: nothing lost, nothing half-written, limits kept.

32 associations (threads of this process) each store 100 distinct instances into one
``StorageAE`` while a watcher reads every file the moment it appears under a final
name; peers die mid-data-set among healthy ones; the disk fills up; and the access
controls (AE-title allow lists, the user identity hook, ``max_associations``) are
exercised by many simultaneous requesters. tests/interop/test_concurrency_interop.py
mixes in separate processes and DCMTK.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import pathlib
import socket
import struct
import threading
import time
from typing import Callable, Dict, List, Optional

import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, pdu, sopclass, uids, userdataitems
from pynetdicom2.exceptions import AssociationRejectedError
from pynetdicom2.services.storage import read_file_meta
from tests.fakepeer import associate_raw
from tests.peers import make_ct_file

CT = uids.CT_IMAGE_STORAGE
VERIFICATION = uids.VERIFICATION_SOP_CLASS
TIMEOUT = 20            # every wait of the AEs here; the barriers wait less
GATE_TIMEOUT = 15


# -- helpers ---------------------------------------------------------------------------------

def data_set_bytes(path) -> bytes:
    """A Part-10 file's data set: the bytes after its File Meta group."""
    raw = pathlib.Path(path).read_bytes()
    meta = read_file_meta(io.BytesIO(raw))
    assert meta is not None, f'{path} is not a Part-10 file'
    return raw[meta.data_set_offset:]


def make_sources(root: pathlib.Path, groups: int, per_group: int,
                 rows: int = 4) -> Dict[int, Dict[str, pathlib.Path]]:
    """``groups`` folders of ``per_group`` distinct CT files: group -> {uid: path}."""
    sources = {}
    for group in range(groups):
        folder = root / f'g{group:02d}'
        folder.mkdir(parents=True)
        paths = [make_ct_file(folder / f'{n:03d}.dcm', rows=rows, cols=rows)
                 for n in range(per_group)]
        sources[group] = {_uid_of(path): path for path in paths}
    return sources


def _uid_of(path: pathlib.Path) -> str:
    with open(path, 'rb') as fp:
        return read_file_meta(fp).sop_instance_uid


def remote(server, aet: str = 'STORE_SCP', **identity) -> dict:
    return dict({'aet': aet, 'address': '127.0.0.1', 'port': server.local_ae.port}, **identity)


def client(aet: str = 'STORE_SCU') -> ae_module.ClientAE:
    scu = ae_module.ClientAE(aet).add_scu(sopclass.storage_scu, [CT])
    scu.add_scu(sopclass.verification_scu)
    scu.dcm_timeout = TIMEOUT
    return scu


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def run_threads(targets: List[Callable[[], object]], timeout: float = 60) -> List[object]:
    """Run each callable in its own thread; their results, or the exception each raised."""
    results: List[object] = [None] * len(targets)

    def runner(i, target):
        try:
            results[i] = target()
        except BaseException as exc:  # reported by the test, never lost in a thread
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i, t), daemon=True)
               for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f'threads still running after {timeout} s'
    return results


def listing(directory) -> List[str]:
    return sorted(os.listdir(directory))


def pynetdicom2_errors(caplog) -> List[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith('pynetdicom2') and r.levelno >= logging.ERROR]


class GatedStorageAE(ae_module.StorageAE):
    """A StorageAE that accepts nothing until ``gate`` parties have asked: every
    association then exists at the same time (``concurrent`` stays True if so)."""

    gate: Optional[threading.Barrier] = None
    concurrent = True

    def on_association_request(self, asce, assoc):
        if self.gate is not None:
            try:
                self.gate.wait(GATE_TIMEOUT)
            except threading.BrokenBarrierError:
                self.concurrent = False


def storage_server(store_dir, ae_class=ae_module.StorageAE, **attributes):
    server = ae_class(store_dir, 'STORE_SCP', 0, bind_address='127.0.0.1')
    server.dcm_timeout = TIMEOUT
    server.artim_timeout = 5
    for name, value in attributes.items():
        setattr(server, name, value)
    return server


# -- nothing lost, nothing half-written --------------------------------------------------------

class Watcher:
    """Reads every ``*.dcm`` file as soon as it shows up and checks it is complete.

    A final name must never show a partial file (DESIGN.md): each file seen is compared,
    data set byte for byte, with its source at once.
    """

    def __init__(self, store_dir: pathlib.Path, sources: Dict[str, pathlib.Path]):
        self.store_dir = store_dir
        self.expected = {uid: data_set_bytes(path) for uid, path in sources.items()}
        self.checked: set = set()
        self.problems: List[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self._scan()        # what appeared after the last pass

    def _run(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            self._scan()
            time.sleep(0.005)

    def _scan(self):
        for name in os.listdir(self.store_dir):
            if not name.endswith('.dcm') or name in self.checked:
                continue
            self.checked.add(name)
            uid = name[:-len('.dcm')]
            try:
                got = data_set_bytes(self.store_dir / name)
            except (OSError, AssertionError) as exc:
                self.problems.append(f'{name}: {exc}')
                continue
            if got != self.expected.get(uid):
                self.problems.append(f'{name}: {len(got)} bytes, not the data set sent')


def test_thirty_two_associations_store_3200_instances_each_once_and_intact(tmp_path, store_dir,
                                                                          caplog):
    sources = make_sources(tmp_path / 'src', 32, 100)
    every = {uid: path for group in sources.values() for uid, path in group.items()}
    assert len(every) == 3200
    server = storage_server(store_dir, GatedStorageAE, max_associations=40,
                            gate=threading.Barrier(32))

    def sender(group: int) -> List[int]:
        with client(f'SCU{group:02d}').request_association(remote(server)) as assoc:
            store = assoc.get_scu(CT)
            return [int(store(path, n)) for n, path in enumerate(sources[group].values(), 1)]

    with server, Watcher(store_dir, every) as watcher:
        results = run_threads([lambda g=g: sender(g) for g in range(32)], timeout=90)
    assert server.concurrent, 'the 32 associations were not all open at once'
    assert results == [[0] * 100] * 32
    # Every instance exactly once, under its own name, nothing else (no temporary file).
    assert listing(store_dir) == sorted(f'{uid}.dcm' for uid in every)
    for uid, path in every.items():
        assert data_set_bytes(store_dir / f'{uid}.dcm') == data_set_bytes(path), uid
    assert watcher.problems == []
    assert len(watcher.checked) == 3200
    assert pynetdicom2_errors(caplog) == []


def test_one_uid_from_eight_associations_at_once_gives_eight_complete_files(tmp_path,
                                                                           store_dir):
    src = make_ct_file(tmp_path / 'same.dcm', '1.2.3.77', rows=64, cols=64)
    server = storage_server(store_dir, GatedStorageAE, gate=threading.Barrier(8))

    def sender(n: int) -> int:
        with client(f'SAME{n}').request_association(remote(server)) as assoc:
            return int(assoc.get_scu(CT)(src, 1))

    with server:
        results = run_threads([lambda n=n: sender(n) for n in range(8)])
    assert server.concurrent
    assert results == [0] * 8
    # No copy overwrote another: the name and its numbered variants, each complete.
    names = ['1.2.3.77.dcm'] + [f'1.2.3.77_{n}.dcm' for n in range(1, 8)]
    assert listing(store_dir) == sorted(names)
    for name in names:
        assert data_set_bytes(store_dir / name) == data_set_bytes(src), name


# A peer that dies in the middle of a data set, in the ways a connection can end.

def _store_pdus(path: pathlib.Path, uid: str) -> List[bytes]:
    rq = dimse.CStoreRQMessage()
    rq.message_id = 1
    rq.affected_sop_class_uid = CT
    rq.affected_sop_instance_uid = uid
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = data_set_bytes(path)
    return [p.encode() for p in rq.encode(1, 4096)]


def die_mid_data_set(port: int, path: pathlib.Path, uid: str, how: str) -> None:
    pdus = _store_pdus(path, uid)
    assert len(pdus) >= 8
    sock = associate_raw(port, CT, 'DYING')
    try:
        for raw in pdus[:len(pdus) // 2]:
            sock.sendall(raw)
        if how == 'half-a-pdu':
            # Cut inside a P-DATA-TF: the AE has read a header promising more.
            sock.sendall(pdus[len(pdus) // 2][:1000])
        elif how == 'a-abort':
            sock.sendall(pdu.AAbortPDU(0, 0).encode())
        elif how == 'reset':
            # SO_LINGER with a zero timeout: close() sends RST, not FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        time.sleep(0.05)
    finally:
        sock.close()


DEATHS = ('close', 'half-a-pdu', 'a-abort', 'reset')


def test_peers_dying_mid_data_set_among_healthy_ones_leave_only_complete_files(
        tmp_path, store_dir, caplog):
    caplog.set_level(logging.INFO, logger='pynetdicom2')
    healthy = make_sources(tmp_path / 'healthy', 8, 30)
    dying = {f'1.2.3.66.{n}': make_ct_file(tmp_path / f'dying{n}.dcm', f'1.2.3.66.{n}',
                                          rows=128, cols=128)
             for n in range(2 * len(DEATHS))}
    every = {uid: path for group in healthy.values() for uid, path in group.items()}
    server = storage_server(store_dir, max_associations=40)

    def sender(group: int) -> List[int]:
        with client(f'SCU{group}').request_association(remote(server)) as assoc:
            store = assoc.get_scu(CT)
            return [int(store(path, n)) for n, path in enumerate(healthy[group].values(), 1)]

    deaths = [lambda uid=uid, path=path, how=DEATHS[n % len(DEATHS)]:
              die_mid_data_set(server.local_ae.port, path, uid, how)
              for n, (uid, path) in enumerate(dying.items())]
    with server, Watcher(store_dir, every) as watcher:
        results = run_threads([lambda g=g: sender(g) for g in range(8)] + deaths)
        # The dying peers' associations are cleaned up by their threads on the AE.
        assert wait_until(lambda: len(listing(store_dir)) == len(every)), listing(store_dir)
        with client().request_association(remote(server)) as assoc:
            assert int(assoc.get_scu(VERIFICATION)(1)) == 0
    assert results[:8] == [[0] * 30] * 8
    assert results[8:] == [None] * len(deaths)
    assert listing(store_dir) == sorted(f'{uid}.dcm' for uid in every)
    assert watcher.problems == []
    assert pynetdicom2_errors(caplog) == []


# -- a full disk ---------------------------------------------------------------------------------

def _no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FillingFile:
    """Stands in for a file on a disk with ``room`` bytes left: a write beyond fails."""

    def __init__(self, inner, room: int):
        self.inner = inner
        self.room = room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise _no_space()
        self.room -= len(data)
        return self.inner.write(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class FullDiskAE(ae_module.StorageAE):
    """The disk is full for the next ``failures`` data sets, at ``where``:
    'open' (``get_file`` fails), 'write' (mid data set) or 'final' (the last step)."""

    where = 'open'
    failures = 1

    def _fail_now(self, where: str) -> bool:
        if self.where != where or self.failures <= 0:
            return False
        self.failures -= 1
        return True

    def get_file(self, context, command_set):
        if self._fail_now('open'):
            raise _no_space()
        fp, start = super().get_file(context, command_set)
        if self._fail_now('write'):
            return FillingFile(fp, room=start + 1000), start
        return fp, start

    def discard_file(self, fp) -> None:
        super().discard_file(getattr(fp, 'inner', fp))

    def on_receive_store(self, context, ds):
        if self._fail_now('final'):
            raise _no_space()
        return super().on_receive_store(context, getattr(ds, 'inner', ds))


@pytest.mark.parametrize('where', ['open', 'write', 'final'])
def test_a_full_disk_leaves_no_file_and_the_ae_keeps_serving(where, tmp_path, store_dir):
    first = make_ct_file(tmp_path / 'first.dcm', '1.2.3.88.1', rows=64, cols=64)
    second = make_ct_file(tmp_path / 'second.dcm', '1.2.3.88.2', rows=64, cols=64)
    with storage_server(store_dir, FullDiskAE, where=where) as server:
        with client().request_association(remote(server)) as assoc:
            answer = int(assoc.get_scu(CT)(first, 1))
        assert server.failures == 0
        assert wait_until(lambda: listing(store_dir) == []), listing(store_dir)
        with client().request_association(remote(server)) as assoc:
            assert int(assoc.get_scu(CT)(second, 1)) == 0
            assert int(assoc.get_scu(VERIFICATION)(2)) == 0
    assert answer == 0xA700
    assert listing(store_dir) == ['1.2.3.88.2.dcm']


def test_a_full_disk_at_the_final_step_answers_a700_on_a_living_association(tmp_path,
                                                                            store_dir):
    first = make_ct_file(tmp_path / 'first.dcm', '1.2.3.89.1', rows=8, cols=8)
    with storage_server(store_dir, FullDiskAE, where='final') as server:
        with client().request_association(remote(server)) as assoc:
            ctx = assoc.context_for(CT)
            rq = dimse.CStoreRQMessage()
            rq.message_id = 7
            rq.affected_sop_class_uid = CT
            rq.affected_sop_instance_uid = '1.2.3.89.1'
            rq.priority = dimse.PRIORITY_MEDIUM
            rq.data_set = data_set_bytes(first)
            assoc.send(rq, ctx.id)
            rsp, _ = assoc.receive()
            again = int(assoc.get_scu(CT)(first, 8))
    assert isinstance(rsp, dimse.CStoreRSPMessage)
    assert (rsp.status, rsp.message_id_being_responded_to) == (0xA700, 7)
    assert rsp.error_comment == os.strerror(errno.ENOSPC)
    assert again == 0
    assert listing(store_dir) == ['1.2.3.89.1.dcm']


@pytest.mark.parametrize('where', ['open', 'write'])
def test_a_full_disk_while_receiving_answers_a700_on_a_living_association(where, tmp_path,
                                                                          store_dir):
    first = make_ct_file(tmp_path / 'first.dcm', '1.2.3.90.1', rows=64, cols=64)
    with storage_server(store_dir, FullDiskAE, where=where) as server:
        with client().request_association(remote(server)) as assoc:
            status = assoc.get_scu(CT)(first, 1)
            assert int(status) == 0xA700 and status.is_failure
            assert int(assoc.get_scu(VERIFICATION)(2)) == 0
            assert int(assoc.get_scu(CT)(first, 3)) == 0
    assert listing(store_dir) == ['1.2.3.90.1.dcm']


# -- access control under load ---------------------------------------------------------------

def _outcome(result) -> object:
    """A requester's result, comparable: its value, or the rejection's wire values."""
    if isinstance(result, AssociationRejectedError):
        return ('rejected', result.result, result.source, result.diagnostic)
    if isinstance(result, BaseException):
        return ('error', repr(result))
    return result


def test_allow_lists_reject_with_1_1_3_and_1_1_7_while_friends_store(tmp_path, store_dir):
    sources = make_sources(tmp_path / 'src', 8, 10)
    # The gate holds the 8 friends' associations open together while the others are
    # turned away: rejections happen before on_association_request is called.
    server = storage_server(store_dir, GatedStorageAE, max_associations=40,
                            gate=threading.Barrier(8))
    server.allowed_calling_aets = {'FRIEND'}
    server.allowed_called_aets = {'STORE_SCP'}
    start = threading.Barrier(24)

    def friend(group: int):
        start.wait(GATE_TIMEOUT)
        with client('FRIEND').request_association(remote(server)) as assoc:
            store = assoc.get_scu(CT)
            return [int(store(p, n)) for n, p in enumerate(sources[group].values(), 1)]

    def stranger():
        start.wait(GATE_TIMEOUT)
        with client('STRANGER').request_association(remote(server)):
            return 'accepted'

    def wrong_number():
        start.wait(GATE_TIMEOUT)
        with client('FRIEND').request_association(remote(server, aet='NOT_US')):
            return 'accepted'

    with server:
        results = run_threads([lambda g=g: friend(g) for g in range(8)]
                              + [stranger] * 8 + [wrong_number] * 8)
        # The AE is still open to friends afterwards (past the gate, kept for the 8).
        server.gate = None
        with client('FRIEND').request_association(remote(server)) as assoc:
            assert int(assoc.get_scu(VERIFICATION)(1)) == 0
    outcomes = [_outcome(r) for r in results]
    assert outcomes[:8] == [[0] * 10] * 8
    assert outcomes[8:16] == [('rejected', 1, 1, 3)] * 8     # calling AE title
    assert outcomes[16:] == [('rejected', 1, 1, 7)] * 8      # called AE title
    assert server.concurrent
    assert len(listing(store_dir)) == 80


class IdentityCheckingAE(ae_module.StorageAE):
    """Accepts user 'doctor' with passcode 'right'; any other identity is refused the
    way PS3.7 D.3.3.7.3 says: rejected-permanent (1), source 2 (service provider,
    ACSE), reason 1 (no reason given). A JWT gets a token back when asked."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: List[tuple] = []
        self._seen_lock = threading.Lock()

    def on_user_identity(self, asce, identity):
        with self._seen_lock:
            self.seen.append((identity.user_identity_type, _raw(identity.primary_field),
                              _raw(identity.secondary_field),
                              identity.positive_response_req))
        if identity.user_identity_type == 5:
            return b'server-token'
        if (identity.primary_field, identity.secondary_field) != ('doctor', 'right'):
            raise AssociationRejectedError(1, 2, 1)
        return None


def _raw(field) -> bytes:
    """A user-identity field's bytes: it reads as str when UTF-8 (as in 0.9.8)."""
    return field.encode('utf-8') if isinstance(field, str) else field


def _identity_answers(assoc) -> list:
    info = assoc.ac.user_information
    return [_raw(item.server_response) for item in info.user_data
            if isinstance(item, userdataitems.UserIdentityNegotiationSubItemAc)]


def test_user_identity_refused_with_the_standards_values_under_load(tmp_path, store_dir):
    sources = make_sources(tmp_path / 'src', 8, 5)
    server = storage_server(store_dir, IdentityCheckingAE, max_associations=40)
    start = threading.Barrier(16)

    def doctor(group: int):
        start.wait(GATE_TIMEOUT)
        with client().request_association(
                remote(server, username='doctor', password='right')) as assoc:
            store = assoc.get_scu(CT)
            return (_identity_answers(assoc),
                    [int(store(p, n)) for n, p in enumerate(sources[group].values(), 1)])

    def intruder(n: int):
        start.wait(GATE_TIMEOUT)
        with client().request_association(
                remote(server, username='doctor', password=f'guess{n}')):
            return 'accepted'

    with server:
        results = run_threads([lambda g=g: doctor(g) for g in range(8)]
                              + [lambda n=n: intruder(n) for n in range(8)])
    outcomes = [_outcome(r) for r in results]
    # PS3.7 D.3.3.7.2: for identity types 1 and 2 the server response is empty.
    assert outcomes[:8] == [([b''], [0] * 5)] * 8
    assert outcomes[8:] == [('rejected', 1, 2, 1)] * 8
    assert sorted(server.seen) == sorted(
        [(2, b'doctor', b'right', 1)] * 8 + [(2, b'doctor', f'guess{n}'.encode(), 1)
                                             for n in range(8)])
    assert len(listing(store_dir)) == 40


def test_user_identity_response_only_when_asked_for(store_dir):
    not_asking = userdataitems.UserIdentityNegotiationSubItem(
        'nurse', user_identity_type=1, positive_response_req=0)
    with storage_server(store_dir, IdentityCheckingAE) as server:
        # Type 1 without a positive response requested: refused like any stranger.
        with pytest.raises(AssociationRejectedError) as refused:
            with client().request_association(remote(server, user_data=[not_asking])):
                pass
        # A JWT asking for a response gets the hook's bytes back.
        with client().request_association(remote(server, jwt='header.payload.sig')) as assoc:
            jwt_answers = _identity_answers(assoc)
        # No identity at all: the hook is not called and the AC carries no answer.
        with client().request_association(remote(server)) as assoc:
            plain_answers = _identity_answers(assoc)
    assert (refused.value.result, refused.value.source, refused.value.diagnostic) == (1, 2, 1)
    assert jwt_answers == [b'server-token']
    assert plain_answers == []
    assert server.seen == [(1, b'nurse', b'', 0), (5, b'header.payload.sig', b'', 1)]


def test_user_identity_accepted_without_a_request_for_response_gets_no_answer(store_dir):
    quiet = userdataitems.UserIdentityNegotiationSubItem(
        'doctor', 'right', user_identity_type=2, positive_response_req=0)
    with storage_server(store_dir, IdentityCheckingAE) as server:
        with client().request_association(remote(server, user_data=[quiet])) as assoc:
            answers = _identity_answers(assoc)
            assert int(assoc.get_scu(VERIFICATION)(1)) == 0
    # PS3.7 D.3.3.7: no User Identity sub-item in the AC unless a response was requested.
    assert answers == []
    assert server.seen == [(2, b'doctor', b'right', 0)]


def _hold_open(server, release: threading.Event, start: threading.Barrier, n: int):
    """Request an association; if accepted, hold it until ``release``, then release."""
    start.wait(GATE_TIMEOUT)
    with client(f'HOLD{n:02d}').request_association(remote(server)) as assoc:
        released_in_time = release.wait(TIMEOUT)
        assert int(assoc.get_scu(VERIFICATION)(1)) == 0
        return 'accepted' if released_in_time else 'held too long'


def test_max_associations_under_load_accepts_exactly_the_limit(store_dir):
    limit, extra = 6, 5
    server = storage_server(store_dir, max_associations=limit)
    with server:
        baseline = threading.active_count()
        for round_ in range(2):
            release = threading.Event()
            start = threading.Barrier(limit + extra)
            outcomes: List[object] = []
            done = threading.Semaphore(0)

            def attempt(n):
                try:
                    return _hold_open(server, release, start, n)
                finally:
                    done.release()

            runner = threading.Thread(target=lambda: outcomes.extend(run_threads(
                [lambda n=n: attempt(n) for n in range(limit + extra)])), daemon=True)
            runner.start()
            # The rejected requesters finish at once, the accepted ones wait for us.
            for _ in range(extra):
                assert done.acquire(timeout=TIMEOUT), 'the rejections did not come'
            assert not done.acquire(timeout=0.3), 'fewer associations were held than the limit'
            release.set()
            runner.join(TIMEOUT + 5)
            assert not runner.is_alive()
            results = [_outcome(r) for r in outcomes]
            assert sorted(map(str, results)) == sorted(
                ["accepted"] * limit + [str(('rejected', 2, 3, 2))] * extra), round_
            # Released: once the AE's association threads have ended, the next round
            # must again get exactly ``limit`` associations.
            assert wait_until(lambda: threading.active_count() <= baseline)


# -- the default: no limit, as 0.9.8; silent connections never count -------------------------

def _hold_together(port: int, called: str, n: int, together: threading.Barrier) -> int:
    """Associate, wait until every party holds its association, then echo and release."""
    scu = ae_module.ClientAE(f'SCU{n:02d}').add_scu(sopclass.verification_scu)
    scu.dcm_timeout = TIMEOUT
    try:
        with scu.request_association({'aet': called, 'address': '127.0.0.1',
                                      'port': port}) as assoc:
            together.wait(GATE_TIMEOUT)
            return int(assoc.get_scu(VERIFICATION)(n + 1))
    except BaseException:
        together.abort()            # the others stop waiting for this one
        raise


def test_thirty_associations_at_once_to_a_plain_ae_are_all_served():
    # A 0.9.8 script's server: a plain AE, nothing set. 0.9.8 has no association
    # limit, so 30 requesters holding their associations at the same time all get in.
    server = ae_module.AE('PLAIN_SCP', 0, bind_address='127.0.0.1')
    server.add_scp(sopclass.verification_scp)
    count = 30
    together = threading.Barrier(count)
    with server:
        port = server.local_ae.port
        results = run_threads([lambda n=n: _hold_together(port, 'PLAIN_SCP', n, together)
                               for n in range(count)])
    assert [_outcome(r) for r in results] == [0] * count


def test_silent_connections_do_not_count_toward_max_associations(store_dir):
    server = storage_server(store_dir, max_associations=2)
    server.artim_timeout = TIMEOUT          # the silent ones stay for the whole test
    silent: List[socket.socket] = []
    with server:
        port = server.local_ae.port
        try:
            for _ in range(12):
                silent.append(socket.create_connection(('127.0.0.1', port), timeout=5))
            together = threading.Barrier(3)
            release = threading.Event()
            outcomes: List[object] = []

            def hold(n):
                with client(f'HOLD{n}').request_association(remote(server)) as assoc:
                    together.wait(GATE_TIMEOUT)
                    assert release.wait(TIMEOUT)
                    return int(assoc.get_scu(VERIFICATION)(1))

            holders = threading.Thread(target=lambda: outcomes.extend(run_threads(
                [lambda n=n: hold(n) for n in range(2)])), daemon=True)
            holders.start()
            together.wait(GATE_TIMEOUT)     # both associations are established now
            # The third real association is one too many; the 12 silent ones are not.
            with pytest.raises(AssociationRejectedError) as info:
                with client('THIRD').request_association(remote(server)):
                    pass
            assert (info.value.result, info.value.source, info.value.diagnostic) == (2, 3, 2)
            release.set()
            holders.join(TIMEOUT + 5)
            assert [_outcome(r) for r in outcomes] == [0, 0]
            # Released: a place is free again, silent sockets or not.
            assert wait_until(lambda: not server.active_associations)
            with client('FOURTH').request_association(remote(server)) as assoc:
                assert int(assoc.get_scu(VERIFICATION)(2)) == 0
            for conn in silent:                 # never answered, never cut: still waiting
                conn.settimeout(0.05)
                with pytest.raises(socket.timeout):
                    conn.recv(1)
        finally:
            for conn in silent:
                conn.close()
