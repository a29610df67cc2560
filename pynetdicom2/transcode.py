"""Transfer-syntax conversion on the sending side (PS3.5 7.3, 8.2, 10, A.4).

``choose_syntax`` decides which of the syntaxes a peer accepted an instance goes in;
``convert`` encodes a copy of the instance in it: between the uncompressed syntaxes
always, out of a compressed syntax by decompressing and into a lossless compressed one
by compressing, through pydicom's pixel-data plugins (pydicom 3). A lossy encoding is
never made. The caller's data set is never changed.
"""

from __future__ import annotations

import copy
import functools
import io
import zlib
from typing import Iterable, List, Optional, Sequence, Tuple

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import correct_ambiguous_vr, write_dataset

from pynetdicom2 import uids
from pynetdicom2.dsutils import decode_flat
from pynetdicom2.exceptions import ClassNotSupportedError

#: What to install for the codecs pydicom's plugins need (numpy, pylibjpeg, ...).
CODECS_HINT = 'pip install pynetdicom2[codecs]'

#: The native (uncompressed) syntaxes, re-encodable into each other with pydicom alone:
#: ``uids.UNCOMPRESSED_TS`` (PS3.5 A.1, A.2, A.3) and deflate (A.5).
UNCOMPRESSED_TS = frozenset(uids.UNCOMPRESSED_TS + (uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,))

#: Compressed syntaxes that lose nothing by definition (PS3.5 A.4: the lossless JPEG
#: processes, JPEG-LS and JPEG 2000 "lossless only", RLE, encapsulated uncompressed).
#: Every other compressed syntax is taken as lossy: decompressing one is refused
#: when the caller asks for that (``decompress_lossy=False``, as DCMTK's ``+dls``).
LOSSLESS_COMPRESSED_TS = frozenset({
    uids.RLE_LOSSLESS, uids.ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LITTLE_ENDIAN,
    uids.JPEG_LOSSLESS_NON_HIERARCHICAL_PROCESS_14,
    uids.JPEG_LOSSLESS_NON_HIERARCHICAL_PROCESS_15,
    uids.JPEG_LOSSLESS_HIERARCHICAL_PROCESS_28, uids.JPEG_LOSSLESS_HIERARCHICAL_PROCESS_29,
    uids.JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION_PROCESS_14_SELECTION_VALUE_1,
    uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION, uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY,
    uids.JPEG_2000_PART_2_MULTI_COMPONENT_IMAGE_COMPRESSION_LOSSLESS_ONLY,
    uids.HIGH_THROUGHPUT_JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY,
    uids.HIGH_THROUGHPUT_JPEG_2000_WITH_RPCL_OPTIONS_IMAGE_COMPRESSION_LOSSLESS_ONLY})

# Syntaxes whose pixel data, when there is any, is always the result of a lossy
# process: decompressing them marks the image as lossy (PS3.3 C.7.6.1.1.5) with this
# method when the data set does not say so already. JPEG 2000 (.91) may hold a
# reversible code stream and is not marked.
_LOSSY_METHOD = {
    uids.JPEG_BASELINE_PROCESS_1: 'ISO_10918_1',
    uids.JPEG_EXTENDED_PROCESS_2_AND_4: 'ISO_10918_1',
    uids.JPEG_LS_LOSSY_NEAR_LOSSLESS_IMAGE_COMPRESSION: 'ISO_14495_1',
}

# Syntaxes whose data set is not (all) in the message (JPIP: PS3.5 A.6, A.7) or
# which DIMSE does not carry data sets in (PS3.5 A.8, A.9, A.10): never a target.
_NOT_A_TARGET = frozenset({
    uids.JPIP_REFERENCED, uids.JPIP_REFERENCED_DEFLATE, uids.JPIP_HTJ2K_REFERENCED,
    uids.JPIP_HTJ2K_REFERENCED_DEFLATE, uids.RFC_2557_MIME_ENCAPSULATION, uids.XML_ENCODING,
    uids.SMPTE_ST_2110_20_UNCOMPRESSED_PROGRESSIVE_ACTIVE_VIDEO,
    uids.SMPTE_ST_2110_20_UNCOMPRESSED_INTERLACED_ACTIVE_VIDEO,
    uids.SMPTE_ST_2110_30_PCM_DIGITAL_AUDIO})

