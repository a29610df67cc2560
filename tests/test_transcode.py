"""Transfer-syntax conversion on send (pynetdicom2.transcode) through our own AEs.

Each test sends an instance to an SCP that accepts its SOP class in one syntax only and
looks at what arrived: the stored file's transfer syntax, its pixel data compared byte
for byte (lossless) or with the decoder's own output (JPEG), its other elements, and
the caller's Dataset afterwards. Codec-dependent tests skip when the codecs extra is
missing (tests/run_all.sh installs it).
"""

from __future__ import annotations

import copy
import itertools
import json
import pathlib
import subprocess
import sys

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import generate_uid

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, sopclass, transcode, uids
from pynetdicom2.exceptions import ClassNotSupportedError
from pynetdicom2.services.common import error_comment
from pynetdicom2.services.storage import read_file_meta
from tests.peers import dcmtk, make_ct_file, run_tool

CT = uids.CT_IMAGE_STORAGE
SC = uids.SECONDARY_CAPTURE_IMAGE_STORAGE
STUDY_GET = uids.STUDY_ROOT_GET_SOP_CLASS
STUDY_MOVE = uids.STUDY_ROOT_MOVE_SOP_CLASS
ELE = uids.EXPLICIT_VR_LITTLE_ENDIAN
ILE = uids.IMPLICIT_VR_LITTLE_ENDIAN
EBE = uids.EXPLICIT_VR_BIG_ENDIAN
DEFLATED = uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
JPEG = uids.JPEG_BASELINE_PROCESS_1
RLE = uids.RLE_LOSSLESS
JLS = uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION
J2K_LOSSLESS = uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY
J2K = uids.JPEG_2000_IMAGE_COMPRESSION
JLS_NEAR = uids.JPEG_LS_LOSSY_NEAR_LOSSLESS_IMAGE_COMPRESSION
UNCOMPRESSED = [ELE, ILE, EBE, DEFLATED]
LOSSLESS_TARGETS = [RLE, JLS, J2K_LOSSLESS]
PYDICOM_3 = int(pydicom.__version__.split('.')[0]) >= 3
TIMEOUT = 10


def need_codec(ts, encode=False):
    """Skip unless pydicom can decode (or encode) ``ts`` here."""
    if not PYDICOM_3:
        pytest.skip('converting compressed pixel data needs pydicom 3')
    from pydicom.pixels import get_decoder, get_encoder
    codec = (get_encoder if encode else get_decoder)(pydicom.uid.UID(ts))
    if not codec.is_available:
        pytest.skip(f'no codec for {ts}: pip install pynetdicom2[codecs]')
    if not encode:
        pytest.importorskip('numpy')


# -- instances --------------------------------------------------------------------------

def dcmcjpeg(src, out):
    result = run_tool([dcmtk('dcmcjpeg'), '+eb', str(src), str(out)])
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def jpeg_file(tmp_path):
    """A monochrome JPEG Baseline file made by DCMTK from a CT ramp (real lossy data)."""
    out = dcmcjpeg(make_ct_file(tmp_path / 'ct.dcm'), tmp_path / 'jpeg.dcm')
    ds = pydicom.dcmread(out)
    assert ds.file_meta.TransferSyntaxUID == JPEG and ds.LossyImageCompression == '01'
    return out


def make_rgb_file(path, sop_instance_uid=None):
    """An RGB Secondary Capture file, 8 bits, 48x32, with a colour ramp."""
    uid = sop_instance_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ELE
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SC, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = 'OT', 'RGB^TEST', 'RGB1'
    ds.ConversionType = 'WSD'
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, 'RGB', 0
    ds.Rows, ds.Columns = 32, 48
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(v for r in range(32) for c in range(48)
                         for v in ((c * 5) % 256, (r * 7) % 256, 128))
    pydicom.dcmwrite(path, ds, enforce_file_format=True) if PYDICOM_3 else \
        pydicom.dcmwrite(path, ds, write_like_original=False)
    return pathlib.Path(path)


