"""Negotiation against DCMTK (issue 16): what our tools propose and accept, read from
DCMTK's own debug log of the A-ASSOCIATE-RQ and -AC, and what arrives on disk.

- our storescu sends a JPEG file to storescp's default (uncompressed only): CT is
  proposed twice (uncompressed syntaxes; JPEG alone), storescp accepts the first and
  refuses the second (transfer syntaxes not supported), the file arrives decompressed;
  to storescp +xa the JPEG goes as it is;
- DCMTK's storescu -xy sends a JPEG to our storescp's default: kept byte for byte;
- dcmqrscp: our storescu stores a JPEG in its default (uncompressed) archive by
  decompressing it; our getscu +xy retrieves a JPEG from dcmqrscp +xy as it is;
- DCMTK's getscu +xy retrieves a JPEG from our qrscp as it is stored.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import sys
import time

import pydicom
import pytest

from pynetdicom2 import uids
from tests import peers
from tests.peers import describe, dcmtk, free_port, make_ct_file, run_tool, start_dcmtk_scp
from tests.test_apps import our_server, run_app
from tests.test_transcode import data_set_bytes, dcmcjpeg, need_codec

CT = 'CTImageStorage'
ELE = uids.EXPLICIT_VR_LITTLE_ENDIAN
JPEG = uids.JPEG_BASELINE_PROCESS_1


@pytest.fixture
def jpeg_file(tmp_path):
    return dcmcjpeg(make_ct_file(tmp_path / 'ct.dcm'), tmp_path / 'jpeg.dcm')


def only_file(directory):
    files = [p for p in pathlib.Path(directory).rglob('*') if p.is_file()
             and not p.name.startswith('.') and p.suffix != '.dat']
    assert len(files) == 1, files
    return files[0]


def negotiation(log: str):
    """From a DCMTK -d log: the proposed contexts ``{id: (abstract syntax, [syntaxes])}``
    and the answers ``{id: (result as DCMTK names it, accepted syntax or None)}`` of the
    first association."""
    rq = log[log.index('BEGIN A-ASSOCIATE-RQ'):log.index('END A-ASSOCIATE-RQ')]
    ac = log[log.index('BEGIN A-ASSOCIATE-AC'):log.index('END A-ASSOCIATE-AC')]
    proposed, answered = {}, {}
    for block in re.split(r'Context ID:\s+', rq)[1:]:
        pc_id = int(block.split()[0])
        abstract = re.search(r'Abstract Syntax: =(\S+)', block).group(1)
        tail = block.split('Proposed Transfer Syntax(es):')[1]
        proposed[pc_id] = (abstract, re.findall(r'^D:\s+=([^=\s]\S*)\s*$', tail, re.M))
    for block in re.split(r'Context ID:\s+', ac)[1:]:
        pc_id, result = re.match(r'(\d+) \(([^)]*)\)', block).groups()
        accepted = re.search(r'Accepted Transfer Syntax: =(\S+)', block)
        answered[int(pc_id)] = (result, accepted.group(1) if accepted else None)
    return proposed, answered


def wait_for(proc, text, timeout=10):
    """The peer's output once it shows ``text`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = peers.process_output(proc)
        if text in out:
            return out
        time.sleep(0.05)
    pytest.fail(f'no {text!r} in the peer output:\n{peers.process_output(proc)}')


# -- our storescu to DCMTK storescp ----------------------------------------------------------

def test_storescu_jpeg_to_storescp_default_two_contexts_uncompressed_accepted(tmp_path,
                                                                               jpeg_file):
    need_codec(JPEG)
    (tmp_path / 'out').mkdir()
    with start_dcmtk_scp('storescp', ['-d', '-od', str(tmp_path / 'out')]) as (proc, port):
        sent = run_app('storescu', '127.0.0.1', port, jpeg_file)
        log = wait_for(proc, 'Association Release')
    assert sent.returncode == 0, describe(sent)
    proposed, answered = negotiation(log)
    assert proposed == {1: (CT, ['LittleEndianExplicit', 'LittleEndianImplicit']),
                        3: (CT, ['JPEGBaseline'])}
    assert answered == {1: ('Accepted', 'LittleEndianExplicit'),
                        3: ('Transfer Syntaxes Not Supported', None)}
    got = pydicom.dcmread(only_file(tmp_path / 'out'))
    assert got.file_meta.TransferSyntaxUID == ELE
    assert got.PixelData == pydicom.dcmread(jpeg_file).pixel_array.tobytes()


