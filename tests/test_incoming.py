"""Received data sets (pynetdicom2.incoming): the owner of each one, from its first
fragment to its final name, and the bounds on what a peer can make us hold in memory.

The owners are driven directly (write, check, commit, discard, release) and looked at
on disk; the memory bounds are driven by a raw-socket peer sending never-ending data
sets to a server in its own process, whose peak RSS is read from /proc.
"""

from __future__ import annotations

import errno
import gc
import io
import os
import socket
import struct
import sys
import time
import tracemalloc

import pydicom
import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, incoming, pdu, reassembly, sopclass, sparefiles, uids
from pynetdicom2.exceptions import DIMSEProcessingError, EventHandlingError
from pynetdicom2.services.storage import encode_data_set, read_file_meta
from tests.fakepeer import associate_raw, read_until_closed
from tests.peers import _spawn, make_ct_file, process_output, stop_process

CT = uids.CT_IMAGE_STORAGE
EXPLICIT = uids.EXPLICIT_VR_LITTLE_ENDIAN
CTX = ae_module.PContextDefList(1, CT, EXPLICIT)
MIB = 1024 * 1024


def listing(directory) -> list:
    return sorted(os.listdir(directory))


def data_set_of(path) -> bytes:
    raw = open(path, 'rb').read()
    return raw[read_file_meta(io.BytesIO(raw)).data_set_offset:]


@pytest.fixture
def ct(tmp_path) -> bytes:
    """The data set bytes of a small valid CT instance, SOP Instance UID 1.2.3.4."""
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.4',
                                      rows=8, cols=8))
    return encode_data_set(ds, EXPLICIT)


class Folder(ae_module.FolderStorageMixin):
    """The folder storage without a network."""

    def __init__(self, storage_dir):
        self.storage_dir = str(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)
        self.stored = []

    def instance_stored(self, path, attrs, context):
        self.stored.append((os.path.basename(path), context.sop_class))


# -- the folder owner ----------------------------------------------------------------------

def named_files_only(folder):
    """``folder`` as on a system without unnamed files: each a ``.part`` from the start."""
    folder._spare_files().works = False
    return folder


def test_folder_owner_writes_a_part_file_and_names_it_only_on_commit(tmp_path, ct):
    folder = named_files_only(Folder(tmp_path / 'store'))
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    assert isinstance(owner, incoming.FolderDataSet) and owner.keeps_files
    [part] = listing(folder.storage_dir)
    assert part.startswith('.tmp-') and part.endswith('.part')
    for start in range(0, len(ct), 100):
        owner.write(ct[start:start + 100])
    assert owner.check() is None
    hook_file = owner.for_hook(True)
    assert hook_file.tell() == 0 and pydicom.dcmread(hook_file).SOPInstanceUID == '1.2.3.4'
    assert owner.for_hook(False) == ct
    assert owner.commit(CTX) == os.path.join(folder.storage_dir, '1.2.3.4.dcm')
    owner.release()
    assert listing(folder.storage_dir) == ['1.2.3.4.dcm']
    assert data_set_of(os.path.join(folder.storage_dir, '1.2.3.4.dcm')) == ct
    assert folder.stored == [('1.2.3.4.dcm', CT)]
    meta = pydicom.dcmread(os.path.join(folder.storage_dir, '1.2.3.4.dcm')).file_meta
    assert (meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID,
            meta.TransferSyntaxUID) == (CT, '1.2.3.4', EXPLICIT)


def test_folder_owner_discarded_or_released_uncommitted_leaves_nothing(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    for end in ('discard', 'release'):
        owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
        owner.write(ct[:50])
        getattr(owner, end)()
        getattr(owner, end)()  # twice is harmless
        assert owner.file.closed
    assert listing(folder.storage_dir) == []


@pytest.fixture
def big_ct(tmp_path) -> bytes:
    """The data set bytes of a 1024 x 700 CT (about 1.4 MiB of pixel data)."""
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'big.dcm', sop_instance_uid='1.2.3.5',
                                      rows=1024, cols=700))
    return encode_data_set(ds, EXPLICIT)


# Fragment sizes as peers send them: a 16 KiB PDU's PDV, one byte, a 1 MiB PDU's PDV,
# odd sizes that cross the owner's page and chunk boundaries.
FRAGMENT_SIZES = (16378, 1, 1048570, 4095, 300001, 4097, 16378)


def fragments(data: bytes, sizes=FRAGMENT_SIZES):
    start, n = 0, 0
    while start < len(data):
        size = sizes[n % len(sizes)]
        yield data[start:start + size]
        start, n = start + size, n + 1


def feed(owner, data: bytes, sizes=FRAGMENT_SIZES, runs=None) -> None:
    """Write ``data`` into ``owner`` in fragments of ``sizes``: one ``write`` each, or
    (``runs``, a cycle of run lengths) ``write_run`` of that many at a time, as the
    receive loop hands over the PDUs already received."""
    pieces = [memoryview(fragment) for fragment in fragments(data, sizes)]
    if runs is None:
        for piece in pieces:
            owner.write(piece)
        return
    n = 0
    while pieces:
        count = runs[n % len(runs)]
        owner.write_run(pieces[:count])
        del pieces[:count]
        n += 1