@pytest.fixture
def rgb_jpeg_file(tmp_path):
    """A colour JPEG Baseline file: DCMTK stores it as YBR_FULL_422."""
    out = dcmcjpeg(make_rgb_file(tmp_path / 'rgb.dcm'), tmp_path / 'rgbjpeg.dcm')
    assert pydicom.dcmread(out).PhotometricInterpretation == 'YBR_FULL_422'
    return out


def make_file_in(path, ts, **kwargs):
    """A CT file in ``ts``: uncompressed ones by make_ct_file, compressed ones by pydicom."""
    if ts in transcode.UNCOMPRESSED_TS or ts == RLE:
        return make_ct_file(path, transfer_syntax=ts, **kwargs)
    need_codec(ts, encode=True)
    ds = pydicom.dcmread(make_ct_file(path, **kwargs))
    ds.compress(ts, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return pathlib.Path(path)


def data_set_bytes(path) -> bytes:
    raw = pathlib.Path(path).read_bytes()
    return raw[read_file_meta(open(path, 'rb')).data_set_offset:]


def elements_but_pixels(ds):
    """Every top-level element but the pixel data, as comparable values."""
    return {elem.tag: elem.value for elem in ds if elem.tag != 0x7FE00010}


# -- our AEs ------------------------------------------------------------------------------

def storage_server(store_dir, ts):
    srv = ae_module.StorageAE(store_dir, 'STORE_SCP', 0, supported_ts=ts,
                              bind_address='127.0.0.1')
    srv.dcm_timeout = TIMEOUT
    return srv


def remote(srv, aet='STORE_SCP'):
    return {'aet': aet, 'address': '127.0.0.1', 'port': srv.local_ae.port}


def client(supported_ts=None, sop_classes=(CT, SC)):
    scu = ae_module.ClientAE('STORE_SCU', supported_ts=supported_ts)
    scu.add_scu(sopclass.storage_scu, list(sop_classes)).add_scu(sopclass.verification_scu)
    scu.dcm_timeout = TIMEOUT
    return scu


def send(store_dir, accepted, item, proposed=None, **kwargs):
    """C-STORE ``item`` to a StorageAE accepting only ``accepted``; the stored file."""
    with storage_server(store_dir, [accepted]) as srv:
        with client(proposed or [accepted]).request_association(remote(srv)) as assoc:
            status = assoc.get_scu(CT)(item, 1, **kwargs)
    assert int(status) == 0
    [stored] = list(pathlib.Path(store_dir).glob('*.dcm'))
    return stored


# -- the data-set codec the services share ---------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize('ts', sorted(transcode.UNCOMPRESSED_TS))
def test_a_data_set_reads_back_from_each_uncompressed_syntax(ts):
    ds = Dataset()
    ds.PatientName = 'Doe^Jane'
    ds.PatientID = 'ODD'  # 3 characters: padded, so the encoding is not trivially even
    raw = transcode.encode_data_set(ds, ts)
    assert len(raw) % 2 == 0  # PS3.5 A.5: a deflated stream too is padded to even length
    back = transcode.read_data_set(raw, ts)
    assert (back.PatientName, back.PatientID) == ('Doe^Jane', 'ODD')


@pytest.mark.unit
def test_a_deflated_data_set_is_raw_deflate_without_a_zlib_header():
    raw = transcode.deflate(b'\x10\x00\x10\x00' * 50)
    assert len(raw) % 2 == 0
    assert raw[:2] != b'\x78\x9c'  # the zlib header a plain zlib.compress would write
    assert transcode.inflate(raw) == b'\x10\x00\x10\x00' * 50


@pytest.mark.unit
def test_an_unknown_syntax_reads_as_explicit_vr_little_endian():
    # PS3.5 A.4: every syntax but the default ones encodes its data set so.
    assert transcode.data_set_encoding('1.2.3.4.5') == (False, True, False)
    assert transcode.data_set_encoding(uids.JPEG_BASELINE_PROCESS_1) == (False, True, False)
    assert transcode.data_set_encoding(uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN) == (
        False, True, True)


# -- choosing a syntax ----------------------------------------------------------------------

@pytest.mark.unit
def test_choose_keeps_the_own_syntax_then_uncompressed_then_lossless():
    assert transcode.choose_syntax(JPEG, [ELE, JPEG]) == JPEG
    assert transcode.choose_syntax(ELE, [RLE, ILE, EBE]) == ILE  # the peer's order
    assert transcode.choose_syntax(None, [DEFLATED]) == DEFLATED
    if PYDICOM_3:  # RLE by pydicom's own encoder
        assert transcode.choose_syntax(EBE, [RLE]) == RLE
    # No pixel data: an encapsulated syntax's data set is explicit VR LE (PS3.5 A.4).
    assert transcode.choose_syntax(ELE, [JPEG], has_pixel_data=False) == JPEG


@pytest.mark.unit
@pytest.mark.parametrize('lossy', [JPEG, J2K, JLS_NEAR, uids.MPEG2_MAIN_PROFILE_MAIN_LEVEL])
def test_a_lossy_encoding_is_never_chosen(lossy):
    with pytest.raises(ClassNotSupportedError) as info:
        transcode.choose_syntax(ELE, [lossy], subject='SOP instance 1.2.3')
    text = str(info.value)
    assert 'SOP instance 1.2.3' in text and 'lossy encoding' in text
    assert ELE in text and lossy in text  # both syntaxes, by UID
    assert info.value.transfer_syntax == ELE
    assert info.value.accepted_transfer_syntaxes == (lossy,)


@pytest.mark.unit
def test_lossy_decompression_refused_on_request_only():
    with pytest.raises(ClassNotSupportedError, match='decompress_lossy=False') as info:
        transcode.choose_syntax(JPEG, [ELE, ILE], decompress_lossy=False)
    # The Error Comment form names the source and the syntax it would have become.
    assert info.value.comment == 'JPEG Baseline -> Explicit VR LE: lossy decompression refused'
    assert error_comment(info.value.comment) == info.value.comment  # fits (0000,0902)
    # A lossless source is decompressed whatever the option says.
    need_codec(RLE)
    assert transcode.choose_syntax(RLE, [ELE], decompress_lossy=False) == ELE


@pytest.mark.unit
def test_without_pydicom_3_a_compressed_conversion_says_so(monkeypatch):
    monkeypatch.setattr(transcode, 'PYDICOM_3', False)
    with pytest.raises(ClassNotSupportedError, match='needs pydicom 3'):
        transcode.choose_syntax(RLE, [ELE])
    assert transcode.choose_syntax(EBE, [ILE]) == ILE  # uncompressed needs nothing


NO_CODECS = r'''
import sys
for name in ("numpy", "pylibjpeg", "libjpeg", "openjpeg", "rle", "jpeg_ls", "_CharLS",
             "PIL", "gdcm"):
    sys.modules[name] = None  # as if not installed
import json, pydicom
from pynetdicom2 import transcode, uids
from tests.peers import make_ct_file
out = {}
for key, source, target in (("jpeg", uids.JPEG_BASELINE_PROCESS_1, uids.EXPLICIT_VR_LITTLE_ENDIAN),
                            ("rle", uids.RLE_LOSSLESS, uids.EXPLICIT_VR_LITTLE_ENDIAN),
                            ("jls", uids.EXPLICIT_VR_LITTLE_ENDIAN,
                             uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION)):
    try:
        out[key] = transcode.choose_syntax(source, [target])
    except Exception as exc:
        out[key] = [type(exc).__name__, str(exc), exc.comment]
ds = pydicom.dcmread(make_ct_file(sys.argv[1]))
big = transcode.convert(ds, uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_BIG_ENDIAN)
out["big_endian_pixels"] = big[-8192:].hex() == b"".join(
    (i % 4096).to_bytes(2, "big") for i in range(4096)).hex()
out["rle_target"] = transcode.choose_syntax(uids.EXPLICIT_VR_LITTLE_ENDIAN, [uids.RLE_LOSSLESS])
print(json.dumps(out))
'''


def test_without_the_codecs_extra_uncompressed_still_converts_and_the_error_names_it(tmp_path):
    if not PYDICOM_3:
        pytest.skip('pydicom 2.4 refuses compressed conversions before looking for codecs')
    root = pathlib.Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, '-c', NO_CODECS, str(tmp_path / 'ct.dcm')],
                            capture_output=True, text=True, timeout=120, cwd=root)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    kind, text, comment = out['jpeg']
    assert kind == 'ClassNotSupportedError'
    assert 'pip install pynetdicom2[codecs]' in text and JPEG in text and ELE in text
    assert comment.endswith('(pip install pynetdicom2[codecs])')
    kind, text, _ = out['rle']
    assert 'numpy' in text and 'pip install pynetdicom2[codecs]' in text
    kind, text, _ = out['jls']
    assert 'pyjpegls' in text and 'pip install pynetdicom2[codecs]' in text
    assert out['big_endian_pixels'] is True  # uncompressed conversions need no codec
    assert out['rle_target'] == RLE          # pydicom encodes RLE by itself


