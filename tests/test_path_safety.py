"""Peer strings are data, never paths: hostile UIDs against every AE that names files.

A SOP Instance UID such as ``../../x``, an absolute path (``<tmp>/etc/passwd``), one
longer than 64 characters, one with a NUL byte or a backslash, is refused with a
failure status and writes nothing anywhere: the whole temporary tree is walked before
and after. The receivers tested are ``StorageAE`` (data sets streamed to a file, and
held in memory), ``ClientStorageAE`` as the C-GET SCU (our ``qr_get_scp`` sends it
crafted Part-10 files), and the qrscp ``Archive``, which also builds a path from the
Study and Series Instance UIDs.
"""

from __future__ import annotations

import os
from copy import deepcopy
import pathlib
import struct
import warnings
from typing import Dict, Iterator, List, Tuple

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, sopclass, uids
from pynetdicom2.apps import filestore, qrindex, qrscp
from pynetdicom2.services.storage import read_file_meta
from tests.peers import make_ct_file

CT = uids.CT_IMAGE_STORAGE
VERIFICATION = uids.VERIFICATION_SOP_CLASS
STUDY_GET = uids.STUDY_ROOT_GET_SOP_CLASS
TIMEOUT = 5
# pydicom warns about every invalid UI value these tests make on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI",
                                        "ignore:The value length")
# Absolute paths point into the test's own temporary tree (filled in per test): a
# regression then writes where the walk sees it, never into the real /etc.
ABSOLUTE_PASSWD = '<tmp>/etc/passwd'
ABSOLUTE_INSIDE = '<tmp>/escaped'

#: UIDs a hostile peer may send, each with what it would do if it became a path.
HOSTILE_UIDS = {
    'parent': '../x',
    'grandparent': '../../x',
    'absolute-passwd': ABSOLUTE_PASSWD,
    'absolute-inside': ABSOLUTE_INSIDE,
    'uid-then-up': '1.2.3/../../x',
    'subdirectory': '1.2/3',
    'too-long': '1.2.' + '3' * 61,            # 65 characters
    'far-too-long': '1.' * 60 + '1',         # 121 characters
    'nul-inside': '1.2.3\x00/../../x',
    'nul-first': '\x00../../x',
    'backslash-up': '..\\..\\x',
    'backslash-drive': 'C:\\Windows\\x',
    'dot': '.',
    'dot-dot': '..',
    'empty': '',
    'spaces': '1.2 3',
}


def hostile_values(tmp_path: pathlib.Path) -> Dict[str, str]:
    """``HOSTILE_UIDS`` with the absolute paths made real; ``<tmp>/etc/passwd`` exists."""
    passwd = tmp_path / 'etc' / 'passwd'
    if not passwd.exists():
        passwd.parent.mkdir()
        passwd.write_text('root:x:0:0:root:/root:/bin/sh\n')
    return {name: value.replace('<tmp>', str(tmp_path)) for name, value in HOSTILE_UIDS.items()}


# -- watching the file system ----------------------------------------------------------

def tree(root: pathlib.Path) -> Dict[str, Tuple[str, int]]:
    """Every file and directory under ``root``: relative path -> (kind, size)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = ('dir', 0)
        for name in filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = ('file', os.path.getsize(path))
    return found


def changes(before: dict, after: dict) -> List[str]:
    """What appeared, vanished or changed size between two ``tree`` snapshots."""
    return sorted(path for path in set(before) | set(after)
                  if before.get(path) != after.get(path))


# -- crafting what pydicom would refuse to write ------------------------------------------

def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element with a 2-byte length (PS3.5 7.1.2)."""
    if len(value) % 2:
        value += b'\x00'
    return struct.pack('<HH2sH', group, elem, vr, len(value)) + value