# Names short enough for an Error Comment (LO, 64 characters: PS3.5 6.2).
_SHORT_NAMES = {
    uids.IMPLICIT_VR_LITTLE_ENDIAN: 'Implicit VR LE',
    uids.EXPLICIT_VR_LITTLE_ENDIAN: 'Explicit VR LE',
    uids.EXPLICIT_VR_BIG_ENDIAN: 'Explicit VR BE',
    uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: 'Deflated LE',
    uids.JPEG_BASELINE_PROCESS_1: 'JPEG Baseline',
    uids.JPEG_EXTENDED_PROCESS_2_AND_4: 'JPEG Extended',
    uids.JPEG_LOSSLESS_NON_HIERARCHICAL_PROCESS_14: 'JPEG Lossless',
    uids.JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION_PROCESS_14_SELECTION_VALUE_1:
        'JPEG Lossless SV1',
    uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION: 'JPEG-LS Lossless',
    uids.JPEG_LS_LOSSY_NEAR_LOSSLESS_IMAGE_COMPRESSION: 'JPEG-LS Near-Lossless',
    uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY: 'JPEG 2000 Lossless',
    uids.JPEG_2000_IMAGE_COMPRESSION: 'JPEG 2000',
    uids.RLE_LOSSLESS: 'RLE Lossless',
}

#: True when pydicom 3 is installed: compressed pixel data converts only then (its
#: ``pydicom.pixels`` codecs); under pydicom 2 such a conversion is refused, saying so.
PYDICOM_3 = int(pydicom.__version__.split('.')[0]) >= 3
# Elements that describe the pixel data of the encoding they came with (PS3.5 A.4:
# offset tables of encapsulated pixel data); native pixel data must not carry them.
_ENCAPSULATION_ONLY = ('ExtendedOffsetTable', 'ExtendedOffsetTableLengths')


# -- names and kinds ------------------------------------------------------------------

def ts_name(ts: Optional[str]) -> str:
    """``Name (UID)`` of a transfer syntax, or the UID alone when pydicom has no name."""
    if ts is None:
        return 'no stated transfer syntax'
    name = pydicom.uid.UID(ts).name
    return f'{name} ({ts})' if name and name != ts else str(ts)


def short_name(ts: Optional[str]) -> str:
    """A name that fits an Error Comment: ``JPEG Baseline``, or the UID."""
    if ts is None:
        return 'unencoded'
    return _SHORT_NAMES.get(ts, str(ts))


def is_uncompressed(ts: Optional[str]) -> bool:
    """True for a native syntax; None (a data set with no stated syntax) counts as one."""
    return ts is None or ts in UNCOMPRESSED_TS


def is_lossy(ts: Optional[str]) -> bool:
    """True for a compressed syntax not known to be lossless (``LOSSLESS_COMPRESSED_TS``)."""
    return not is_uncompressed(ts) and ts not in LOSSLESS_COMPRESSED_TS


def _is_little_endian(ts: Optional[str]) -> bool:
    return ts != uids.EXPLICIT_VR_BIG_ENDIAN


# -- codecs ---------------------------------------------------------------------------

def _codec_problem(ts: str, encode: bool) -> Optional[Tuple[str, str]]:
    """Why pydicom cannot decode (or encode) pixel data in ``ts`` here, or None.

    Returns ``(reason, short reason)``; a missing plugin names the extra to install.
    """
    what = 'encode' if encode else 'decode'
    if not PYDICOM_3:
        return (f'converting compressed pixel data needs pydicom 3 (pydicom '
                f'{pydicom.__version__} is installed)', 'needs pydicom 3')
    from pydicom.pixels import get_decoder, get_encoder  # pydicom 3 only
    try:
        codec = (get_encoder if encode else get_decoder)(pydicom.uid.UID(ts))
    except (NotImplementedError, ValueError):
        return (f'pydicom cannot {what} pixel data in {ts_name(ts)}',
                f'pydicom cannot {what} it')
    if codec.is_available and not encode and not _have_numpy():
        # pydicom's decompress() builds the frames as numpy arrays, whatever the plugin.
        return (f'to decode pixel data in {ts_name(ts)} pydicom needs numpy, which is not '
                f'installed: {CODECS_HINT}', f'no numpy ({CODECS_HINT})')
    if codec.is_available:
        return None
    missing = '; '.join(codec.missing_dependencies) or 'its plugins'
    return (f'to {what} pixel data in {ts_name(ts)} pydicom needs codecs that are not '
            f'installed ({missing}): {CODECS_HINT}', f'no codec ({CODECS_HINT})')