# -- lossless round trips -------------------------------------------------------------------

@pytest.mark.parametrize('target', LOSSLESS_TARGETS)
@pytest.mark.parametrize('source', [ELE, ILE, EBE])
def test_uncompressed_to_the_only_accepted_lossless_syntax_and_back(tmp_path, source, target):
    need_codec(target, encode=True)
    need_codec(target)
    src = make_ct_file(tmp_path / 'src.dcm', sop_instance_uid='1.2.826.0.1.1', transfer_syntax=source)
    original = pydicom.dcmread(src)
    stored = send(tmp_path / 'a', target, str(src))
    got = pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == target
    assert got.SOPInstanceUID == '1.2.826.0.1.1'
    assert (got.pixel_array == original.pixel_array).all()
    assert elements_but_pixels(got) == elements_but_pixels(original)
    assert 'LossyImageCompression' not in got
    # And back to explicit VR little endian: byte for byte the little endian original.
    back = pydicom.dcmread(send(tmp_path / 'b', ELE, str(stored)))
    assert back.file_meta.TransferSyntaxUID == ELE
    assert back.PixelData == pydicom.dcmread(make_ct_file(tmp_path / 'le.dcm')).PixelData
    assert back.SOPInstanceUID == '1.2.826.0.1.1'


@pytest.mark.parametrize('source', LOSSLESS_TARGETS)
@pytest.mark.parametrize('target', UNCOMPRESSED)
def test_lossless_compressed_to_each_uncompressed_syntax(tmp_path, source, target):
    need_codec(source)
    src = make_file_in(tmp_path / 'src.dcm', source, sop_instance_uid='1.2.826.0.1.2')
    stored = send(tmp_path / 'a', target, str(src), decompress_lossy=False)
    got = pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == target
    plain = pydicom.dcmread(make_ct_file(tmp_path / 'plain.dcm'))
    assert (got.pixel_array == plain.pixel_array).all()
    if target != EBE:
        assert got.PixelData == plain.PixelData
    assert got.SOPInstanceUID == '1.2.826.0.1.2'