def part10(sop_instance_uid: str, data_set: bytes,
           transfer_syntax: str = uids.EXPLICIT_VR_LITTLE_ENDIAN) -> bytes:
    """A Part-10 file (PS3.10 7.1) whose File Meta carries ``sop_instance_uid`` verbatim,
    whatever it holds (NUL bytes, 65+ characters), followed by ``data_set``."""
    meta = b''.join([
        struct.pack('<HH2s2xL', 0x0002, 0x0001, b'OB', 2) + b'\x00\x01',
        element(0x0002, 0x0002, b'UI', CT.encode()),
        element(0x0002, 0x0003, b'UI', sop_instance_uid.encode('latin-1')),
        element(0x0002, 0x0010, b'UI', transfer_syntax.encode()),
        element(0x0002, 0x0012, b'UI', b'1.2.826.0.1.3680043.9.9999'),
    ])
    group_length = struct.pack('<HH2sHL', 0x0002, 0x0000, b'UL', 4, len(meta))
    return b'\x00' * 128 + b'DICM' + group_length + meta + data_set


def data_set_of(path: pathlib.Path) -> bytes:
    raw = path.read_bytes()
    meta = read_file_meta(open(path, 'rb'))
    assert meta is not None
    return raw[meta.data_set_offset:]


def raw_store_rq(uid: str, data_set: bytes, msg_id: int) -> dimse.CStoreRQMessage:
    """A C-STORE-RQ whose Affected SOP Instance UID is ``uid``, byte for byte."""
    rq = dimse.CStoreRQMessage()
    rq.message_id = msg_id
    rq.affected_sop_class_uid = CT
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')     # pydicom warns about the invalid UI value
        rq.affected_sop_instance_uid = uid
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.data_set = data_set
    return rq


