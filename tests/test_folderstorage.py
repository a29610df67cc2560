"""The folder storage (pynetdicom2.folderstorage): how a complete instance gets its
final name, and what happens when its temporary file is not where it was put.

Driven without a network through the owner the storage makes; the files are looked at
on disk. Most of the storage's behaviour is tested in test_incoming.py, with its owner.
"""

from __future__ import annotations

import os

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import uids
from pynetdicom2.services.storage import encode_data_set
from tests.peers import make_ct_file

CT = uids.CT_IMAGE_STORAGE
EXPLICIT = uids.EXPLICIT_VR_LITTLE_ENDIAN
CTX = ae_module.PContextDefList(1, CT, EXPLICIT)


@pytest.fixture
def ct(tmp_path) -> bytes:
    ds = pydicom.dcmread(make_ct_file(tmp_path / 'ct.dcm', sop_instance_uid='1.2.3.4',
                                      rows=8, cols=8))
    return encode_data_set(ds, EXPLICIT)


class Plain(ae_module.FolderStorageMixin):
    """The folder storage with every step the library's (as StorageAE serves)."""

    def __init__(self, storage_dir):
        self.storage_dir = str(storage_dir)
        os.makedirs(self.storage_dir, exist_ok=True)


class Noting(Plain):
    stored = ()

    def instance_stored(self, path, attrs, context):
        self.stored += (os.path.basename(path),)


@pytest.mark.parametrize('storage', [Plain, Noting])
def test_a_hook_that_moved_the_file_away_keeps_it_and_nothing_is_named(tmp_path, ct, storage):
    folder = storage(tmp_path / 'store')
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    assert owner.check() is None
    fp = owner.for_hook(True)
    fp.close()
    os.replace(owner.path, tmp_path / 'mine.dcm')   # what a 0.9.x hook may do
    assert owner.commit(CTX) is None and owner.committed
    owner.release()
    assert os.listdir(folder.storage_dir) == []
    assert pydicom.dcmread(tmp_path / 'mine.dcm').SOPInstanceUID == '1.2.3.4'
    assert folder.stored == () if storage is Noting else True


@pytest.mark.parametrize('unnamed', [True, False])
def test_a_missing_final_folder_fails_the_store_and_keeps_nothing(tmp_path, ct, unnamed):
    """A FileNotFoundError that is not the temporary file's absence is the disk's
    failure (0xA700 above), not a file moved away."""
    folder = Plain(tmp_path / 'store')
    folder._spare_files().works = unnamed and folder._spare_files().works
    owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
    owner.write(ct)
    assert owner.check() is None
    folder.storage_dir = str(tmp_path / 'gone')   # final names point nowhere now
    with pytest.raises(FileNotFoundError):
        owner.commit(CTX)
    assert not owner.committed and (owner.path is None or os.path.exists(owner.path))
    owner.discard()
    assert os.listdir(tmp_path / 'store') == [] and not os.path.exists(tmp_path / 'gone')


@pytest.mark.parametrize('storage', [Plain, Noting])
def test_the_plain_and_the_users_steps_store_alike(tmp_path, ct, storage):
    folder = storage(tmp_path / 'store')
    for expected in ('1.2.3.4.dcm', '1.2.3.4_1.dcm'):
        owner = folder.incoming_data_set(CT, '1.2.3.4', EXPLICIT)
        owner.write(ct)
        assert owner.check() is None
        assert owner.commit(CTX) == os.path.join(folder.storage_dir, expected)
        owner.release()
    assert sorted(os.listdir(folder.storage_dir)) == ['1.2.3.4.dcm', '1.2.3.4_1.dcm']
    if storage is Noting:
        assert folder.stored == ('1.2.3.4.dcm', '1.2.3.4_1.dcm')
