"""Conversion on send against real peers: DCMTK storescp (its default, uncompressed only,
and its single-syntax options), a pynetdicom 3 SCP restricted to one syntax, DCMTK
getscu and movescu retrieving from our AE, and our storescu's error line.

Lossless conversions are compared with the original pixel data byte for byte; a
decompressed JPEG with the decoder's own output; no stored file is ever in a lossy
syntax its source was not in.
"""

from __future__ import annotations

import pathlib
import sys

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, transcode, uids
from pynetdicom2.exceptions import ClassNotSupportedError
from tests.peers import (
    dcmtk, describe, make_ct_file, run_tool, start_dcmtk_scp, start_pynetdicom_peer)
from tests.test_transcode import dcmcjpeg, make_file_in, need_codec

CT = uids.CT_IMAGE_STORAGE
ELE = uids.EXPLICIT_VR_LITTLE_ENDIAN
ILE = uids.IMPLICIT_VR_LITTLE_ENDIAN
EBE = uids.EXPLICIT_VR_BIG_ENDIAN
JPEG = uids.JPEG_BASELINE_PROCESS_1
RLE = uids.RLE_LOSSLESS
JLS = uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION
J2K_LOSSLESS = uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY
ONE_SYNTAX_SCP = pathlib.Path(__file__).resolve().parent / 'peers' / 'one_syntax_scp.py'
TIMEOUT = 10
# DCMTK storescp's single-syntax acceptance options (storescp --help) and what a
# requester proposing that syntax alone gets accepted.
STORESCP_OPTIONS = {ILE: '+xi', RLE: '+xr', JLS: '+xt', J2K_LOSSLESS: '+xv'}


@pytest.fixture
def jpeg_file(tmp_path):
    return dcmcjpeg(make_ct_file(tmp_path / 'ct.dcm'), tmp_path / 'jpeg.dcm')


def our_client(proposed):
    scu = ae_module.ClientAE('OUR_SCU', supported_ts=proposed)
    scu.add_scu(sopclass.storage_scu, [CT]).add_scu(sopclass.verification_scu)
    scu.dcm_timeout = TIMEOUT
    return scu


def store(port, item, proposed, aet='ANY-SCP', **kwargs):
    remote = {'aet': aet, 'address': '127.0.0.1', 'port': port}
    with our_client(proposed).request_association(remote) as assoc:
        accepted = [c.supported_ts for c in assoc.accepted_contexts.values()
                    if c.sop_class == CT]
        status = sopclass.storage_scu(assoc, None, item, 1, **kwargs)
    return accepted, status


def only_file(directory):
    files = [p for p in pathlib.Path(directory).iterdir() if p.is_file()]
    assert len(files) == 1, files
    return files[0]


# -- to DCMTK storescp ----------------------------------------------------------------------

def test_jpeg_to_dcmtk_storescp_default_arrives_decompressed(store_dir, jpeg_file):
    need_codec(JPEG)
    expected = pydicom.dcmread(jpeg_file).pixel_array
    with start_dcmtk_scp('storescp', ['-od', str(store_dir)]) as (_, port):
        # JPEG proposed first: storescp's default takes only uncompressed syntaxes.
        accepted, status = store(port, str(jpeg_file), [JPEG, ELE, ILE])
    assert accepted == [ELE] and int(status) == 0
    got = pydicom.dcmread(only_file(store_dir))
    assert got.file_meta.TransferSyntaxUID == ELE
    assert got.PixelData == expected.tobytes()
    assert got.SOPInstanceUID == pydicom.dcmread(jpeg_file).SOPInstanceUID
    assert (got.LossyImageCompression, got.LossyImageCompressionMethod) == ('01', 'ISO_10918_1')


@pytest.mark.parametrize('source', [RLE, JLS, J2K_LOSSLESS])
def test_lossless_compressed_to_dcmtk_storescp_implicit_only(store_dir, tmp_path, source):
    need_codec(source)
    src = make_file_in(tmp_path / 'src.dcm', source, sop_instance_uid='1.2.826.0.2.1')
    with start_dcmtk_scp('storescp', ['+xi', '-od', str(store_dir)]) as (_, port):
        accepted, status = store(port, str(src), [source, ELE, ILE])
    assert accepted == [ILE] and int(status) == 0
    got = pydicom.dcmread(only_file(store_dir))
    assert got.file_meta.TransferSyntaxUID == ILE
    assert got.PixelData == pydicom.dcmread(make_ct_file(tmp_path / 'plain.dcm')).PixelData
    assert got.SOPInstanceUID == '1.2.826.0.2.1'


