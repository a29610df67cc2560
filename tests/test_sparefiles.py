"""Files made ahead of need (pynetdicom2.sparefiles) and the folder storage taking them."""

from __future__ import annotations

import errno
import gc
import os

import pytest

from pynetdicom2 import sparefiles
from pynetdicom2.ae import FolderStorageMixin
from pynetdicom2.sparefiles import SpareFiles
from tests.peers import receiving_files

pytestmark = pytest.mark.skipif(
    not SpareFiles().works, reason='no O_TMPFILE and /proc here: files are made as before')


def open_descriptors() -> int:
    return len(os.listdir('/proc/self/fd'))


def names(*paths):
    """A ``new_path`` giving ``paths`` in turn."""
    given = iter(paths)
    return lambda: str(next(given))


def test_a_spare_stays_unnamed_until_its_name_is_asked_for(tmp_path):
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    assert os.listdir(tmp_path) == []
    fp = spares.take(str(tmp_path), names(tmp_path / 'a.part'))
    with fp:
        fp.write(b'DICM')
        fp.seek(0)
        assert fp.read() == b'DICM' and fp.path is None and os.listdir(tmp_path) == []
        assert fp.name == str(tmp_path / 'a.part') == fp.path
        assert os.listdir(tmp_path) == ['a.part'] and fp.name == fp.path  # named once
    assert (tmp_path / 'a.part').read_bytes() == b'DICM'
    assert spares.take(str(tmp_path), names(tmp_path / 'b.part')) is None  # none left


def test_a_spare_discarded_or_dropped_without_a_name_vanishes(tmp_path):
    spares = SpareFiles()
    before = open_descriptors()
    for end in ('discard', 'drop'):
        spares.prepare(str(tmp_path))
        fp = spares.take(str(tmp_path), names())
        fp.write(b'never kept')
        if end == 'discard':
            fp.discard()
        del fp
        gc.collect()
        assert os.listdir(tmp_path) == [] and open_descriptors() == before


def test_a_spare_closed_without_a_name_is_named_first(tmp_path):
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    fp = spares.take(str(tmp_path), names(tmp_path / 'a.part'))
    fp.write(b'kept')
    fp.close()  # a hook closing the file it was handed loses nothing
    fp.close()
    assert fp.path == str(tmp_path / 'a.part') and (tmp_path / 'a.part').read_bytes() == b'kept'


def test_a_spare_linked_to_its_final_name_gets_no_other(tmp_path):
    (tmp_path / 'taken.dcm').write_bytes(b'theirs')
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    with spares.take(str(tmp_path), names()) as fp:
        fp.write(b'ours')
        with pytest.raises(FileExistsError):
            fp.link(str(tmp_path / 'taken.dcm'))
        fp.link(str(tmp_path / 'free.dcm'))
    assert sorted(os.listdir(tmp_path)) == ['free.dcm', 'taken.dcm']
    assert (tmp_path / 'free.dcm').read_bytes() == b'ours'
    assert (tmp_path / 'taken.dcm').read_bytes() == b'theirs'


def test_a_temporary_name_taken_is_passed_over(tmp_path):
    (tmp_path / 'a.part').write_bytes(b'theirs')
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    with spares.take(str(tmp_path), names(tmp_path / 'a.part', tmp_path / 'b.part')) as fp:
        assert fp.name == str(tmp_path / 'b.part')
    assert (tmp_path / 'a.part').read_bytes() == b'theirs'


def test_a_spare_of_another_folder_is_dropped(tmp_path):
    (tmp_path / 'old').mkdir()
    spares = SpareFiles()
    before = open_descriptors()
    spares.prepare(str(tmp_path / 'old'))
    assert spares.take(str(tmp_path), names()) is None
    assert open_descriptors() == before and os.listdir(tmp_path / 'old') == []


def test_a_file_system_without_unnamed_files_gets_none(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EOPNOTSUPP, 'Operation not supported')
    spares = SpareFiles()
    monkeypatch.setattr(sparefiles.os, 'open', refuse)
    spares.prepare(str(tmp_path))
    assert not spares.works and spares.take(str(tmp_path), names()) is None


def test_without_a_proc_link_to_follow_no_spare_is_made(tmp_path, monkeypatch):
    def no_proc(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, 'No such file or directory')
    spares = SpareFiles()
    before = open_descriptors()
    monkeypatch.setattr(sparefiles.os, 'link', no_proc)
    spares.prepare(str(tmp_path))
    assert not spares.works and open_descriptors() == before
    assert spares.take(str(tmp_path), names()) is None and os.listdir(tmp_path) == []


def test_naming_is_tried_once_per_folder_and_leaves_nothing(tmp_path, monkeypatch):
    spares = SpareFiles()
    links = []
    link = sparefiles.os.link
    monkeypatch.setattr(sparefiles.os, 'link', lambda *a, **k: (links.append(a), link(*a, **k)))
    spares.prepare(str(tmp_path))
    spares.prepare(str(tmp_path))
    assert len(links) == 1 and os.listdir(tmp_path) == []
    with spares.take(str(tmp_path), names(tmp_path / 'a.part')) as fp:
        assert fp.name.endswith('a.part')  # the probe's link spoiled no spare


@pytest.mark.socket  # a child process
@pytest.mark.skipif(not hasattr(os, 'fork'), reason='no fork')
def test_a_forked_child_never_writes_into_its_parents_spares(tmp_path):
    spares = SpareFiles()
    spares.prepare(str(tmp_path))
    pid = os.fork()
    if pid == 0:  # the child: its copy of the spare is closed
        code = 0 if spares.take(str(tmp_path), names(tmp_path / 'child.part')) is None else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and os.listdir(tmp_path) == []
    with spares.take(str(tmp_path), names(tmp_path / 'parent.part')) as fp:
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
    fp, path = folder.incoming_file()
    with fp:
        assert fp.fileno() == spare and path is None and os.listdir(where) == []
        name = fp.name  # a hook asking for it: a temporary name in the incoming folder
        assert os.listdir(where) == [os.path.basename(name)]
        assert name.endswith('.part') and os.path.dirname(name) == where.rstrip(os.sep)
        assert os.path.basename(name).startswith(folder.temporary_prefix)
    fp, path = folder.incoming_file()  # none left: made now, unnamed as well
    with fp:
        assert path is None and os.listdir(where) == [os.path.basename(name)]
        assert fp.name.endswith('.part') and len(os.listdir(where)) == 2


def test_a_storage_with_its_own_temporary_files_gets_them_and_no_unnamed_one(tmp_path):
    folder = Folder(tmp_path)
    made = []
    folder.create_temporary_file = lambda: made.append(1) or (
        open(tmp_path / 'mine.part', 'w+b'), str(tmp_path / 'mine.part'))
    fp, path = folder.incoming_file()
    with fp:
        assert made == [1] and path == str(tmp_path / 'mine.part') == fp.name


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
    fp, path = folder.incoming_file()
    with fp:
        assert not folder._spares.works and os.listdir(tmp_path) == [os.path.basename(path)]


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
        assert receiving_files(store_dir) == 1  # made after the last response
    assert receiving_files(store_dir) == 0