def test_a_callers_dataset_is_never_changed(tmp_path):
    need_codec(RLE)
    rle = pydicom.dcmread(make_ct_file(tmp_path / 'rle.dcm', transfer_syntax=RLE))
    big = pydicom.dcmread(make_ct_file(tmp_path / 'be.dcm', transfer_syntax=EBE))
    for ds, accepted in ((rle, ELE), (rle, EBE), (big, RLE), (big, ILE)):
        before = copy.deepcopy(ds)
        pixels = ds['PixelData'].value
        store_dir = tmp_path / f'{len(list(tmp_path.iterdir()))}'
        got = pydicom.dcmread(send(store_dir, accepted, ds))
        assert got.file_meta.TransferSyntaxUID == accepted
        assert ds == before and ds.file_meta == before.file_meta
        assert ds['PixelData'].value is pixels
        assert ds.PhotometricInterpretation == before.PhotometricInterpretation


def test_an_instance_without_pixel_data_goes_in_a_compressed_syntax_as_it_is(tmp_path):
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.826.0.1.3'))
    del ds.PixelData
    got = pydicom.dcmread(send(tmp_path / 's', JPEG, ds))
    assert got.file_meta.TransferSyntaxUID == JPEG
    assert elements_but_pixels(got) == elements_but_pixels(ds) and 'PixelData' not in got