@pytest.mark.parametrize('target', [RLE, JLS, J2K_LOSSLESS])
@pytest.mark.parametrize('source', [ELE, EBE])
def test_uncompressed_to_dcmtk_storescp_taking_one_lossless_syntax(store_dir, tmp_path,
                                                                   source, target):
    need_codec(target, encode=True)
    need_codec(target)
    src = make_ct_file(tmp_path / 'src.dcm', sop_instance_uid='1.2.826.0.2.2',
                       transfer_syntax=source)
    # storescp writes what it received as it is (its default +t=: same syntax).
    args = [STORESCP_OPTIONS[target], '-od', str(store_dir)]
    with start_dcmtk_scp('storescp', args) as (_, port):
        accepted, status = store(port, str(src), [target])
    assert accepted == [target] and int(status) == 0
    got = pydicom.dcmread(only_file(store_dir))
    assert got.file_meta.TransferSyntaxUID == target
    got.decompress(generate_instance_uid=False)
    assert got.PixelData == pydicom.dcmread(make_ct_file(tmp_path / 'plain.dcm')).PixelData
    assert got.SOPInstanceUID == '1.2.826.0.2.2'


def test_no_lossy_encoding_for_dcmtk_storescp_taking_only_jpeg(store_dir, tmp_path):
    src = make_ct_file(tmp_path / 'src.dcm')
    with start_dcmtk_scp('storescp', ['+xy', '-od', str(store_dir)]) as (_, port):
        with pytest.raises(ClassNotSupportedError) as info:
            store(port, str(src), [JPEG])
    assert 'lossy encoding' in str(info.value) and ELE in str(info.value)
    assert list(store_dir.iterdir()) == []


# -- to a pynetdicom SCP restricted to one syntax ------------------------------------------

@pytest.mark.parametrize('accepted_ts', [ILE, EBE, RLE, JLS])
def test_jpeg_to_pynetdicom_taking_one_syntax(store_dir, jpeg_file, accepted_ts):
    need_codec(JPEG)
    if accepted_ts != EBE and accepted_ts != ILE:
        need_codec(accepted_ts, encode=True)
    expected = pydicom.dcmread(jpeg_file).pixel_array
    with start_pynetdicom_peer([str(store_dir), accepted_ts], script=ONE_SYNTAX_SCP) as (_, port):
        accepted, status = store(port, str(jpeg_file), [JPEG, accepted_ts])
    assert accepted == [accepted_ts] and int(status) == 0
    got = pydicom.dcmread(only_file(store_dir))
    assert got.file_meta.TransferSyntaxUID == accepted_ts
    assert (got.pixel_array == expected).all()
    assert got.LossyImageCompression == '01'


@pytest.mark.parametrize('accepted_ts', [RLE, J2K_LOSSLESS])
def test_dataset_to_pynetdicom_taking_one_lossless_syntax(store_dir, tmp_path, accepted_ts):
    need_codec(accepted_ts, encode=True)
    need_codec(accepted_ts)
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'src.dcm', sop_instance_uid='1.2.826.0.2.3'))
    pixels = ds.PixelData
    with start_pynetdicom_peer([str(store_dir), accepted_ts], script=ONE_SYNTAX_SCP) as (_, port):
        accepted, status = store(port, ds, [accepted_ts])
    assert int(status) == 0 and ds.PixelData is pixels  # the caller's Dataset untouched
    got = pydicom.dcmread(only_file(store_dir))
    assert got.file_meta.TransferSyntaxUID == accepted_ts
    got.decompress(generate_instance_uid=False)
    assert got.PixelData == pixels and got.SOPInstanceUID == '1.2.826.0.2.3'


# -- DCMTK retrieving from our AE -----------------------------------------------------------