def send_raw(assoc, rq) -> dimse.CStoreRSPMessage:
    ctx = assoc.context_for(CT, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    assert ctx.supported_ts == uids.EXPLICIT_VR_LITTLE_ENDIAN
    assoc.send(rq, ctx.id)
    rsp, _ = assoc.receive()
    assert isinstance(rsp, dimse.CStoreRSPMessage), rsp
    assert rsp.message_id_being_responded_to == rq.message_id
    return rsp


def storage_client() -> ae_module.ClientAE:
    scu = ae_module.ClientAE('HOSTILE').add_scu(sopclass.storage_scu, [CT])
    scu.add_scu(sopclass.verification_scu)
    scu.dcm_timeout = TIMEOUT
    return scu


def remote(server, aet: str) -> dict:
    return {'aet': aet, 'address': '127.0.0.1', 'port': server.local_ae.port}


@pytest.fixture
def layout(tmp_path) -> pathlib.Path:
    """``tmp/a/b`` : receivers live two levels down, so '../../x' would land in the walk."""
    deep = tmp_path / 'a' / 'b'
    deep.mkdir(parents=True)
    return deep


@pytest.fixture
def ct_data_set(tmp_path) -> bytes:
    """The data set bytes of a small, valid CT instance (its own UID is valid)."""
    return data_set_of(make_ct_file(tmp_path / 'src.dcm', '1.2.3.999', rows=4, cols=4))


# -- StorageAE -------------------------------------------------------------------------------

def test_storage_ae_refuses_every_hostile_command_uid_and_writes_nothing(
        tmp_path, layout, ct_data_set):
    store = layout / 'store'
    values = hostile_values(tmp_path)
    with ae_module.StorageAE(store, 'STORE_SCP', 0, bind_address='127.0.0.1') as srv:
        srv.dcm_timeout = TIMEOUT
        before = tree(tmp_path)
        with storage_client().request_association(remote(srv, 'STORE_SCP')) as assoc:
            answers = {name: send_raw(assoc, raw_store_rq(uid, ct_data_set, n))
                       for n, (name, uid) in enumerate(values.items(), 1)}
            # The association is still usable after every refusal.
            assert int(assoc.get_scu(VERIFICATION)(99)) == 0
            # A trailing NUL is UI padding (PS3.5 6.2), not part of the UID: accepted.
            padded = send_raw(assoc, raw_store_rq('1.2.3.999\x00', ct_data_set, 100))
    statuses = {name: rsp.status for name, rsp in answers.items()}
    assert statuses == {name: 0xC000 for name in values}
    assert all(rsp.error_comment for rsp in answers.values())
    assert padded.status == 0x0000
    assert changes(before, tree(tmp_path)) == ['a/b/store/1.2.3.999.dcm']
    assert data_set_of(store / '1.2.3.999.dcm') == ct_data_set


def _in_memory_data_set(sop_instance_uid: str) -> bytes:
    """A data set in explicit VR LE naming ``sop_instance_uid`` verbatim."""
    return (element(0x0008, 0x0016, b'UI', CT.encode())
            + element(0x0008, 0x0018, b'UI', sop_instance_uid.encode('latin-1'))
            + element(0x0010, 0x0010, b'PN', b'HOSTILE^PEER'))


def test_storage_ae_refuses_hostile_uids_of_data_sets_held_in_memory(tmp_path, layout):
    # Without store_in_file the data set arrives as bytes and the mixin names the file
    # after the SOP Instance UID inside the data set: that one must be checked too.
    store = layout / 'store'
    values = hostile_values(tmp_path)
    with ae_module.StorageAE(store, 'STORE_SCP', 0, bind_address='127.0.0.1') as srv:
        srv.dcm_timeout = TIMEOUT
        srv.store_in_file.discard(CT)
        before = tree(tmp_path)
        with storage_client().request_association(remote(srv, 'STORE_SCP')) as assoc:
            answers = {name: send_raw(assoc, raw_store_rq('1.2.3.4', _in_memory_data_set(uid),
                                                          n))
                       for n, (name, uid) in enumerate(values.items(), 1)}
            good = send_raw(assoc, raw_store_rq('1.2.3.5', _in_memory_data_set('1.2.3.5'),
                                                100))
    # The data set names another instance than the request (1.2.3.4): 0xA900, data set
    # does not match SOP class (PS3.4 B.2.3); one naming none, 0xC000 (cannot
    # understand). Both before any name is made from either UID.
    assert {name: rsp.status for name, rsp in answers.items()} == {
        name: 0xC000 if name == 'empty' else 0xA900 for name in values}
    assert good.status == 0
    assert changes(before, tree(tmp_path)) == ['a/b/store/1.2.3.5.dcm']


# -- ClientStorageAE receiving the C-STOREs of a C-GET ------------------------------------------

class CraftedGetSCP(ae_module.AE):
    """A C-GET SCP whose hook sends the Part-10 files a test put in ``self.files``."""

    def __init__(self):
        super().__init__('GET_SCP', 0, bind_address='127.0.0.1')
        self.dcm_timeout = TIMEOUT
        self.add_scp(sopclass.qr_get_scp)
        self.add_scu(sopclass.storage_scu, [CT])
        self.files: List[str] = []

    def on_receive_get(self, context, ds):
        return len(self.files), list(self.files)


@pytest.fixture(scope='module')
def get_scp() -> Iterator[CraftedGetSCP]:
    # One server for every case: quitting an AE takes up to half a second.
    with CraftedGetSCP() as srv:
        yield srv


def get_client(storage_dir: pathlib.Path) -> ae_module.ClientStorageAE:
    scu = ae_module.ClientStorageAE(storage_dir, 'GET_SCU')
    scu.dcm_timeout = TIMEOUT
    # Only CT and the GET class are needed; with every storage class the proposal
    # would be longer than the 128 contexts one A-ASSOCIATE-RQ may carry.
    scu.context_def_list.clear()
    scu.update_context_def_list([CT], store_in_file=True)
    scu.add_scu(sopclass.qr_get_scu)
    return scu


def run_get(assoc) -> Tuple[int, object]:
    """Consume one C-GET; returns (C-STOREs that arrived, final status)."""
    query = Dataset()
    query.QueryRetrieveLevel = 'STUDY'
    query.StudyInstanceUID = '1.2.3'
    gen = assoc.get_scu(STUDY_GET)(query, 1)
    arrived = 0
    for _ in range(100):
        try:
            next(gen)
        except StopIteration as stop:
            return arrived, stop.value
        arrived += 1
    raise AssertionError('the C-GET did not end')


# An empty UID never leaves our C-GET SCP (it refuses to send an instance without
# one); the StorageAE tests above cover an empty UID at the receiver.
@pytest.mark.parametrize('name', sorted(set(HOSTILE_UIDS) - {'empty'}))
def test_client_storage_ae_refuses_hostile_uids_from_a_c_get(name, tmp_path, layout,
                                                          ct_data_set, get_scp):
    uid = hostile_values(tmp_path)[name]
    crafted = layout / 'crafted.dcm'
    crafted.write_bytes(part10(uid, ct_data_set))
    good = layout / 'good.dcm'
    good.write_bytes(part10('1.2.3.999', ct_data_set))
    received = layout / 'received'
    get_scp.files = [str(crafted), str(good)]
    scu = get_client(received)
    before = tree(tmp_path)
    with scu.request_association(remote(get_scp, 'GET_SCP'),
                                 sop_classes=[STUDY_GET, CT]) as assoc:
        arrived, final = run_get(assoc)
    # Both C-STOREs reached our receiver (the hostile one was not stopped on the way):
    # the hostile one was refused before the consumer saw it, so only the good one is
    # yielded and the C-GET reports a failed sub-operation.
    assert arrived == 1
    assert int(final) == 0xB000
    assert changes(before, tree(tmp_path)) == ['a/b/received/1.2.3.999.dcm']
    assert data_set_of(received / '1.2.3.999.dcm') == ct_data_set


# -- the qrscp archive: <storage>/<StudyInstanceUID>/<SOPInstanceUID>.dcm ----------------------

@pytest.fixture
def archive(layout):
    storage = layout / 'pacs'
    storage.mkdir()
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    server = qrscp.Archive(str(storage), index, 'ARCHIVE', 0, bind_address='127.0.0.1')
    server.dcm_timeout = TIMEOUT
    with server:
        yield server
    index.close()


def archive_instance(tmp_path: pathlib.Path) -> Dataset:
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'archive-src.dcm', rows=4, cols=4))
    ds.StudyInstanceUID = '1.2.3.1'
    ds.SeriesInstanceUID = '1.2.3.1.1'
    return ds