# -- lossy sources ------------------------------------------------------------------------

@pytest.mark.parametrize('target', UNCOMPRESSED)
def test_jpeg_is_decompressed_to_the_decoders_own_output(tmp_path, jpeg_file, target):
    need_codec(JPEG)
    source = pydicom.dcmread(jpeg_file)
    expected = source.pixel_array  # the decoder's own output
    stored = send(tmp_path / 's', target, str(jpeg_file))
    got = pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == target
    assert (got.pixel_array == expected).all()
    if target != EBE:
        assert got.PixelData == expected.tobytes()
    # Same instance, still saying it was lossy compressed, and how.
    assert got.SOPInstanceUID == source.SOPInstanceUID
    assert got.LossyImageCompression == '01'
    assert got.LossyImageCompressionRatio == source.LossyImageCompressionRatio
    assert got.LossyImageCompressionMethod == source.LossyImageCompressionMethod
    assert got.DerivationDescription == source.DerivationDescription
    assert got.PhotometricInterpretation == 'MONOCHROME2'


def test_ybr_jpeg_arrives_as_rgb_with_the_decoders_pixels(tmp_path, rgb_jpeg_file):
    need_codec(JPEG)
    source = pydicom.dcmread(rgb_jpeg_file)
    expected = source.pixel_array  # pydicom converts YBR_FULL_422 to RGB by default
    with storage_server(tmp_path / 's', [ELE]) as srv:
        with client([ELE]).request_association(remote(srv)) as assoc:
            assert int(assoc.get_scu(SC)(str(rgb_jpeg_file), 1)) == 0
    [stored] = list((tmp_path / 's').glob('*.dcm'))
    got = pydicom.dcmread(stored)
    # PS3.3 C.7.6.3.1.2: the native pixels are RGB, so is (0028,0004).
    assert (got.PhotometricInterpretation, got.PlanarConfiguration,
            got.SamplesPerPixel) == ('RGB', 0, 3)
    assert got.PixelData == expected.tobytes()
    assert (got.pixel_array == expected).all()
    original = pydicom.dcmread(tmp_path / 'rgb.dcm').pixel_array
    assert abs(got.pixel_array.astype(int) - original.astype(int)).max() < 16  # lossy, close


def test_jpeg_to_the_only_accepted_lossless_syntax(tmp_path, jpeg_file):
    need_codec(JPEG)
    need_codec(RLE)
    expected = pydicom.dcmread(jpeg_file).pixel_array
    got = pydicom.dcmread(send(tmp_path / 's', RLE, str(jpeg_file)))
    assert got.file_meta.TransferSyntaxUID == RLE
    assert (got.pixel_array == expected).all()
    assert got.LossyImageCompression == '01'