def _have_numpy() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def _problem(source: Optional[str], target: str, has_pixel_data: bool,
             decompress_lossy: bool) -> Optional[Tuple[str, str]]:
    """Why an instance in ``source`` cannot be sent in ``target``, or None when it can."""
    if target == source:
        return None
    if target in _NOT_A_TARGET:
        return (f'{ts_name(target)} cannot carry a data set in a DIMSE message',
                'not a network syntax')
    if not has_pixel_data:
        # PS3.5 A.4: without pixel data, an encapsulated syntax's data set is plain
        # explicit VR little endian; any syntax will do.
        return None
    if not is_uncompressed(source):
        if is_lossy(source) and not decompress_lossy:
            return (f'its pixel data are lossy compressed and decompressing them was '
                    f'refused (decompress_lossy=False)', 'lossy decompression refused')
        problem = _codec_problem(source, encode=False)
        if problem is not None:
            return problem
    if is_uncompressed(target):
        return None
    if target not in LOSSLESS_COMPRESSED_TS:
        return (f'{ts_name(target)} would need a lossy encoding, which is never made',
                'lossy encoding never made')
    return _codec_problem(target, encode=True)


def _preference(accepted: Sequence[str]) -> List[str]:
    """The accepted syntaxes, best first: native ones (cheap, lossless), then lossless
    compressed ones, then the rest; each group in the peer's order."""
    unique = list(dict.fromkeys(accepted))
    return ([ts for ts in unique if ts in UNCOMPRESSED_TS]
            + [ts for ts in unique if ts in LOSSLESS_COMPRESSED_TS]
            + [ts for ts in unique if ts not in UNCOMPRESSED_TS
               and ts not in LOSSLESS_COMPRESSED_TS])


def choose_syntax(source: Optional[str], accepted: Iterable[str], *,
                  has_pixel_data: bool = True, decompress_lossy: bool = True,
                  subject: str = 'the data set') -> str:
    """The syntax among ``accepted`` to send an instance encoded in ``source`` in.

    ``source`` itself when accepted (nothing to convert); else an uncompressed one,
    else a lossless compressed one pydicom can make here. ``has_pixel_data=False``
    makes every syntax usable (no pixel data to convert). Raises
    ``ClassNotSupportedError`` naming ``subject``, the source syntax and the accepted
    ones, and why none will do; the error carries ``transfer_syntax`` (the
    source), ``accepted_transfer_syntaxes`` and ``comment`` (a short form for an
    Error Comment).
    """
    accepted = list(accepted)
    if source is not None and source in accepted:
        return source
    first = None
    for target in _preference(accepted):
        problem = _problem(source, target, has_pixel_data, decompress_lossy)
        if problem is None:
            return target
        first = first or (target, problem)
    raise not_convertible(subject, source, accepted, first)


def not_convertible(subject: str, source: Optional[str], accepted: Sequence[str],
                    problem: Optional[Tuple[str, Tuple[str, str]]]) -> ClassNotSupportedError:
    """The error for an instance that no accepted syntax can carry (see ``choose_syntax``).

    ``problem`` is ``(target, (reason, short reason))`` for the best target: the Error
    Comment form names the source, that target and the short reason.
    """
    names = ', '.join(ts_name(ts) for ts in accepted) or 'no transfer syntax'
    target, (reason, short) = problem or (None, ('no transfer syntax was accepted',
                                                 'none accepted'))
    what = f'{subject} in {ts_name(source)}' if source else subject
    exc = ClassNotSupportedError(
        f'cannot send {what}: the peer accepted its SOP class only in {names}, '
        f'and {reason}')
    exc.transfer_syntax = source
    exc.accepted_transfer_syntaxes = tuple(accepted)
    exc.comment = (f'{short_name(source)} -> {short_name(target)}: {short}' if target
                   else f'{short_name(source)}: {short}')
    return exc


# -- encoding -------------------------------------------------------------------------

# Bytes per value of the "other" VRs swapped between little and big endian (PS3.5
# 7.3); pydicom keeps them as raw bytes and does not swap them.
_SWAP_SIZE = {'OW': 2, 'OF': 4, 'OL': 4, 'OD': 8, 'OV': 8}


def _swap_bytes(ds: Dataset) -> None:
    """Byte-swap the raw values of the OW/OF/OL/OD/OV elements of ``ds`` in place.

    Used when a data set changes endianness (PS3.5 7.3): pydicom decodes numbers but
    keeps these values as the bytes it read.
    """
    for elem in ds:
        if elem.VR == 'SQ':
            for item in elem.value:
                _swap_bytes(item)
            continue
        size = _SWAP_SIZE.get(elem.VR)
        value = elem.value
        if size is None or not isinstance(value, (bytes, bytearray)) or len(value) % size:
            continue
        swapped = bytearray(len(value))
        for i in range(size):
            swapped[i::size] = value[size - 1 - i::size]
        elem.value = bytes(swapped)