class RetrieveAE(ae_module.AE):
    """Our AE serving C-GET and C-MOVE with one JPEG instance."""

    def __init__(self, item, destination_port=None):
        super().__init__('OUR_QR', 0, bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.add_scp(sopclass.qr_get_scp).add_scp(sopclass.qr_move_scp)
        self.item = item
        self.destination_port = destination_port

    def on_receive_get(self, context, ds):
        return 1, iter([self.item])

    def on_receive_move(self, context, ds, destination):
        remote = {'aet': destination, 'address': '127.0.0.1', 'port': self.destination_port}
        return remote, 1, [self.item]


# getscu's storage proposals (DCMTK 3.6.7, read with -d): by default explicit LE, BE,
# implicit; +xi explicit LE alone; +xb big endian first.
@pytest.mark.parametrize('proposal', [[], ['+xi'], ['+xb']])
def test_dcmtk_getscu_proposing_only_uncompressed_gets_the_jpeg_decompressed(
        tmp_path, jpeg_file, proposal):
    need_codec(JPEG)
    expected = pydicom.dcmread(jpeg_file).pixel_array
    out = tmp_path / 'got'
    out.mkdir()
    with RetrieveAE(str(jpeg_file)) as srv:
        result = run_tool([dcmtk('getscu'), *proposal, '-S', '-aec', 'OUR_QR', '-od', str(out),
                           '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3',
                           '127.0.0.1', str(srv.local_ae.port)], timeout=60)
    assert result.returncode == 0, describe(result)
    got = pydicom.dcmread(only_file(out))
    assert got.file_meta.TransferSyntaxUID in (ELE, ILE, EBE)
    assert (got.pixel_array == expected).all()
    assert got.SOPInstanceUID == pydicom.dcmread(jpeg_file).SOPInstanceUID


def test_dcmtk_getscu_sees_the_error_comment_when_decompression_is_refused(tmp_path, jpeg_file):
    out = tmp_path / 'got'
    out.mkdir()
    with RetrieveAE(str(jpeg_file)) as srv:
        srv.decompress_lossy = False
        # -d shows the final response's status detail, where the Error Comment is.
        result = run_tool([dcmtk('getscu'), '-d', '-S', '-aec', 'OUR_QR', '-od', str(out),
                           '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3',
                           '127.0.0.1', str(srv.local_ae.port)], timeout=60)
    text = result.stdout + result.stderr
    assert '(0000,0902) LO [JPEG Baseline -> Explicit VR LE: lossy decompression refused]' \
        in text, describe(result)
    assert 'Failed Suboperations          : 1' in text
    assert list(out.iterdir()) == []


def test_c_move_to_dcmtk_storescp_taking_only_uncompressed(store_dir, tmp_path, jpeg_file):
    need_codec(JPEG)
    with start_dcmtk_scp('storescp', ['-aet', 'DEST', '-od', str(store_dir)]) as (_, port):
        with RetrieveAE(str(jpeg_file), destination_port=port) as srv:
            result = run_tool([dcmtk('movescu'), '-S', '-aec', 'OUR_QR', '-aem', 'DEST',
                               '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3',
                               '127.0.0.1', str(srv.local_ae.port)], timeout=60)
    assert result.returncode == 0, describe(result)
    got = pydicom.dcmread(only_file(store_dir))
    assert not transcode.is_lossy(got.file_meta.TransferSyntaxUID)
    assert got.PixelData == pydicom.dcmread(jpeg_file).pixel_array.tobytes()


# -- our storescu's error line --------------------------------------------------------------

def test_storescu_names_the_transfer_syntax_the_peer_refused(tmp_path, jpeg_file):
    root = pathlib.Path(__file__).resolve().parents[2]
    # storescu proposes CT with the uncompressed syntaxes and with JPEG alone (issue 16):
    # a peer taking RLE only refuses both (result 4), and RLE is never proposed for it.
    (tmp_path / 'store').mkdir()
    with start_pynetdicom_peer([str(tmp_path / 'store'), RLE], script=ONE_SYNTAX_SCP) as (_,
                                                                                      port):
        result = run_tool([sys.executable, '-m', 'pynetdicom2', 'storescu', '--no-progress',
                           '127.0.0.1', str(port), str(jpeg_file)], timeout=60,
                          env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'})
    assert result.returncode != 0, describe(result)
    errors = [line for line in result.stderr.splitlines() if str(jpeg_file) in line]
    assert len(errors) == 1, describe(result)
    assert 'JPEG Baseline' in errors[0] and JPEG in errors[0] and 'result 4' in errors[0]
