"""Differential tests of storage: ``storage_scu`` and ``commands.store`` against a
``StorageAE``, a ``StorageAE`` subclass deciding each status, and storage commitment
between two 0.9.8-style AEs; every (SCU, SCP) pair of the released 0.9.8 and ours,
comparing statuses, the hooks' calls and the files on disk, byte for byte."""

from __future__ import annotations

import pytest

from tests import peers
from tests.compat import harness
from tests.compat.harness import ORIG, OURS, PAIRS, ct_with, plain, scp_story

SUCCESS = {'code': 0x0000, 'type': 'Success'}


def source_files(paths) -> dict:
    """What each source file should become on disk: ``<SOPInstanceUID>.dcm`` with the
    same class, instance, transfer syntax and data set bytes."""
    return {obs['sop_instance'] + '.dcm': obs for obs in map(harness.file_obs, paths)}


# ---------------------------------------------------------------- StorageAE

@pytest.fixture(scope='module')
def store(ct_files, tmp_path_factory):
    files = ['--files', *map(str, ct_files)]
    return harness.run_pairs('store', PAIRS, scu_args=lambda scu, scp: files,
                             scp_dir=tmp_path_factory.mktemp('store') / 'scp')


def test_our_storage_scu_stores_what_0_9_8_stores(store):
    for scp in (ORIG, OURS):
        ours, orig = store[(OURS, scp)], store[(ORIG, scp)]
        assert plain(ours.scu) == plain(orig.scu), scp
        assert ours.files == orig.files, scp


def test_a_storage_ae_keeps_every_instance_byte_for_byte(store, ct_files):
    by_path, as_dataset, by_command = (source_files([path]) for path in ct_files)
    (first_name, first), = by_path.items()
    (dataset_name, dataset), = as_dataset.items()
    for pair, outcome in store.items():
        files = outcome.files
        # Sent by path: the data set bytes as in the source file; sent again: the
        # _1 suffix (FolderStorageMixin).
        assert {k: files[k] for k in (first_name, *by_command)} == {**by_path, **by_command}
        assert files[first_name.replace('.dcm', '_1.dcm')] == first, pair
        # Sent as a pydicom Dataset: encoded by the SCU, the same bytes for every pair.
        assert harness.without(files[dataset_name], 'data_set_sha256') == \
            harness.without(dataset, 'data_set_sha256'), pair
        assert len(files) == 4 and all(f['dicm'] == 'DICM' for f in files.values()), pair
        assert files == store[(ORIG, ORIG)].files, pair


def test_a_storage_ae_answers_success_where_0_9_8_answered_elements_discarded(store):
    for scu in (ORIG, OURS):
        ours, orig = plain(store[(scu, OURS)].scu), plain(store[(scu, ORIG)].scu)
        # 0.9.8's StorageAE kept every element of the file yet answered 0xB006
        # ("Elements Discarded": PS3.4 B.2.3 says some were not stored), because it
        # left the AEBase default hook in place. Ours says what happened: Success.
        assert ours == {'path': SUCCESS, 'dataset': SUCCESS, 'same path again': SUCCESS,
                        'commands.store': {'value': SUCCESS}}, scu
        assert orig['path'] == {'code': 0xB006, 'type': 'Warning'}


# ---------------------------------------------------------------- a subclass's hook

@pytest.fixture(scope='module')
def hooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp('hooks-src')
    sources = [ct_with(folder / f'{pid.lower()}.dcm', pid)
               for pid in ('KEEP', 'REFUSE', 'HANDLER_ERROR')]
    files = ['--files', *map(str, sources)]
    runs = harness.run_pairs('store_hooks', PAIRS, scu_args=lambda scu, scp: files,
                             scp_dir=tmp_path_factory.mktemp('hooks') / 'scp')
    return runs, sources


def test_a_storage_ae_subclass_decides_each_status_as_in_0_9_8(hooks):
    runs, _ = hooks
    for pair, outcome in runs.items():
        assert plain(outcome.scu) == {
            'keep.dcm': SUCCESS,
            'refuse.dcm': {'code': 0xA700, 'type': 'Failure'},
            'handler_error.dcm': {'code': 0xC000, 'type': 'Failure'}}, pair
        assert [e['patient_id'] for e in outcome.scp('store')] == [
            'KEEP', 'REFUSE', 'HANDLER_ERROR'], pair
        assert scp_story(outcome) == scp_story(runs[(ORIG, ORIG)]), pair


def test_a_storage_ae_subclass_keeps_only_what_its_hook_accepted(hooks):
    runs, sources = hooks
    keep, refuse, broken = (source_files([path]) for path in sources)
    for scu in (ORIG, OURS):
        # The hook only decides the status; a Success keeps the file as 0.9.8 did.
        assert runs[(scu, OURS)].files == keep, scu
        # 0.9.8 wrote the file before asking the hook and kept it whatever the hook
        # answered, refusals included: an SCP that says 0xA700 or 0xC000 must not
        # keep the instance (API.md §2).
        assert runs[(scu, ORIG)].files == {**keep, **refuse, **broken}, scu


# ---------------------------------------------------------------- storage commitment

@pytest.fixture(scope='module')
def commitment():
    runs = {}
    for pair in PAIRS:
        # The requester takes the report on a port of its own, told to both sides.
        port = ['--dest-port', str(peers.free_port())]
        runs.update(harness.run_pairs('commitment', [pair], scp_args=port,
                                      scu_args=lambda scu, scp: port))
    return runs


def test_storage_commitment_reports_on_a_new_association_for_every_pair(commitment):
    for pair, outcome in commitment.items():
        seen = plain(outcome.scu)
        assert seen['n-action'] == {'value': SUCCESS}, pair
        assert seen['report arrived'] is True, pair
        assert seen['reports'] == [{
            'transaction_uid': '1.2.3.777',
            'success': [['1.2.840.10008.5.1.4.1.1.2', '1.2.3.1']],
            'failure': [['1.2.840.10008.5.1.4.1.1.2', '1.2.3.99', 0x0112]]}], pair
        assert scp_story(outcome) == scp_story(commitment[(ORIG, ORIG)]), pair
        assert outcome.scp('commitment request') == [{
            'remote_aet': 'COMMIT_SCU',
            'uids': [['1.2.840.10008.5.1.4.1.1.2', '1.2.3.1'],
                     ['1.2.840.10008.5.1.4.1.1.2', '1.2.3.99']]}], pair