def _with_hostile(ds: Dataset, keyword: str, value: str) -> Dataset:
    """A copy of ``ds`` with ``keyword`` set to ``value`` (never checked by pydicom)."""
    copy = deepcopy(ds)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        setattr(copy, keyword, value)
    return copy


def _archive_files(archive) -> Dict[str, Tuple[str, int]]:
    # The index database changes on every access (WAL); the stored files are what matter.
    return {path: info for path, info in tree(pathlib.Path(archive.storage_dir)).items()
            if not path.startswith('index.sqlite')}


@pytest.mark.parametrize('keyword', ['SOPInstanceUID', 'StudyInstanceUID',
                                     'SeriesInstanceUID'])
def test_archive_refuses_hostile_uids_in_every_path_component(keyword, tmp_path, layout,
                                                              archive):
    ds = archive_instance(tmp_path)
    values = hostile_values(tmp_path)
    if keyword == 'SOPInstanceUID':
        # Our storage SCU refuses to send a data set without one (the StorageAE tests
        # cover an empty UID at the receiver); an empty Study or Series UID goes out.
        del values['empty']
    scu = storage_client()
    outside = {path: info for path, info in tree(tmp_path).items()
               if not path.startswith('a/b/pacs')}
    files_before = _archive_files(archive)
    with scu.request_association(remote(archive, 'ARCHIVE')) as assoc:
        store = assoc.get_scu(CT)
        statuses = {name: int(store(_with_hostile(ds, keyword, value), n))
                    for n, (name, value) in enumerate(values.items(), 1)}
        stored = int(store(ds, 100))
    assert statuses == {name: 0xC000 for name in values}
    assert stored == 0
    outside_after = {path: info for path, info in tree(tmp_path).items()
                     if not path.startswith('a/b/pacs')}
    assert changes(outside, outside_after) == []
    # The transfer area (made at the first store, empty again) and the one good instance.
    assert changes(files_before, _archive_files(archive)) == [
        filestore.INCOMING, '1.2.3.1', f'1.2.3.1/{ds.SOPInstanceUID}.dcm']
    assert os.listdir(os.path.join(archive.storage_dir, filestore.INCOMING)) == []
    assert archive.index.counts()['IMAGE'] == 1