RUNS = (1, 8, 3, 16, 2, 40)


def test_a_stored_instance_leaves_no_buffer_behind_until_the_garbage_collector_runs(
        tmp_path, big_ct):
    # An owner and its file refer to each other, so a stored instance's objects wait for
    # the cyclic collector: what they still hold then must be small, or a busy server's
    # memory grows with every instance between two collections.
    folder = Folder(tmp_path / 'store')
    folder.replace_existing = True  # the same instance 40 times, one file
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(40):
            owner = folder.incoming_data_set(CT, '1.2.3.5', EXPLICIT)
            for fragment in fragments(big_ct, (16378,)):
                owner.write(memoryview(fragment))
            assert owner.check() is None
            owner.commit(CTX)
            owner.release()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    assert listing(folder.storage_dir) == ['1.2.3.5.dcm']
    assert len(folder.stored) == 40
    assert held < 40 * 4096, f'{held} bytes still held by 40 stored instances'


@pytest.mark.parametrize('owner_kind', ['folder', 'temporary'])
@pytest.mark.parametrize('sizes, runs', [(FRAGMENT_SIZES, None), (FRAGMENT_SIZES, RUNS),
                                         ((16378,), RUNS), ((1018, 4095, 1), RUNS)])
def test_fragments_of_any_size_reach_the_file_byte_for_byte(tmp_path, big_ct, owner_kind,
                                                            sizes, runs):
    folder = Folder(tmp_path / 'store')
    if owner_kind == 'folder':
        owner = folder.incoming_data_set(CT, '1.2.3.5', EXPLICIT)
    else:
        owner = incoming.TemporaryDataSet(CT, '1.2.3.5', EXPLICIT)
    feed(owner, big_ct, sizes, runs)
    assert owner.check() is None
    assert owner.for_hook(False) == big_ct
    received = pydicom.dcmread(owner.for_hook(True))
    assert received.SOPInstanceUID == '1.2.3.5' and len(received.PixelData) == 1024 * 700 * 2
    if owner_kind == 'folder':
        path = owner.commit(CTX)
        owner.release()
        assert data_set_of(path) == big_ct
    else:
        owner.release()


class Trickle(io.RawIOBase):
    """A raw file that takes at most 1000 bytes per write, as a raw file may."""

    def __init__(self, path):
        self.inner = io.FileIO(path, 'x+')
        self.name = path

    def writable(self):
        return True

    def readable(self):
        return True

    def seekable(self):
        return True

    def write(self, data):
        return self.inner.write(bytes(data[:1000]))

    def readinto(self, buffer):
        return self.inner.readinto(buffer)

    def seek(self, offset, whence=0):
        return self.inner.seek(offset, whence)

    def close(self):
        self.inner.close()
        super().close()


def test_a_run_the_system_writes_in_part_still_reaches_the_file_whole(
        tmp_path, big_ct, monkeypatch):
    writev = os.writev
    monkeypatch.setattr(incoming.os, 'writev',
                        lambda fd, buffers: writev(fd, [b''.join(buffers)[:5000]]))
    folder = Folder(tmp_path / 'store')
    owner = folder.incoming_data_set(CT, '1.2.3.5', EXPLICIT)
    feed(owner, big_ct, (16378, 5000), RUNS)
    assert owner.check() is None
    path = owner.commit(CTX)
    owner.release()
    assert data_set_of(path) == big_ct


def test_a_file_that_takes_less_than_it_is_given_still_gets_every_byte(tmp_path, big_ct):
    folder = Folder(tmp_path / 'store')
    folder.create_temporary_file = lambda: (Trickle(str(tmp_path / 'store' / 'x.part')),
                                            str(tmp_path / 'store' / 'x.part'))
    owner = folder.incoming_data_set(CT, '1.2.3.5', EXPLICIT)
    for fragment in fragments(big_ct):
        owner.write(fragment)
    assert owner.check() is None
    path = owner.commit(CTX)
    owner.release()
    assert data_set_of(path) == big_ct and listing(folder.storage_dir) == ['1.2.3.5.dcm']


class FullDisk(io.RawIOBase):
    """A file on a full disk: created, but every write fails with ENOSPC."""

    name = 'full.part'

    def writable(self):
        return True

    def write(self, data):
        raise OSError(errno.ENOSPC, 'No space left on device')


def test_a_full_disk_at_the_last_write_is_out_of_resources_and_keeps_nothing(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    folder.create_temporary_file = lambda: (FullDisk(), str(tmp_path / 'store' / 'gone.part'))
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)  # small: gathered, not yet written
    with pytest.raises(OSError):
        owner.write(b'\0' * (300 * 1024))  # over a chunk: written now, and refused
    owner.write(ct)  # a sender's later fragments are taken in all the same
    refusal = owner.check()
    assert refusal == incoming.Refusal(0xA700, 'No space left on device')
    owner.discard()
    assert listing(folder.storage_dir) == []


