"""Fixtures shared by every test; the helpers they wrap live in tests/peers.py.

The autouse fixture here makes sure no peer process outlives the test that started it.
"""

from __future__ import annotations

import pathlib
import subprocess
from typing import Iterator

import pytest

from tests.peers import make_ct_file, stop_leaked_children


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