def test_storescu_jpeg_to_storescp_accepting_all_goes_as_it_is(tmp_path, jpeg_file):
    (tmp_path / 'out').mkdir()
    with start_dcmtk_scp('storescp', ['-d', '+xa', '-od', str(tmp_path / 'out')]) as (proc,
                                                                                   port):
        sent = run_app('storescu', '127.0.0.1', port, jpeg_file)
        log = wait_for(proc, 'Association Release')
    assert sent.returncode == 0, describe(sent)
    _, answered = negotiation(log)
    assert answered == {1: ('Accepted', 'LittleEndianExplicit'), 3: ('Accepted', 'JPEGBaseline')}
    assert data_set_bytes(only_file(tmp_path / 'out')) == data_set_bytes(jpeg_file)


# -- DCMTK storescu to our storescp -----------------------------------------------------------

def test_dcmtk_storescu_jpeg_kept_as_it_is_by_our_storescp_default(tmp_path, jpeg_file):
    with our_server('storescp', '-od', tmp_path / 'out') as (_, port):
        sent = run_tool([dcmtk('storescu'), '-xy', '127.0.0.1', str(port), str(jpeg_file)])
    assert sent.returncode == 0, describe(sent)
    assert data_set_bytes(only_file(tmp_path / 'out')) == data_set_bytes(jpeg_file)


# -- DCMTK dcmqrscp ------------------------------------------------------------------------

@contextlib.contextmanager
def dcmqrscp(tmp_path, *args):
    """DCMTK's archive, AE title DCMQR, its database in ``tmp_path/db``; (proc, port)."""
    db = tmp_path / 'db'
    db.mkdir()
    config = tmp_path / 'dcmqrscp.cfg'
    config.write_text('NetworkTCPPort = 104\nMaxPDUSize = 16384\nMaxAssociations = 4\n'
                      'HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n'
                      f'AETable BEGIN\nDCMQR {db} RW (10, 100mb) ANY\nAETable END\n')
    port = free_port()
    proc = peers._spawn([dcmtk('dcmqrscp'), '-c', str(config), *args, str(port)])
    try:
        peers.wait_listening(port, 10, proc=proc)
        yield proc, port
    finally:
        peers.stop_process(proc)


def test_storescu_jpeg_into_dcmqrscp_default_is_decompressed(tmp_path, jpeg_file):
    need_codec(JPEG)
    with dcmqrscp(tmp_path) as (_, port):
        sent = run_app('storescu', '-aec', 'DCMQR', '127.0.0.1', port, jpeg_file)
    assert sent.returncode == 0, describe(sent)
    got = pydicom.dcmread(only_file(tmp_path / 'db'))
    assert got.file_meta.TransferSyntaxUID == ELE
    assert got.PixelData == pydicom.dcmread(jpeg_file).pixel_array.tobytes()


def test_getscu_retrieves_a_jpeg_from_dcmqrscp_as_it_is(tmp_path, jpeg_file):
    ds = pydicom.dcmread(jpeg_file)
    keys = ['-k', 'QueryRetrieveLevel=STUDY', '-k', f'StudyInstanceUID={ds.StudyInstanceUID}']
    with dcmqrscp(tmp_path, '+xy') as (_, port):
        sent = run_app('storescu', '-aec', 'DCMQR', '127.0.0.1', port, jpeg_file)
        assert sent.returncode == 0, describe(sent)
        # dcmqrscp sends on the first context it accepted for the class, whatever its
        # syntax: +xy puts our JPEG context first (the default puts the uncompressed one).
        got = run_app('getscu', '-S', '+xy', '-aec', 'DCMQR', '-od', tmp_path / 'got', *keys,
                      '127.0.0.1', port)
    assert got.returncode == 0, describe(got)
    assert 'received 1 instance(s)' in got.stdout
    assert data_set_bytes(only_file(tmp_path / 'got')) == data_set_bytes(jpeg_file)


# -- DCMTK getscu from our qrscp ------------------------------------------------------------

def test_dcmtk_getscu_retrieves_a_jpeg_from_qrscp_as_it_is_stored(tmp_path, jpeg_file):
    ds = pydicom.dcmread(jpeg_file)
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (_, port):
        sent = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, jpeg_file)
        assert sent.returncode == 0, describe(sent)
        (tmp_path / 'got').mkdir()
        got = run_tool([dcmtk('getscu'), '-S', '+xy', '-aec', 'ARCHIVE', '-od',
                        str(tmp_path / 'got'), '-k', 'QueryRetrieveLevel=STUDY', '-k',
                        f'StudyInstanceUID={ds.StudyInstanceUID}', '127.0.0.1', str(port)])
    assert got.returncode == 0, describe(got)
    # DCMTK's getscu +xy proposes JPEG first in one context: qrscp keeps that first choice
    # and sends the stored JPEG (getscu writes its own encoding of the data set).
    got = pydicom.dcmread(only_file(tmp_path / 'got'))
    assert got.file_meta.TransferSyntaxUID == JPEG
    assert got.PixelData == ds.PixelData
