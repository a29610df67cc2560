"""C-STORE against real peers: DCMTK storescp/storescu and pynetdicom 3, both directions.

What arrives on disk is compared with what was sent: pixel data always, and the data
set bytes where no one re-encodes them.
"""

from __future__ import annotations

import io
import json
import pathlib
import sys

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from pynetdicom2.services.storage import read_file_meta
from tests.peers import (
    dcmtk, describe, make_ct_file, run_pynetdicom_scu, run_tool, start_dcmtk_scp,
    start_pynetdicom_peer)

CT = uids.CT_IMAGE_STORAGE


def data_set_bytes(path) -> bytes:
    raw = pathlib.Path(path).read_bytes()
    meta = read_file_meta(io.BytesIO(raw))
    assert meta is not None, f'{path} is not a Part-10 file'
    return raw[meta.data_set_offset:]


def our_client(supported_ts=None):
    scu = ae_module.ClientAE('OUR_SCU', supported_ts=supported_ts)
    scu.add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = 10
    return scu


def remote(port, aet='ANY-SCP'):
    return {'aet': aet, 'address': '127.0.0.1', 'port': port}


@pytest.fixture
def storage_ae(store_dir):
    server = ae_module.StorageAE(store_dir, 'STORE_SCP', 0, bind_address='127.0.0.1',
                                 supported_ts=uids.DEFAULT_TS + (uids.JPEG_BASELINE_PROCESS_1,))
    server.dcm_timeout = 10
    with server:
        yield server


# -- our SCU to DCMTK storescp ----------------------------------------------------------------

