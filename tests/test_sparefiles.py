"""Files made ahead of need (pynetdicom2.sparefiles) and the folder storage taking them."""

from __future__ import annotations

import errno
import os

import pytest

from pynetdicom2 import sparefiles
from pynetdicom2.ae import FolderStorageMixin
from pynetdicom2.sparefiles import SpareFiles

pytestmark = pytest.mark.skipif(
    not SpareFiles().works, reason='no O_TMPFILE and /proc here: files are made as before')


def open_descriptors() -> int:
    return len(os.listdir('/proc/self/fd'))


def test_a_spare_is_invisible_until_taken_then_named_and_open(tmp_path):
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    assert os.listdir(tmp_path) == []
    fp = spares.take(str(tmp_path), str(tmp_path / 'a.part'))
    with fp:
        assert fp.name == str(tmp_path / 'a.part') and os.listdir(tmp_path) == ['a.part']
        fp.write(b'DICM')
        fp.seek(0)
        assert fp.read() == b'DICM'
    assert (tmp_path / 'a.part').read_bytes() == b'DICM'
    assert spares.take(str(tmp_path), str(tmp_path / 'b.part')) is None  # none left


def test_at_most_keep_spares_and_close_lets_them_go(tmp_path):
    before = open_descriptors()
    spares = SpareFiles(keep=2)
    for _ in range(5):
        spares.prepare(str(tmp_path))
    assert open_descriptors() == before + 2
    spares.close()
    assert open_descriptors() == before and os.listdir(tmp_path) == []


def test_a_spare_of_another_folder_is_dropped(tmp_path):
    (tmp_path / 'old').mkdir()
    spares = SpareFiles()
    before = open_descriptors()
    spares.prepare(str(tmp_path / 'old'))
    assert spares.take(str(tmp_path), str(tmp_path / 'a.part')) is None
    assert open_descriptors() == before and os.listdir(tmp_path / 'old') == []


def test_a_name_taken_keeps_the_spare_for_the_next(tmp_path):
    (tmp_path / 'a.part').write_bytes(b'theirs')
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    with pytest.raises(FileExistsError):
        spares.take(str(tmp_path), str(tmp_path / 'a.part'))
    assert (tmp_path / 'a.part').read_bytes() == b'theirs'
    with spares.take(str(tmp_path), str(tmp_path / 'b.part')) as fp:
        assert fp.name.endswith('b.part')


def test_a_file_system_without_unnamed_files_gets_none(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EOPNOTSUPP, 'Operation not supported')
    spares = SpareFiles()
    monkeypatch.setattr(sparefiles.os, 'open', refuse)
    spares.prepare(str(tmp_path))
    assert not spares.works and spares.take(str(tmp_path), str(tmp_path / 'a')) is None


def test_no_proc_link_to_follow_closes_the_spare_and_stops(tmp_path, monkeypatch):
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    before = open_descriptors()

    def no_proc(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, 'No such file or directory')
    monkeypatch.setattr(sparefiles.os, 'link', no_proc)
    assert spares.take(str(tmp_path), str(tmp_path / 'a.part')) is None
    assert not spares.works and open_descriptors() == before - 1
    spares.prepare(str(tmp_path))
    assert open_descriptors() == before - 1


@pytest.mark.socket  # a child process
@pytest.mark.skipif(not hasattr(os, 'fork'), reason='no fork')
def test_a_forked_child_never_writes_into_its_parents_spares(tmp_path):
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    pid = os.fork()
    if pid == 0:  # the child: its copy of the spare is closed
        code = 0 if spares.take(str(tmp_path), str(tmp_path / 'child.part')) is None else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and os.listdir(tmp_path) == []
    with spares.take(str(tmp_path), str(tmp_path / 'parent.part')) as fp:
        assert fp.name.endswith('parent.part')


class Folder(FolderStorageMixin):
    def __init__(self, path):
        self.storage_dir = str(path)


@pytest.mark.parametrize('incoming_folder', ['', '.incoming'])
def test_the_folder_storage_takes_what_it_prepared(tmp_path, incoming_folder):
    folder = Folder(tmp_path)
    folder.incoming_folder = incoming_folder
    where = os.path.join(str(tmp_path), incoming_folder)
    os.makedirs(where, exist_ok=True)
    folder.prepare_temporary_file()
    assert os.listdir(where) == []
    spare = folder._spares._spares[0][0]
    fp, path = folder.create_temporary_file()
    with fp:
        assert fp.fileno() == spare and fp.name == path
        assert os.listdir(where) == [os.path.basename(path)]
        assert path.endswith('.part') and os.path.dirname(path) == where.rstrip(os.sep)


def test_a_storage_with_its_own_temporary_files_or_discarding_prepares_none(tmp_path):
    before = open_descriptors()
    for setup in (lambda f: setattr(f, 'discard', True),
                  lambda f: setattr(f, 'create_temporary_file', lambda: None)):
        folder = Folder(tmp_path)
        setup(folder)
        folder.prepare_temporary_file()
    assert open_descriptors() == before and '_spares' not in folder.__dict__


def test_no_file_is_made_ahead_while_several_associations_are_served(tmp_path):
    before = open_descriptors()
    folder = Folder(tmp_path)
    folder.active_associations = 2   # as AE counts them
    folder.prepare_temporary_file()
    assert open_descriptors() == before
    folder.active_associations = 1
    folder.prepare_temporary_file()
    assert open_descriptors() == before + 1
    folder.quit()
    assert open_descriptors() == before


def test_without_unnamed_files_the_storage_creates_its_files_as_before(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EISDIR, 'Is a directory')  # what old kernels answer
    monkeypatch.setattr(sparefiles.os, 'open', refuse)
    folder = Folder(tmp_path)
    folder.prepare_temporary_file()
    fp, path = folder.create_temporary_file()
    with fp:
        assert not folder._spares.works and os.listdir(tmp_path) == [os.path.basename(path)]


def unnamed_files_in(folder) -> int:
    """Descriptors of this process open on unnamed files of ``folder`` (spares)."""
    count = 0
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if target.startswith(str(folder)) and target.endswith('(deleted)'):
            count += 1
    return count


@pytest.mark.socket
def test_a_storage_server_stores_through_spares_and_closes_them_when_it_quits(tmp_path):
    from tests.peers import make_ct_file
    from tests.test_storage import make_server, store
    sources = [make_ct_file(tmp_path / f'{n}.dcm', sop_instance_uid=f'1.2.3.{n}')
               for n in range(3)]
    store_dir = tmp_path / 'store'
    with make_server(store_dir) as server:
        assert [int(s) for s in store(server, *map(str, sources))] == [0, 0, 0]
        # Exactly the instances, none of the files made ahead.
        assert sorted(os.listdir(store_dir)) == ['1.2.3.0.dcm', '1.2.3.1.dcm', '1.2.3.2.dcm']
        assert unnamed_files_in(store_dir) == 1  # made after the last response
    assert unnamed_files_in(store_dir) == 0