def test_numbered_names_then_out_of_resources(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    folder.max_iterations = 2
    names = []
    for _ in range(3):
        owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
        owner.write(ct)
        names.append(os.path.basename(owner.commit(CTX)))
        owner.release()
    assert names == ['1.2.3.4.dcm', '1.2.3.4_1.dcm', '1.2.3.4_2.dcm']
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    with pytest.raises(OSError) as info:
        owner.commit(CTX)
    assert info.value.errno == errno.EEXIST
    owner.discard()
    assert listing(folder.storage_dir) == names


def test_replace_existing_keeps_one_file(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    folder.replace_existing = True
    for _ in range(2):
        owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
        owner.write(ct)
        owner.commit(CTX)
        owner.release()
    assert listing(folder.storage_dir) == ['1.2.3.4.dcm']


# -- a file made ahead (sparefiles): unnamed until needed ----------------------------------

needs_spares = pytest.mark.skipif(not sparefiles.SpareFiles().works,
                                  reason='no O_TMPFILE and /proc here: no spares')


class PlainFolder(ae_module.FolderStorageMixin):
    """The folder storage with every step of keeping an instance the library's."""

    def __init__(self, storage_dir):
        self.storage_dir = str(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)


def spared(folder):
    """``folder`` with one spare made, and the temporary names it gives, in order."""
    named = []
    make = folder._temporary_path
    folder._temporary_path = lambda: (named.append(make()), named[-1])[1]
    folder.prepare_temporary_file()
    assert len(folder._spares._spares) == 1
    return named


def kept(folder, data: bytes, uid: str = '1.2.3.4') -> str:
    """Receive ``data`` as instance ``uid`` into ``folder`` and keep it; its final name."""
    owner = folder.incoming_data_set(CT, uid, EXPLICIT)
    feed(owner, data)
    try:
        return owner.commit(CTX)
    finally:
        owner.release()


@needs_spares
def test_a_spare_goes_straight_to_its_final_name_then_to_a_numbered_one(tmp_path, ct):
    folder = PlainFolder(tmp_path / 'store')
    for expected in ('1.2.3.4.dcm', '1.2.3.4_1.dcm'):
        named = spared(folder)
        owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
        feed(owner, ct, sizes=(100,))
        assert owner.path is None and owner.check() is None
        hook_file = owner.for_hook(True)
        assert owner.commit(CTX) == os.path.join(folder.storage_dir, expected)
        owner.release()
        assert named == [] and listing(folder.storage_dir)[-1] == expected  # no .part ever
        # A 0.9.x discard_file looking at the file afterwards finds it by its name.
        assert hook_file.closed and hook_file.name == owner.final_path == owner.path
        assert data_set_of(os.path.join(folder.storage_dir, expected)) == ct


@needs_spares
@pytest.mark.parametrize('hook', ['name', 'dcmread', 'close'])
def test_a_spare_a_hook_looked_up_by_name_or_closed_is_kept_the_usual_way(tmp_path, ct, hook):
    folder = PlainFolder(tmp_path / 'store')
    named = spared(folder)
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    feed(owner, ct)
    assert owner.check() is None
    fp = owner.for_hook(True)
    if hook == 'name':
        assert pydicom.dcmread(fp.name).SOPInstanceUID == '1.2.3.4'
    elif hook == 'dcmread':
        assert pydicom.dcmread(fp).filename == owner.path
    else:
        fp.close()
    assert named == [owner.path] and listing(folder.storage_dir) == [
        os.path.basename(owner.path)]
    owner.commit(CTX)
    owner.release()
    assert listing(folder.storage_dir) == ['1.2.3.4.dcm']
    assert data_set_of(os.path.join(folder.storage_dir, '1.2.3.4.dcm')) == ct


@needs_spares
def test_a_spare_with_steps_of_ones_own_gets_a_temporary_name_for_them(tmp_path, ct):
    folder = Folder(tmp_path / 'store')  # its own instance_stored
    folder.read_tags = ['SOPInstanceUID']
    seen = []
    place = folder.place_instance
    folder.place_instance = lambda temp, final, attrs, context: (
        seen.append((os.path.exists(temp), attrs.SOPInstanceUID)),
        place(temp, final, attrs, context))[1]
    named = spared(folder)
    assert kept(folder, ct).endswith('1.2.3.4.dcm')
    assert len(named) == 1 and seen == [(True, '1.2.3.4')]
    assert folder.stored == [('1.2.3.4.dcm', CT)] and listing(folder.storage_dir) == [
        '1.2.3.4.dcm']


@needs_spares
def test_a_spare_replacing_an_instance_keeps_one_file(tmp_path, ct):
    folder = PlainFolder(tmp_path / 'store')
    folder.replace_existing = True
    (tmp_path / 'store' / '1.2.3.4.dcm').write_bytes(b'old')
    spared(folder)
    kept(folder, ct)
    assert listing(folder.storage_dir) == ['1.2.3.4.dcm']
    assert data_set_of(os.path.join(folder.storage_dir, '1.2.3.4.dcm')) == ct


@needs_spares
def test_a_spare_refused_or_failing_to_be_placed_leaves_nothing(tmp_path, ct):
    folder = PlainFolder(tmp_path / 'store')
    spared(folder)
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    feed(owner, ct)
    owner.discard()  # a failure status
    assert listing(folder.storage_dir) == []
    folder.max_iterations = 0
    (tmp_path / 'store' / '1.2.3.4.dcm').write_bytes(b'theirs')
    spared(folder)
    with pytest.raises(OSError) as info:
        kept(folder, ct)
    assert info.value.errno == errno.EEXIST and listing(folder.storage_dir) == ['1.2.3.4.dcm']
    assert (tmp_path / 'store' / '1.2.3.4.dcm').read_bytes() == b'theirs'


@pytest.mark.parametrize('uid', ['../x', '1.2/3', '', '1' * 65, '1..2'])
def test_a_uid_that_cannot_name_a_file_is_refused_before_any_byte_is_written(tmp_path, uid):
    folder = Folder(tmp_path / 'store')
    owner = folder.incoming_data_set(CT, uid, EXPLICIT)
    owner.write(b'\x00' * 1000)
    refusal = owner.check()
    assert refusal.status == 0xC000 and 'SOP Instance UID' in refusal.comment
    owner.release()
    assert listing(tmp_path) == ['store'] and listing(folder.storage_dir) == []


def test_discard_mode_receives_and_keeps_nothing(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    folder.discard = True
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    assert owner.check() is None and owner.commit(CTX) is None
    owner.release()
    assert listing(folder.storage_dir) == []


def test_a_hook_that_moved_the_file_away_is_respected(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    fp = owner.for_hook(True)
    fp.close()
    os.replace(owner.path, tmp_path / 'mine.dcm')
    assert owner.commit(CTX) is None
    owner.release()
    assert listing(folder.storage_dir) == [] and data_set_of(tmp_path / 'mine.dcm') == ct


def test_instance_stored_failing_leaves_nothing_under_a_final_name(tmp_path, ct):
    class Failing(Folder):
        def instance_stored(self, path, attrs, context):
            raise OSError(errno.EIO, 'index down')

    folder = Failing(tmp_path / 'store')
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    with pytest.raises(OSError):
        owner.commit(CTX)
    owner.discard()
    assert listing(folder.storage_dir) == []


def test_read_tags_give_the_later_steps_their_attributes(tmp_path, ct):
    class Studies(Folder):
        read_tags = ['StudyInstanceUID', 'PatientID']

        def final_path(self, command_uid, attrs):
            self.attrs = attrs
            return os.path.join(self.storage_dir, 'by-patient', attrs.PatientID,
                                f'{command_uid}.dcm')

    folder = Studies(tmp_path / 'store')
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    assert owner.commit(CTX).endswith(os.path.join('by-patient', 'PID0001', '1.2.3.4.dcm'))
    # pydicom adds the character set it needs to read them; nothing else, no pixels.
    assert set(e.keyword for e in folder.attrs) <= {
        'PatientID', 'StudyInstanceUID', 'SpecificCharacterSet'}
    assert folder.attrs.StudyInstanceUID and 'PixelData' not in folder.attrs


# -- checks --------------------------------------------------------------------------------

def test_check_refuses_what_does_not_parse_or_names_another_instance(tmp_path, ct):
    folder = Folder(tmp_path / 'store')
    cases = {
        'cut': (CT, '1.2.3.4', ct[:-10], 0xC000, 'truncated: (7FE0,0010)'),
        'other instance': (CT, '1.2.3.5', ct, 0xA900,
                           "SOP Instance UID 1.2.3.4 in the data set is not the request's"),
        'other class': (uids.MR_IMAGE_STORAGE, '1.2.3.4', ct, 0xA900, 'SOP Class UID'),
    }
    for name, (sop_class, uid, data, status, comment) in cases.items():
        for owner in (folder.incoming_data_set(sop_class, uid, EXPLICIT),
                      incoming.TemporaryDataSet(sop_class, uid, EXPLICIT),
                      incoming.InMemory(sop_class, uid, EXPLICIT, limit=None)):
            owner.write(data)
            refusal = owner.check()
            assert refusal.status == status, (name, owner)
            assert refusal.comment.startswith(comment), (name, refusal)
            owner.discard()
    assert listing(folder.storage_dir) == []


def test_request_uids_padded_with_nul_or_space_still_match(ct):
    owner = incoming.InMemory(CT + '\x00', '1.2.3.4 ', EXPLICIT)
    owner.write(ct)
    assert owner.check() is None


# -- other owners ----------------------------------------------------------------------------

def test_temporary_owner_is_anonymous_and_keeps_nothing(tmp_path, ct):
    owner = incoming.TemporaryDataSet(CT, '1.2.3.4', EXPLICIT)
    assert not owner.keeps_files
    owner.write(ct)
    assert pydicom.dcmread(owner.for_hook(True)).SOPInstanceUID == '1.2.3.4'
    assert owner.commit(CTX) is None
    owner.release()
    assert owner.file.closed


def test_in_memory_owner_stops_at_its_limit_with_efbig(ct):
    owner = incoming.InMemory(CT, '1.2.3.4', EXPLICIT, limit=len(ct))
    owner.write(ct)
    assert owner.for_hook(False) == ct
    small = incoming.InMemory(CT, '1.2.3.4', EXPLICIT, limit=100)
    small.write(ct[:100])
    with pytest.raises(OSError) as info:
        small.write(ct[100:101])
    assert info.value.errno == errno.EFBIG and 'max_memory_store' in info.value.strerror


def test_supplied_file_stays_the_users(tmp_path, ct):
    closed = []

    class User:
        def discard_file(self, fp):
            closed.append(fp)
            fp.close()

    path = tmp_path / 'users.dcm'
    fp = open(path, 'w+b')
    owner = incoming.SuppliedFile(User(), fp, 0, CT, '1.2.3.4', EXPLICIT)
    owner.write(ct[:10])
    assert owner.check() is None           # not ours to read
    assert owner.name == str(path)         # reads through to the file (0.9.x services)
    owner.discard()
    owner.release()
    assert closed == [fp] and path.read_bytes() == ct[:10]


def test_supplied_file_wrapping_ours_lets_our_owner_decide(tmp_path, ct):
    folder = Folder(tmp_path / 'store')

    class Wrapper:
        def __init__(self, inner):
            self.inner = inner

        def write(self, data):
            return self.inner.write(data)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    supplied = incoming.SuppliedFile(None, Wrapper(owner.file), 0, CT, '1.2.3.4', EXPLICIT)
    assert supplied.ours is owner
    supplied.write(ct)
    assert supplied.check() is None
    assert supplied.commit(CTX).endswith('1.2.3.4.dcm')
    supplied.release()
    assert listing(folder.storage_dir) == ['1.2.3.4.dcm']


def test_write_meta_takes_a_dataset_or_a_dict():
    command = Dataset()
    command.AffectedSOPClassUID = CT
    command.AffectedSOPInstanceUID = '1.2.3.4'
    a, b = io.BytesIO(), io.BytesIO()
    incoming.write_meta(a, command, EXPLICIT)
    incoming.write_meta(b, {'AffectedSOPClassUID': CT, 'AffectedSOPInstanceUID': '1.2.3.4'},
                        EXPLICIT)
    assert a.getvalue() == b.getvalue() and ae_module.write_meta is incoming.write_meta


def test_uid_problem_accepts_exactly_digit_components_joined_by_dots():
    """PS3.5 9.1, as a regular expression says it: ASCII digits, dots between
    non-empty components, at most 64 characters; anything else is named."""
    import random
    import re
    form = re.compile(r'[0-9]+(?:\.[0-9]+)*')
    rnd = random.Random(18)
    alphabet = '0123456789.' * 4 + './x \x00\n\u0661\u00b2\uff11-'
    strings = [''.join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 70)))
               for _ in range(20000)]
    strings += ['1', '0.0', '01.002', '1' * 64, '1.' * 32, '.1', '1.', '1..2', '.', '..',
                '\u0661.\u0662', '1.\u00b2', '1.2\n', '1 .2', '1.2.3\x00']
    for uid in strings:
        problem = incoming.uid_problem(uid, 'SOP Instance UID')
        if len(uid) > 64:
            assert problem == "SOP Instance UID longer than 64 characters: " \
                f"{uid[:40] + '...'!r}"
        elif form.fullmatch(uid):
            assert problem is None, uid
        else:
            shown = uid[:40] + ('...' if len(uid) > 40 else '')
            assert problem == f'invalid SOP Instance UID {shown!r}', uid
    assert incoming.uid_problem('') == incoming.uid_problem(None) == 'no UID'
    assert incoming.uid_problem(pydicom.uid.UID('1.2.3')) is None


def test_meta_bytes_are_pydicoms_file_meta_for_every_class_instance_and_syntax():
    """The parts kept per SOP class and transfer syntax never leak into another
    instance's meta: each call, first or repeated, is what pydicom writes."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_file_meta_info

    from pynetdicom2.asceprovider import IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME

    def pydicoms(sop_class, instance, syntax):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = instance
        meta.TransferSyntaxUID = syntax
        meta.ImplementationClassUID = IMPLEMENTATION_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        out = io.BytesIO()
        out.write(b'\x00' * 128 + b'DICM')
        write_file_meta_info(DicomFileLike(out), meta, enforce_standard=True)
        return out.getvalue()

    cases = [(CT, '1.2.3.4', EXPLICIT), (CT, '1.2.3.45', EXPLICIT),
             (uids.MR_IMAGE_STORAGE, '1.2.3.4', EXPLICIT),
             (CT, '1.2.3.4', uids.IMPLICIT_VR_LITTLE_ENDIAN),
             (pydicom.uid.UID(CT), '1.2.' + '3' * 60, pydicom.uid.UID(EXPLICIT))]
    for _ in range(2):
        for sop_class, instance, syntax in cases:
            assert incoming.meta_bytes(sop_class, instance, syntax) == \
                pydicoms(sop_class, instance, syntax), (sop_class, instance, syntax)


# -- one storage path: the library's StorageAE, storescp's and qrscp's -------------------------

def truncated(ct: bytes) -> dict:
    header = (struct.pack('<HH2sH', 0x0008, 0x0016, b'UI', 26) + CT.encode() + b'\x00'
              + struct.pack('<HH2sH', 0x0008, 0x0018, b'UI', 8) + b'1.2.3.4\x00')
    return {
        'pixel data cut': (ct[:-7], 0xC000),
        'sequence never closed': (header + struct.pack('<HH2s2xL', 0x0008, 0x1115, b'SQ',
                                                        0xFFFFFFFF), 0xC000),
        'other instance': (ct.replace(b'1.2.3.4\x00', b'1.2.3.5\x00'), 0xA900),
    }


def folder_server(kind: str, storage) -> tuple:
    """(server, where files land, what else may be in the storage)."""
    from pynetdicom2.apps import qrindex, qrscp, storescp
    if kind == 'StorageAE':
        return ae_module.StorageAE(storage, 'STORE_SCP', 0, bind_address='127.0.0.1'), set()
    if kind == 'storescp':
        return storescp.StorageSCP(str(storage), 'STORE_SCP', 0, bind_address='127.0.0.1'), {
            '.incoming'}
    os.makedirs(storage)
    index = qrindex.Index(str(storage / 'index.sqlite'), str(storage))
    server = qrscp.Archive(str(storage), index, 'STORE_SCP', 0, bind_address='127.0.0.1')
    return server, {'.incoming', 'index.sqlite', 'index.sqlite-wal', 'index.sqlite-shm',
                    'index.sqlite-lock', '.qrscp.lock'}


@pytest.mark.socket
@pytest.mark.parametrize('kind', ['StorageAE', 'storescp', 'qrscp'])
def test_every_folder_storage_refuses_what_does_not_parse_or_match(tmp_path, ct, kind):
    storage = tmp_path / 'storage'
    server, housekeeping = folder_server(kind, storage)
    server.dcm_timeout = 5
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = 5
    answers = {}
    with server:
        with scu.request_association({'aet': 'STORE_SCP', 'address': '127.0.0.1',
                                      'port': server.local_ae.port}) as assoc:
            ctx = assoc.context_for(CT, EXPLICIT)
            for n, (name, (data, _)) in enumerate(truncated(ct).items(), 1):
                rq = dimse.CStoreRQMessage()
                rq.message_id = n
                rq.affected_sop_class_uid = CT
                rq.affected_sop_instance_uid = '1.2.3.4'
                rq.data_set = data
                assoc.send(rq, ctx.id)
                rsp, _ = assoc.receive()
                answers[name] = (rsp.status, rsp.error_comment)
    index = getattr(server, 'index', None)
    if index is not None:
        index.close()
    assert {name: status for name, (status, _) in answers.items()} == {
        name: expected for name, (_, expected) in truncated(ct).items()}
    assert all(comment for _, comment in answers.values())
    leftovers = []
    for root, dirs, files in os.walk(storage):
        leftovers += [os.path.relpath(os.path.join(root, f), storage) for f in files]
    assert [f for f in leftovers if f not in housekeeping] == []


# -- a storage step refusing with a status of its own ----------------------------------------------

@pytest.mark.socket
def test_place_instance_refusing_answers_its_status_and_keeps_nothing(tmp_path, ct):
    class Refusing(ae_module.StorageAE):
        def place_instance(self, temp_path, final_path, attrs, context):
            raise incoming.InstanceRefused(0xC210, 'study 1.2.3 belongs to another patient')

    store_dir = tmp_path / 'store'
    srv = Refusing(store_dir, 'STORE_SCP', 0, bind_address='127.0.0.1')
    srv.dcm_timeout = 5
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = 5
    with srv:
        with scu.request_association({'aet': 'STORE_SCP', 'address': '127.0.0.1',
                                      'port': srv.local_ae.port}) as assoc:
            ctx = assoc.context_for(CT, EXPLICIT)
            rq = dimse.CStoreRQMessage()
            rq.message_id = 3
            rq.affected_sop_class_uid = CT
            rq.affected_sop_instance_uid = '1.2.3.4'
            rq.data_set = ct
            assoc.send(rq, ctx.id)
            rsp, _ = assoc.receive()
    assert rsp.status == 0xC210
    assert rsp.error_comment == 'study 1.2.3 belongs to another patient'
    assert listing(store_dir) == []
    assert isinstance(incoming.InstanceRefused(1, 'x'), EventHandlingError)


# -- bounded memory: every data set not streamed to a file is capped ---------------------------

def test_assembler_refuses_a_data_set_gathered_in_memory_past_its_cap():
    rq = dimse.CFindRQMessage()
    rq.message_id = 1
    rq.affected_sop_class_uid = uids.STUDY_ROOT_FIND_SOP_CLASS
    rq.data_set = b'\x00' * 2
    command = [pdv for p in rq.encode(1, 16384) for pdv in p.data_value_items][:-1]
    assembler = reassembly.MessageAssembler(max_memory_data_set=4096)
    for item in command:
        assert assembler.feed(1, item.data_value[0], item.data_value[1:]) is None
    assembler.feed(1, 0x00, b'\x00' * 4096)
    with pytest.raises(DIMSEProcessingError) as info:
        assembler.feed(1, 0x00, b'\x00')
    assert 'max_memory_data_set' in str(info.value) and '4096' in str(info.value)
    assert assembler.abort() is None


SERVER = r'''
import logging, sys, threading
from pynetdicom2 import ae, sopclass
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
server = ae.AE('BOUNDED', 0, bind_address='127.0.0.1')
server.add_scp(sopclass.verification_scp).add_scp(sopclass.qr_find_scp)
server.add_scp(sopclass.StorageCommitment())
server.dcm_timeout = 10
with server:
    print('PORT', server.local_ae.port, flush=True)
    threading.Event().wait(600)  # stopped by the test, by PID
'''


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmHWM')


def command_pdus(msg) -> bytes:
    """The P-DATA-TF PDUs of ``msg``'s command set alone (its data set never follows)."""
    msg.data_set = b'\x00\x00'
    pdus = [p.encode() for p in msg.encode(1, 16384)]
    return b''.join(pdus[:-1])


def never_ending(port: int, sop_class: str, msg, budget: int) -> int:
    """Associate, send ``msg``'s command, then data fragments that never end, up to
    ``budget`` bytes or until the server gives up; returns the bytes it took."""
    sock = associate_raw(port, sop_class, called='BOUNDED')
    fragment = b'\xAA' * (65536 - 12)
    # One P-DATA-TF PDU of 64 KiB: a PDV whose control header says "data, not last".
    one = pdu.PDataTfPDU([pdu.PresentationDataValueItem(1, b'\x00' + fragment)]).encode()
    batch = one * 16
    sent = 0
    try:
        sock.sendall(command_pdus(msg))
        while sent < budget:
            sock.sendall(batch)
            sent += len(fragment) * 16
    except OSError:
        pass  # the server aborted and closed: what we wanted
    finally:
        rest = read_until_closed(sock, timeout=10)
        sock.close()
    assert sent < budget, 'the server took the whole never-ending data set'
    assert rest == b'' or rest[0] == 0x07, rest[:16]  # A-ABORT, or closed
    return sent


@pytest.mark.socket
def test_never_ending_c_find_and_n_action_data_sets_keep_memory_bounded(tmp_path):
    script = tmp_path / 'server.py'
    script.write_text(SERVER)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    proc = _spawn([sys.executable, str(script)], env=env)
    try:
        port = None
        for _ in range(500):
            text = process_output(proc)
            if 'PORT ' in text:
                port = int(text.split('PORT ')[1].split()[0])
                break
            assert proc.poll() is None, text
            time.sleep(0.02)
        assert port, process_output(proc)
        before = peak_rss(proc.pid)
        find = dimse.CFindRQMessage()
        find.message_id = 1
        find.affected_sop_class_uid = uids.STUDY_ROOT_FIND_SOP_CLASS
        action = dimse.NActionRQMessage()
        action.message_id = 1
        action.requested_sop_class_uid = uids.STORAGE_COMMITMENT_SOP_CLASS
        action.requested_sop_instance_uid = '1.2.840.10008.1.20.1.1'
        action.action_type_id = 1
        taken = 0
        for _ in range(4):
            taken += never_ending(port, uids.STUDY_ROOT_FIND_SOP_CLASS, find, 120 * MIB)
            taken += never_ending(port, uids.STORAGE_COMMITMENT_SOP_CLASS, action, 120 * MIB)
        grown = peak_rss(proc.pid) - before
        # The server still serves the next association.
        client = ae_module.ClientAE('NEXT').add_scu(sopclass.verification_scu)
        client.dcm_timeout = 10
        with client.request_association({'aet': 'BOUNDED', 'address': '127.0.0.1',
                                         'port': port}) as assoc:
            assert int(assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)) == 0
        log = process_output(proc)
    finally:
        stop_process(proc)
    # 8 associations pushed over 100 MiB between them; each was cut at the 16 MiB
    # cap, and the peak grew by about one capped data set, never by what was sent.
    assert taken > 100 * MIB
    print(f'peak RSS grew by {grown / MIB:.1f} MiB for {taken / MIB:.0f} MiB sent')
    assert grown < 48 * MIB, f'peak RSS grew by {grown / MIB:.1f} MiB for {taken / MIB:.0f} MiB'
    assert log.count('(max_memory_data_set)') == 8, log[-3000:]
    assert 'CFindRQMessage' in log and 'NActionRQMessage' in log