def test_decompress_lossy_false_refuses_by_keyword_or_ae_attribute(tmp_path, jpeg_file):
    with storage_server(tmp_path / 's', [ELE]) as srv:
        scu = client([ELE])
        with scu.request_association(remote(srv)) as assoc:
            with pytest.raises(ClassNotSupportedError) as by_keyword:
                assoc.get_scu(CT)(str(jpeg_file), 1, decompress_lossy=False)
            # Nothing was sent: the association still answers an echo.
            assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(3)) == 0
        # The AE's attribute is captured by the associations that start after it is set.
        scu.decompress_lossy = False
        with scu.request_association(remote(srv)) as assoc:
            with pytest.raises(ClassNotSupportedError) as by_attribute:
                assoc.get_scu(CT)(pydicom.dcmread(jpeg_file), 2)
            assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(3)) == 0
    for info in (by_keyword, by_attribute):
        text = str(info.value)
        assert 'JPEG Baseline' in text and JPEG in text and ELE in text
        assert 'decompress_lossy=False' in text
    assert list((tmp_path / 's').glob('*')) == []


def test_the_error_for_a_refused_context_names_the_refused_syntax(tmp_path, jpeg_file):
    with storage_server(tmp_path / 's', [ELE]) as srv:
        with client([JPEG]).request_association(remote(srv)) as assoc:
            assert not [c for c in assoc.accepted_contexts.values() if c.sop_class == CT]
            with pytest.raises(ClassNotSupportedError) as info:
                sopclass.storage_scu(assoc, None, str(jpeg_file), 1)
    text = str(info.value)
    assert CT in text and 'JPEG Baseline' in text and JPEG in text and 'result 4' in text
    assert info.value.refused_transfer_syntaxes == (JPEG,)


# -- speed: nothing converted when nothing needs to be ----------------------------------