def encode_data_set(ds: Dataset, ts: str, source_ts: Optional[str] = None) -> bytes:
    """Encode ``ds`` in the uncompressed or deflated transfer syntax ``ts``.

    ``source_ts`` is the syntax the data set's raw values (pixel data) are in; when its
    byte order differs from ``ts``'s, those values are swapped (in a copy: ``ds`` is
    not changed).
    """
    if ts not in UNCOMPRESSED_TS:
        raise ClassNotSupportedError(f'cannot encode a data set in {ts_name(ts)}')
    little_endian = _is_little_endian(ts)
    if source_ts is not None and _is_little_endian(source_ts) != little_endian:
        ds = copy.deepcopy(ds)  # the caller's data set keeps its bytes
        correct_ambiguous_vr(ds, _is_little_endian(source_ts))
        _swap_bytes(ds)
    raw = _write(ds, ts == uids.IMPLICIT_VR_LITTLE_ENDIAN, little_endian)
    if ts == uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        raw = deflate(raw)
    return raw


# -- the data-set codec every service shares ------------------------------------------

def deflate(raw: bytes) -> bytes:
    """``raw`` deflated as a deflated syntax carries a data set (PS3.5 A.5)."""
    # RFC 1951 without a zlib header; an odd stream gets one trailing NULL (PS3.5 A.5).
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = compressor.compress(raw) + compressor.flush()
    return raw + b'\x00' if len(raw) % 2 else raw


def inflate(raw: bytes) -> bytes:
    """The bytes of the deflated data set ``raw`` (PS3.5 A.5); a pad byte is ignored.

    A corrupt stream raises ``zlib.error``; a truncated one inflates as far as it goes.
    """
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(bytes(raw))


@functools.lru_cache(maxsize=64)
def data_set_encoding(ts: str) -> Tuple[bool, bool, bool]:
    """(implicit VR, little endian, deflated) of a data set in ``ts`` (PS3.5 10, A).

    A syntax pydicom does not know is taken as explicit VR little endian, the encoding
    of every non-default syntax the standard defines (the compressed ones too, A.4).
    """
    if ts == uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        return False, True, True
    try:
        ts_uid = pydicom.uid.UID(ts)
        return ts_uid.is_implicit_VR, ts_uid.is_little_endian, ts_uid.is_deflated
    except ValueError:
        return False, True, False


def read_data_set(raw: bytes, ts: str, stop_when=None) -> Dataset:
    """The data set ``raw`` encodes in ``ts`` (inflated first in a deflated syntax).

    ``stop_when`` is pydicom's ``read_dataset`` one. Raises what pydicom or zlib raise
    on bytes that do not decode: the caller says which error that is at its edge.
    A data set in little endian whose elements all have a defined length (a C-FIND
    identifier) is read by ``dsutils.decode_flat``, into the Dataset pydicom gives.
    """
    implicit, little, deflated = data_set_encoding(ts)
    if deflated:
        raw = inflate(raw)
    if little and stop_when is None:
        ds = decode_flat(raw, implicit)
        if ds is not None:
            return ds
    return read_dataset(io.BytesIO(bytes(raw)), implicit, little, stop_when=stop_when)


def encode_encapsulated(ds: Dataset) -> bytes:
    """A data set in a compressed syntax: explicit VR little endian (PS3.5 A.4)."""
    return _write(ds, False, True)