def test_a_step_of_ones_own_gets_a_data_set_of_its_own_every_time(tmp_path, ct):
    """With nothing to read (``read_tags`` empty), a user's step still gets a fresh,
    empty data set per instance: what it writes into one never reaches the next."""
    seen = []

    class Noting(Folder):
        def instance_stored(self, path, attrs, context):
            seen.append(len(attrs))
            attrs.PatientID = 'WRITTEN'

    folder = Noting(tmp_path / 'store')
    for uid in ('1.2.3.1', '1.2.3.2'):
        owner = folder.incoming_data_set(CT, uid, EXPLICIT)
        owner.write(ct)
        owner.commit(CTX)
        owner.release()
    assert seen == [0, 0]
    assert listing(folder.storage_dir) == ['1.2.3.1.dcm', '1.2.3.2.dcm']


# -- the check of a data set just written: its first bytes from memory ----------------

def _with_private_value(ct: bytes, size: int) -> bytes:
    """``ct`` with a private OB element of ``size`` bytes before its SOP UIDs, so that
    the UIDs' headers lie past the first 16 KiB the owner keeps in memory."""
    private = struct.pack('<HH2s2xL', 0x0009, 0x1010, b'OB', size) + b'\x5A' * size
    return private + ct


@pytest.mark.parametrize('owner_kind', ['folder', 'temporary'])
@pytest.mark.parametrize('runs', [None, (1, 5, 2)])
def test_the_check_of_a_data_set_in_its_file_says_what_a_read_back_says(
        tmp_path, ct, big_ct, owner_kind, runs):
    """Headers past the bytes kept in memory, a cut, a damaged header after the pixel
    data, a UID past the head: the owner's verdict is the verdict on its file."""
    from pynetdicom2 import dscheck
    late = _with_private_value(ct, 40000)
    damaged = bytearray(big_ct + struct.pack('<HH2sH', 0x0010, 0x0010, b'PN', 8) + b'DOE^')
    variants = {
        'big': big_ct, 'big cut': big_ct[:-3], 'late uids': late,
        'late uids cut in a header': late[:40012 + 30],
        'damaged after pixels': bytes(damaged),
        'bad vr past the head': _with_private_value(ct, 20000)[:20012] + b'\x08\x00\x16\x00'
                                b'u\x01\x04\x001.2\x00',
    }
    folder = Folder(tmp_path / 'store')
    for name, data in variants.items():
        uid = '1.2.3.5' if data[:len(big_ct) - 3] == big_ct[:len(big_ct) - 3] else '1.2.3.4'
        if owner_kind == 'folder':
            owner = folder.incoming_data_set(CT, uid, EXPLICIT)
        else:
            owner = incoming.TemporaryDataSet(CT, uid, EXPLICIT)
        feed(owner, data, (16378,), runs)
        verdict = owner.scan()   # a small one is still all in memory: read there
        assert verdict == dscheck.scan_data_set(data, EXPLICIT), name
        expected = None if verdict.problem is None else incoming.Refusal(0xC000,
                                                                         verdict.problem)
        assert owner.check() == expected, name
        assert owner.scan() == verdict, name   # now from the file (and what memory holds)
        with open(f'/proc/self/fd/{owner._fd}', 'rb') as fp:
            assert dscheck.scan_data_set(fp, EXPLICIT, owner.offset) == verdict, name
        assert owner.for_hook(True).tell() == 0
        owner.discard()
    assert listing(folder.storage_dir) == []


