"""Fixtures shared by every test, and the layer each test belongs to; the helpers the
fixtures wrap live in tests/peers.py.

Layers (markers registered in tox.ini's ``[pytest]``): ``unit`` (bytes and objects in this
process only: ``pytest -m unit`` runs in seconds), ``socket`` (our own servers and clients
on 127.0.0.1), ``interop`` (real peers: DCMTK, pynetdicom 3, the released 0.9.8),
``docs`` (the documentation's examples), ``bench`` (the benchmarks' smoke runs) and
``fuzz`` (the Hypothesis campaigns under fuzz/). ``pytest_collection_modifyitems`` gives
every test one of them: the test's or its module's own mark if it has one, else its
file's or folder's entry in ``LAYER_OF_PATH``, else ``unit``. A ``unit`` test runs with
sockets and child processes refused (``no_network_in_unit_tests``), so a misplaced test
fails loudly and names the fix.
The autouse fixture ``no_leaked_processes`` makes sure no peer process outlives its test,
and ``logging_left_as_found`` that no test leaves the root logger changed for the next.
"""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import subprocess
import threading
from typing import Iterator

import pytest
from hypothesis import settings

from tests.peers import make_ct_file, stop_leaked_children

# On CI every property test draws the same examples each run, so the gate never turns on
# which examples luck drew; a developer's run draws new ones (and finds what CI cannot).
settings.register_profile('pynetdicom2-ci', derandomize=True)
if os.environ.get('CI'):
    settings.load_profile('pynetdicom2-ci')

LAYERS = ('unit', 'socket', 'interop', 'docs', 'bench', 'fuzz')
TESTS = pathlib.Path(__file__).resolve().parent
FUZZ = TESTS.parent / 'fuzz'

# The layer of each folder and file; a file's entry wins over its folder's. A test whose
# layer differs from its file's says so: ``@pytest.mark.unit`` on the in-process tests
# of a ``socket`` module, ``@pytest.mark.socket`` on the few network tests of a ``unit``
# module (any test file not listed).
LAYER_OF_PATH = {
    TESTS / 'interop': 'interop',
    TESTS / 'compat': 'interop',
    TESTS / 'test_docs.py': 'docs',
    TESTS / 'test_benchmarks_smoke.py': 'bench',
    FUZZ: 'fuzz',  # Hypothesis at length: about a minute on its own
    FUZZ / 'test_fuzz_corpus.py': 'unit',  # the saved corpus replays in a second
    **{TESTS / f'test_{name}.py': 'socket' for name in (
        'apps', 'apps_terminal', 'association', 'cli_errors', 'compat', 'concurrency',
        'context', 'hostile', 'negotiation', 'nservices', 'path_safety', 'qrscp',
        'queryretrieve', 'settings', 'storage', 'timeouts', 'tls', 'transcode', 'workers',
    )},
}


def _layer_of(item: pytest.Item) -> str:
    declared = [mark.name for mark in item.iter_markers() if mark.name in LAYERS]
    if declared:
        return declared[0]  # the closest: a test's own mark wins over its module's
    path = pathlib.Path(str(item.fspath)).resolve()
    for where in (path, *path.parents):
        if where in LAYER_OF_PATH:
            return LAYER_OF_PATH[where]
    return 'unit'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its layer marker (see the module docstring)."""
    for item in items:
        layer = _layer_of(item)
        if item.get_closest_marker(layer) is None:
            item.add_marker(layer)


class _Refused(OSError):
    """What a unit test gets from connect/bind/listen, starting a process or fork()."""


@pytest.fixture(autouse=True)
def no_network_in_unit_tests(request: pytest.FixtureRequest,
                             monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse sockets and child processes to a ``unit`` test, and fail it if it tried.

    The attempt is recorded as well as refused, so that a test that catches the OSError
    (a client expecting "connection refused", say) still fails: it belongs to ``socket``.
    ``socket.socketpair()`` stays allowed: a connected pair in this process, no network.
    Threads already running when the test starts (an earlier socket test's, winding down)
    are not the test's: they keep the real calls.
    """
    if request.node.get_closest_marker('unit') is None:
        yield
        return
    attempts: list[str] = []
    earlier = {t.ident for t in threading.enumerate()} - {threading.get_ident()}

    def refuse(owner, name: str, what: str) -> None:
        real = getattr(owner, name)

        def refused(*args, **kwargs):
            if threading.get_ident() in earlier:
                return real(*args, **kwargs)
            attempts.append(what)
            raise _Refused(f'a unit test may not {what}: mark it socket (tests/conftest.py)')
        monkeypatch.setattr(owner, name, refused)

    for name in ('connect', 'connect_ex', 'bind', 'listen'):
        refuse(socket.socket, name, f'call socket.{name}')
    refuse(subprocess.Popen, '__init__', 'start a process')
    refuse(os, 'fork', 'fork')
    yield
    if attempts:
        pytest.fail(f'unit test tried to {", ".join(sorted(set(attempts)))}', pytrace=False)


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    """Put the root logger back after each test: a tool run in-process (``main(argv)``)
    replaces its handlers and level (``configure_logging``), which would otherwise hide
    the WARNING records later tests read through ``caplog``."""
    def ours(handler: logging.Handler) -> bool:
        # pytest adds and removes its capture handlers around each phase by itself.
        return not type(handler).__module__.startswith('_pytest')

    root = logging.getLogger()
    handlers, level = [h for h in root.handlers if ours(h)], root.level
    yield
    for handler in [h for h in root.handlers if ours(h) and h not in handlers]:
        root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves a process started by tests.peers running (after killing it)."""
    yield
    leaked = stop_leaked_children()
    if leaked:
        details = "\n\n".join(leaked)
        pytest.fail(f"{len(leaked)} process(es) still running after the test, "
                    f"now killed:\n{details}", pytrace=False)


@pytest.fixture
def ct_file(tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh CT Image Storage Part-10 file (Explicit VR Little Endian, 64x64)."""
    return make_ct_file(tmp_path / "ct.dcm")


@pytest.fixture
def store_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """An empty ``store`` directory for a storage SCP to write into."""
    path = tmp_path / 'store'
    path.mkdir()
    return path


def _openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope='session')
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp('pki')
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out',
             'ca.pem', '-days', '2', '-subj', '/CN=Test CA', cwd=d)
    for name, san in (('server', 'DNS:localhost,IP:127.0.0.1'), ('client', 'DNS:client'),
                      ('other', 'DNS:elsewhere.example')):
        _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f'{name}.key', '-out',
                 f'{name}.csr', '-subj', f'/CN={name}', cwd=d)
        (d / f'{name}.ext').write_text(f'subjectAltName={san}\n')
        _openssl('x509', '-req', '-in', f'{name}.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
                 '-CAcreateserial', '-out', f'{name}.pem', '-days', '2', '-extfile',
                 f'{name}.ext', cwd=d)
    # A server certificate that expired yesterday (notAfter before notBefore: -days -1).
    _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'expired.key', '-out',
             'expired.csr', '-subj', '/CN=localhost', cwd=d)
    (d / 'expired.ext').write_text('subjectAltName=DNS:localhost\n')
    _openssl('x509', '-req', '-in', 'expired.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
             '-CAcreateserial', '-out', 'expired.pem', '-days', '-1', '-extfile',
             'expired.ext', cwd=d)
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rogue.key', '-out',
             'rogue.pem', '-days', '2', '-subj', '/CN=Rogue CA', cwd=d)
    return d