def test_an_accepted_syntax_streams_the_file_and_converts_nothing(tmp_path, jpeg_file,
                                                                monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError('converted although the syntax was accepted')
    monkeypatch.setattr(transcode, 'convert', no_conversion)
    stored = send(tmp_path / 's', JPEG, str(jpeg_file))
    assert data_set_bytes(stored) == data_set_bytes(jpeg_file)
    plain = make_ct_file(tmp_path / 'plain.dcm')
    stored = send(tmp_path / 'p', ELE, str(plain))
    assert data_set_bytes(stored) == data_set_bytes(plain)


# -- retrieve sub-operations ----------------------------------------------------------------

class RetrieveAE(ae_module.AE):
    """An AE answering C-GET and C-MOVE with the items set per test."""

    def __init__(self):
        super().__init__('QR_SCP', 0, bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.add_scp(sopclass.qr_get_scp).add_scp(sopclass.qr_move_scp)
        self.items = []
        self.destination = None

    def on_receive_get(self, context, ds):
        return len(self.items), iter(self.items)

    def on_receive_move(self, context, ds, destination):
        return self.destination, len(self.items), list(self.items)


def get_client(supported_ts):
    scu = ae_module.ClientAE('GET_SCU', supported_ts=supported_ts)
    scu.dcm_timeout = TIMEOUT
    scu.add_scu(sopclass.qr_get_scu)
    scu.add_scp(sopclass.storage_scp)
    return scu


def query():
    ds = Dataset()
    ds.QueryRetrieveLevel = 'STUDY'
    ds.StudyInstanceUID = '1.2.3'
    return ds


def watch_responses(assoc, kind):
    """Note every ``kind`` message the association receives (what came on the wire)."""
    seen, receive = [], assoc.receive

    def spy():
        msg, pc_id = receive()
        if isinstance(msg, kind):
            seen.append(msg)
        return msg, pc_id
    assoc.receive = spy
    return seen


def run_get(assoc, on_item):
    gen = assoc.get_scu(STUDY_GET)(query(), 1)
    for _ in range(100):
        try:
            on_item(*next(gen))
        except StopIteration as stop:
            return stop.value
    raise AssertionError('C-GET did not end')


@pytest.mark.parametrize('kind', ['path', 'dataset'])
def test_get_sends_a_jpeg_decompressed_to_a_requester_proposing_uncompressed(
        tmp_path, jpeg_file, kind):
    need_codec(JPEG)
    expected = pydicom.dcmread(jpeg_file).pixel_array
    received = []
    with RetrieveAE() as srv:
        srv.items = [str(jpeg_file) if kind == 'path' else pydicom.dcmread(jpeg_file)]
        with get_client([ILE]).request_association(
                remote(srv, 'QR_SCP'), sop_classes=[STUDY_GET, CT]) as assoc:
            final = run_get(assoc, lambda ctx, fp: received.append(
                (ctx.supported_ts, pydicom.dcmread(fp))))
    assert int(final) == 0
    [(ts, got)] = received
    assert ts == ILE and (got.pixel_array == expected).all()
    assert got.SOPInstanceUID == pydicom.dcmread(jpeg_file).SOPInstanceUID


def test_get_sub_operation_that_cannot_convert_fails_with_an_error_comment(tmp_path, jpeg_file):
    plain = make_ct_file(tmp_path / 'plain.dcm')
    received = []
    with RetrieveAE() as srv:
        srv.decompress_lossy = False
        srv.items = [str(jpeg_file), str(plain)]
        with get_client([ELE]).request_association(
                remote(srv, 'QR_SCP'), sop_classes=[STUDY_GET, CT]) as assoc:
            responses = watch_responses(assoc, dimse.CGetRSPMessage)
            final = run_get(assoc, lambda ctx, fp: received.append(pydicom.dcmread(fp)))
    assert int(final) == 0xB000 and len(received) == 1
    last = responses[-1]
    assert (last.num_of_completed_sub_ops, last.num_of_failed_sub_ops) == (1, 1)
    comment = last.error_comment
    assert comment == 'JPEG Baseline -> Explicit VR LE: lossy decompression refused'


@pytest.fixture
def destination(tmp_path):
    """A StorageAE taking only the default uncompressed syntaxes, as DCMTK's storescp."""
    with storage_server(tmp_path / 'dest', None) as dest:
        yield dest


def run_move(srv):
    with ae_module.ClientAE('MOVE_SCU').add_scu(sopclass.qr_move_scu).request_association(
            remote(srv, 'QR_SCP')) as assoc:
        gen = assoc.get_scu(STUDY_MOVE)(query(), 'DEST', 1)
        return list(itertools.islice(gen, 100))


def test_move_to_a_destination_taking_only_uncompressed_decompresses(tmp_path, jpeg_file,
                                                                     destination):
    need_codec(JPEG)
    with RetrieveAE() as srv:
        srv.items = [str(jpeg_file)]
        srv.destination = remote(destination, 'DEST')
        responses = run_move(srv)
    status, final = responses[-1]
    assert int(status) == 0 and final.num_of_completed_sub_ops == 1
    [stored] = list((tmp_path / 'dest').glob('*.dcm'))
    got = pydicom.dcmread(stored)
    assert not transcode.is_lossy(got.file_meta.TransferSyntaxUID)
    assert (got.pixel_array == pydicom.dcmread(jpeg_file).pixel_array).all()


def test_move_refusing_lossy_decompression_fails_with_the_refused_syntax(tmp_path, jpeg_file,
                                                                        destination):
    with RetrieveAE() as srv:
        srv.decompress_lossy = False
        srv.items = [str(jpeg_file)]
        srv.destination = remote(destination, 'DEST')
        responses = run_move(srv)
    status, final = responses[-1]
    assert int(status) == 0xB000 and final.num_of_failed_sub_ops == 1
    # Only its own syntax was proposed, and the destination refused it (result 4).
    assert final.error_comment == f'JPEG Baseline refused for {CT}'
    assert list((tmp_path / 'dest').glob('*.dcm')) == []