def test_our_scu_to_dcmtk_storescp(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.100')
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = '1.2.3.100.1'
    with start_dcmtk_scp('storescp', ['-od', str(store_dir)]) as (_, port):
        with our_client().request_association(remote(port)) as assoc:
            svc = assoc.get_scu(CT)
            statuses = [int(svc(src, 1)), int(svc(ds, 2))]
    assert statuses == [0, 0]
    # storescp names files <modality>.<SOP Instance UID>.
    assert sorted(f.name for f in store_dir.iterdir()) == ['CT.1.2.3.100', 'CT.1.2.3.100.1']
    assert data_set_bytes(store_dir / 'CT.1.2.3.100') == data_set_bytes(src)
    got = pydicom.dcmread(store_dir / 'CT.1.2.3.100.1')
    assert got.SOPInstanceUID == '1.2.3.100.1'
    assert got.PixelData == ds.PixelData


def test_our_scu_sends_implicit_when_storescp_wants_it(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.101')
    # +ti: storescp accepts implicit VR little endian only.
    with start_dcmtk_scp('storescp', ['+ti', '-od', str(store_dir)]) as (_, port):
        with our_client().request_association(remote(port)) as assoc:
            assert int(assoc.get_scu(CT)(src, 1)) == 0
    [received] = list(store_dir.iterdir())
    got = pydicom.dcmread(received)
    assert got.file_meta.TransferSyntaxUID == uids.IMPLICIT_VR_LITTLE_ENDIAN
    assert got.PixelData == pydicom.dcmread(src).PixelData


# -- DCMTK storescu to our StorageAE ---------------------------------------------------------

@pytest.mark.parametrize('switch, expected_ts', [
    (None, uids.EXPLICIT_VR_LITTLE_ENDIAN),
    ('-xi', uids.IMPLICIT_VR_LITTLE_ENDIAN),
    ('-xe', uids.EXPLICIT_VR_LITTLE_ENDIAN),
])
def test_dcmtk_storescu_to_our_storage_ae(storage_ae, store_dir, tmp_path, switch, expected_ts):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.110')
    argv = [dcmtk('storescu'), '-aec', 'STORE_SCP', '-to', '10', '-ta', '10', '-td', '10']
    argv += [switch] if switch else []
    result = run_tool(argv + ['127.0.0.1', str(storage_ae.local_ae.port), str(src)])
    assert result.returncode == 0, describe(result)
    assert sorted(p.name for p in store_dir.iterdir()) == ['1.2.3.110.dcm']
    got = pydicom.dcmread(store_dir / '1.2.3.110.dcm')
    assert got.file_meta.TransferSyntaxUID == expected_ts
    assert got.PixelData == pydicom.dcmread(src).PixelData
    if expected_ts == uids.EXPLICIT_VR_LITTLE_ENDIAN:
        assert data_set_bytes(store_dir / '1.2.3.110.dcm') == data_set_bytes(src)


def test_dcmtk_storescu_sends_several_files_on_one_association(storage_ae, store_dir, tmp_path):
    sources = [make_ct_file(tmp_path / f'{i}.dcm', sop_instance_uid=f'1.2.3.120.{i}')
               for i in range(5)]
    result = run_tool([dcmtk('storescu'), '-aec', 'STORE_SCP', '127.0.0.1',
                       str(storage_ae.local_ae.port)] + [str(s) for s in sources])
    assert result.returncode == 0, describe(result)
    assert sorted(p.name for p in store_dir.iterdir()) == [f'1.2.3.120.{i}.dcm' for i in range(5)]


def test_dcmtk_storescu_jpeg_arrives_byte_identical(storage_ae, store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm')
    jpeg = tmp_path / 'jpeg.dcm'
    made = run_tool([dcmtk('dcmcjpeg'), '+eb', str(src), str(jpeg)])
    assert made.returncode == 0, describe(made)
    uid = pydicom.dcmread(jpeg, stop_before_pixels=True).SOPInstanceUID
    result = run_tool([dcmtk('storescu'), '-aec', 'STORE_SCP', '-xy', '127.0.0.1',
                       str(storage_ae.local_ae.port), str(jpeg)])
    assert result.returncode == 0, describe(result)
    received = store_dir / f'{uid}.dcm'
    assert pydicom.dcmread(received).file_meta.TransferSyntaxUID == uids.JPEG_BASELINE_PROCESS_1
    assert data_set_bytes(received) == data_set_bytes(jpeg)


def test_sixteen_mib_instance_from_storescu_arrives_byte_identical(storage_ae, store_dir,
                                                                    tmp_path):
    src = make_ct_file(tmp_path / 'big.dcm', sop_instance_uid='1.2.3.130', rows=2048,
                       cols=4096)
    assert src.stat().st_size > 16 * 1024 * 1024
    result = run_tool([dcmtk('storescu'), '-aec', 'STORE_SCP', '-pdu', '131072', '127.0.0.1',
                       str(storage_ae.local_ae.port), str(src)], timeout=60)
    assert result.returncode == 0, describe(result)
    assert sorted(p.name for p in store_dir.iterdir()) == ['1.2.3.130.dcm']
    assert data_set_bytes(store_dir / '1.2.3.130.dcm') == data_set_bytes(src)


def test_sixteen_mib_instance_from_our_scu_to_storescp(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'big.dcm', sop_instance_uid='1.2.3.131', rows=2048,
                       cols=4096)
    with start_dcmtk_scp('storescp', ['-od', str(store_dir), '-pdu', '131072']) as (_, port):
        with our_client().request_association(remote(port)) as assoc:
            assert int(assoc.get_scu(CT)(src, 1)) == 0
    [received] = list(store_dir.iterdir())
    assert data_set_bytes(received) == data_set_bytes(src)


# -- pynetdicom 3 both ways -------------------------------------------------------------------

def test_our_scu_to_pynetdicom_scp(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.140')
    with start_pynetdicom_peer(['--storage-dir', str(store_dir)]) as (_, port):
        with our_client().request_association(remote(port)) as assoc:
            status = assoc.get_scu(CT)(src, 1)
    assert int(status) == 0
    got = pydicom.dcmread(store_dir / '1.2.3.140.dcm')
    assert got.PixelData == pydicom.dcmread(src).PixelData
    assert str(got.PatientName) == 'TEST^CT'


def test_pynetdicom_scu_to_our_storage_ae(storage_ae, store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.150')
    result = run_pynetdicom_scu(['--scu', 'store', '--port', str(storage_ae.local_ae.port),
                                 '--called-aet', 'STORE_SCP', '--file', str(src)])
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout.splitlines()[-1]) == {'status': 0}
    assert data_set_bytes(store_dir / '1.2.3.150.dcm') == data_set_bytes(src)
    assert pydicom.dcmread(store_dir / '1.2.3.150.dcm').PixelData == pydicom.dcmread(src).PixelData


# -- the 0.9.8 pattern against real senders: the hook only decides the status ---------------

class Hook098(ae_module.StorageAE):
    """A 0.9.x storage server: on_receive_store reads the file and returns a status of
    its own, never calling super."""

    answer = 0x0000

    def on_receive_store(self, context, ds):
        self.seen = getattr(self, 'seen', []) + [str(pydicom.dcmread(ds).SOPInstanceUID)]
        return self.answer


@pytest.fixture
def hook_ae(store_dir):
    server = Hook098(store_dir, 'STORE_SCP', 0, bind_address='127.0.0.1')
    server.dcm_timeout = 10
    with server:
        yield server


def sources(tmp_path, prefix: str, count: int = 4):
    return [make_ct_file(tmp_path / f'{prefix}{i}.dcm', sop_instance_uid=f'{prefix}.{i}',
                         rows=128, cols=128) for i in range(count)]


def send_with(sender: str, port: int, files) -> list:
    """Store ``files`` with DCMTK storescu, pynetdicom or our storescu CLI; the
    outputs (for failure messages)."""
    paths = [str(f) for f in files]
    if sender == 'dcmtk':
        # -nh: go on after a failed store (storescu halts at the first by default).
        return [run_tool([dcmtk('storescu'), '-v', '-nh', '-aec', 'STORE_SCP', '-to', '10',
                          '-ta', '10', '-td', '10', '127.0.0.1', str(port)] + paths)]
    if sender == 'pynetdicom':
        return [run_pynetdicom_scu(['--scu', 'store', '--port', str(port), '--called-aet',
                                    'STORE_SCP', '--file', path]) for path in paths]
    return [run_tool([sys.executable, '-m', 'pynetdicom2', 'storescu', '-aec', 'STORE_SCP',
                      '127.0.0.1', str(port)] + paths)]


@pytest.mark.parametrize('sender', ['dcmtk', 'pynetdicom', 'ours'])
def test_098_hook_returning_success_keeps_every_file_from_every_sender(
        hook_ae, store_dir, tmp_path, sender):
    files = sources(tmp_path, '1.2.3.160')
    results = send_with(sender, hook_ae.local_ae.port, files)
    assert all(r.returncode == 0 for r in results), [describe(r) for r in results]
    assert sorted(hook_ae.seen) == [f'1.2.3.160.{i}' for i in range(4)]
    assert sorted(p.name for p in store_dir.iterdir()) == [
        f'1.2.3.160.{i}.dcm' for i in range(4)]
    for i, src in enumerate(files):
        assert data_set_bytes(store_dir / f'1.2.3.160.{i}.dcm') == data_set_bytes(src)


@pytest.mark.parametrize('sender', ['dcmtk', 'pynetdicom', 'ours'])
def test_098_hook_returning_a_failure_keeps_nothing_from_any_sender(
        hook_ae, store_dir, tmp_path, sender):
    hook_ae.answer = 0xA700
    files = sources(tmp_path, '1.2.3.161', count=2)
    results = send_with(sender, hook_ae.local_ae.port, files)
    assert len(hook_ae.seen) == 2
    if sender == 'pynetdicom':
        assert [json.loads(r.stdout.splitlines()[-1]) for r in results] == [
            {'status': 0xA700}] * 2
    elif sender == 'dcmtk':  # with -nh storescu goes on and exits 0; -v shows the status
        output = results[0].stdout + results[0].stderr
        assert output.count('Refused: OutOfResources') == 2, describe(results[0])
    else:
        assert all(r.returncode != 0 for r in results), [describe(r) for r in results]
    # Nothing under a final name, and no temporary file left either.
    assert list(store_dir.iterdir()) == []