def test_a_file_handed_out_and_written_by_another_is_read_back_whole(tmp_path, ct):
    """A 0.9.x ``get_file`` override that writes into the library's file itself:
    the check reads the file as it is, not what the owner wrote."""
    for data, expected in ((ct, None), (ct[:-10], 0xC000)):
        owner = incoming.TemporaryDataSet(CT, '1.2.3.4', EXPLICIT)
        owner.write(b'')   # created, the file meta gathered
        fp = owner.file    # written out and handed over
        fp.write(data)
        refusal = owner.check()
        assert (refusal and refusal.status) == expected
        owner.release()


def test_a_data_set_is_walked_once_whether_checked_in_memory_or_early(
        tmp_path, ct, big_ct, monkeypatch):
    """A small data set, still all in memory when checked, is walked there and not
    again when it reaches its file; a large one has its head walked once, early."""
    from pynetdicom2 import dscheck
    walks = []
    real = dscheck.walk_prefix
    monkeypatch.setattr(dscheck, 'walk_prefix', lambda *a: walks.append(a) or real(*a))
    folder = Folder(tmp_path / 'store')
    for data, early_walks in ((ct, 0), (big_ct, 1)):
        walks.clear()
        owner = folder.incoming_data_set(CT, '1.2.3.4' if data is ct else '1.2.3.5', EXPLICIT)
        feed(owner, data, (16378,), None)
        assert owner.check() is None
        assert len(walks) == early_walks
        owner.commit(CTX)
        owner.release()
    assert listing(folder.storage_dir) == ['1.2.3.4.dcm', '1.2.3.5.dcm']