def _write(ds: Dataset, implicit: bool, little_endian: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = little_endian
    fp.is_implicit_VR = implicit
    write_dataset(fp, ds)
    return fp.getvalue()


# -- conversion -----------------------------------------------------------------------

def _working_copy(ds: Dataset) -> Dataset:
    """A data set of its own for pydicom's codecs to change in place.

    Its top-level elements are copies (values shared: they are replaced, never
    changed, by the codecs); nested sequences are shared. The file meta is copied.
    """
    work = Dataset()
    for tag in ds.keys():
        elem = ds.get_item(tag)
        # A raw element is an immutable tuple; a DataElement gets its own object.
        work[tag] = elem if isinstance(elem, tuple) else copy.copy(elem)
    meta = getattr(ds, 'file_meta', None)
    work.file_meta = copy.deepcopy(meta) if meta is not None else FileMetaDataset()
    if hasattr(ds, 'set_original_encoding') and ds.original_encoding[0] is not None:
        work.set_original_encoding(*ds.original_encoding,
                                   getattr(ds, 'original_character_set', None))
    return work


def _decompress(work: Dataset, source: str) -> None:
    """Decode ``work``'s pixel data (in ``source``) in place, keeping its SOP Instance UID."""
    work.file_meta.TransferSyntaxUID = source
    # as_rgb: YBR_FULL(_422) pixel data come out as RGB and (0028,0004) says RGB; kept
    # in YBR, the decoded frames would be full-resolution YBR_FULL under a 422 label.
    work.decompress(as_rgb=True, generate_instance_uid=False)
    for keyword in _ENCAPSULATION_ONLY:
        if keyword in work:
            del work[keyword]
    method = _LOSSY_METHOD.get(source)
    if method is not None:
        # PS3.3 C.7.6.1.1.5: once lossy compressed, an image says so for good; the
        # ratio and method the data set carries are kept as they are.
        if 'LossyImageCompression' not in work:
            work.LossyImageCompression = '01'
        if 'LossyImageCompressionMethod' not in work:
            work.LossyImageCompressionMethod = method


def convert(ds: Dataset, source: Optional[str], target: str) -> bytes:
    """``ds`` (whose values are in ``source``; None: an unencoded Dataset) encoded in
    ``target``, ready to send; ``ds`` itself is not changed.

    ``target`` is one ``choose_syntax`` gave. The SOP Instance UID and every other
    element are kept; decompressing updates the Image Pixel elements pydicom's
    decoder reports (Photometric Interpretation RGB for YBR JPEG data). Raises
    ``ClassNotSupportedError`` when a codec fails (the cause chained).
    """
    has_pixel_data = 'PixelData' in ds
    native = source if is_uncompressed(source) else uids.EXPLICIT_VR_LITTLE_ENDIAN
    if not has_pixel_data or (is_uncompressed(source) and is_uncompressed(target)):
        # Nothing to decode or encode: a native encoding, or, for a compressed target
        # without pixel data, explicit VR little endian (PS3.5 A.4).
        return encode_data_set(ds, target if is_uncompressed(target)
                               else uids.EXPLICIT_VR_LITTLE_ENDIAN, native)
    step = 'decompressing'
    try:
        work = _working_copy(ds)
        if not is_uncompressed(source):
            _decompress(work, source)
        if is_uncompressed(target):
            return encode_data_set(work, target, native)
        step = 'compressing'
        if not _is_little_endian(native):
            # pydicom's encoders read pixel data as little endian (PS3.5 7.3).
            work = copy.deepcopy(work)
            correct_ambiguous_vr(work, False)
            _swap_bytes(work)
        work.file_meta.TransferSyntaxUID = uids.EXPLICIT_VR_LITTLE_ENDIAN
        work.compress(target, generate_instance_uid=False)
        return encode_encapsulated(work)
    except ClassNotSupportedError:
        raise
    except Exception as exc:  # pydicom's codecs raise many kinds on data they refuse
        error = ClassNotSupportedError(
            f'{step} pixel data from {ts_name(source)} to {ts_name(target)} failed: {exc}')
        error.transfer_syntax = source
        error.accepted_transfer_syntaxes = (target,)
        error.comment = f'{short_name(source)} -> {short_name(target)}: {step} failed'
        raise error from exc


def offered_syntaxes(source: Optional[str], decompress_lossy: bool = True) -> Tuple[str, ...]:
    """What to propose for an instance in ``source``: its own syntax first, then the
    uncompressed ones it can be converted to (none for a lossy one when
    ``decompress_lossy`` is False)."""
    own = (source,) if source else ()
    if not is_uncompressed(source) and (
            (is_lossy(source) and not decompress_lossy)
            or _codec_problem(source, encode=False) is not None):
        return own  # the peer must take it as it is
    native = (uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN,
              uids.EXPLICIT_VR_BIG_ENDIAN, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    return tuple(dict.fromkeys(own + native))


__all__ = ['choose_syntax', 'convert', 'encode_data_set', 'encode_encapsulated',
           'is_lossy', 'is_uncompressed', 'not_convertible', 'offered_syntaxes',
           'short_name', 'ts_name', 'CODECS_HINT', 'UNCOMPRESSED_TS',
           'LOSSLESS_COMPRESSED_TS', 'PYDICOM_3']
