"""Our command-line tools against DCMTK's: echoscu, storescu (200 files over one
association), storescp, and qrscp queried and retrieved from by DCMTK findscu (every
level of both roots), movescu (to a DCMTK storescp) and getscu.
"""

from __future__ import annotations

import pathlib

import pydicom
import pytest

from tests import peers
from tests.peers import dcmtk, describe, make_ct_file, run_tool, start_dcmtk_scp
from tests.test_apps import (
    instance_uids, make_archive_files, our_server, run_app, study_uids, uid)

DCMTK_TIMEOUTS = ['-to', '10', '-ta', '10', '-td', '10']


@pytest.fixture
def two_hundred_files(tmp_path) -> list:
    """200 small CT files in 4 nested folders (the directory is ``tmp_path / 'src'``)."""
    paths = []
    for folder in range(4):
        directory = tmp_path / 'src' / f'part{folder}' / 'deeper'
        directory.mkdir(parents=True)
        for n in range(50):
            paths.append(make_ct_file(directory / f'ct{n:02d}.dcm', rows=16, cols=16))
    return paths


def pixel_data_by_uid(paths) -> dict:
    found = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        found[ds.SOPInstanceUID] = ds.PixelData
    return found


# -- verification -------------------------------------------------------------------

def test_our_echoscu_to_dcmtk_storescp_and_a_refusal_in_words():
    with start_dcmtk_scp('storescp', ['--ignore']) as (proc, port):
        result = run_app('echoscu', '127.0.0.1', port)
    assert result.returncode == 0, describe(result)
    assert result.stdout.strip().endswith('(0x0000) Success: Success')
    with start_dcmtk_scp('storescp', ['--refuse']) as (proc, port):
        refused = run_app('echoscu', '127.0.0.1', port)
    assert refused.returncode == 3, describe(refused)
    assert 'association rejected by ANY-SCP@127.0.0.1' in refused.stderr
    assert 'result 1 (rejected-permanent)' in refused.stderr


def test_dcmtk_echoscu_to_our_storescp(tmp_path):
    with our_server('storescp', '-od', tmp_path) as (proc, port):
        result = run_tool([dcmtk('echoscu'), *DCMTK_TIMEOUTS, '-v', '127.0.0.1', str(port)])
    assert result.returncode == 0, describe(result)
    assert 'Received Echo Response (Success)' in result.stderr


def test_tls_both_ways_with_dcmtk(tmp_path, pki):
    with our_server('storescp', '-od', tmp_path, '+tls', pki / 'server.key',
                    pki / 'server.pem', '+cf', pki / 'ca.pem') as (proc, port):
        theirs = run_tool([dcmtk('echoscu'), *DCMTK_TIMEOUTS, '-v', '+tls',
                           str(pki / 'client.key'), str(pki / 'client.pem'),
                           '+cf', str(pki / 'ca.pem'), '127.0.0.1', str(port)])
    assert theirs.returncode == 0, describe(theirs)
    assert 'Received Echo Response (Success)' in theirs.stderr
    with start_dcmtk_scp('storescp', ['--ignore', '+tls', str(pki / 'server.key'),
                                      str(pki / 'server.pem'), '+cf', str(pki / 'ca.pem')]
                         ) as (proc, port):
        ours = run_app('echoscu', '+tls', pki / 'client.key', pki / 'client.pem',
                       '+cf', pki / 'ca.pem', '127.0.0.1', port)
    assert ours.returncode == 0, describe(ours) + peers.process_output(proc)


# -- storage --------------------------------------------------------------------------

def test_storescu_sends_a_directory_of_200_files_to_dcmtk_storescp_on_one_association(
        tmp_path, two_hundred_files):
    out = tmp_path / 'out'
    out.mkdir()
    with start_dcmtk_scp('storescp', ['-v', '-od', str(out)]) as (proc, port):
        result = run_app('storescu', '127.0.0.1', port, tmp_path / 'src', timeout=60)
        log = peers.process_output(proc)
    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith('sent 200 of 200 instances')
    assert result.stderr == ''  # no progress bar and no warning off a terminal
    assert log.count('Association Received') == 1, log
    received = sorted(out.iterdir())
    assert len(received) == 200
    assert pixel_data_by_uid(received) == pixel_data_by_uid(two_hundred_files)


def test_storescu_sends_200_files_to_our_storescp(tmp_path, two_hundred_files):
    out = tmp_path / 'out'
    with our_server('storescp', '-od', out) as (proc, port):
        result = run_app('storescu', '127.0.0.1', port, tmp_path / 'src', timeout=60)
    assert result.returncode == 0, describe(result)
    expected = pixel_data_by_uid(two_hundred_files)
    received = sorted(out.glob('*.dcm'))
    assert sorted(p.name for p in received) == sorted(f'{u}.dcm' for u in expected)
    assert pixel_data_by_uid(received) == expected


def test_dcmtk_storescu_to_our_storescp_with_study_folders(tmp_path):
    make_archive_files(tmp_path / 'src')
    with our_server('storescp', '-od', tmp_path / 'out', '--study-folders') as (proc, port):
        result = run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '+sd', '127.0.0.1', str(port),
                           str(tmp_path / 'src')])
    assert result.returncode == 0, describe(result)
    stored = sorted(p.relative_to(tmp_path / 'out').as_posix()
                    for p in (tmp_path / 'out').glob('*/*.dcm'))
    assert stored == sorted([f'{uid(1, 1)}/{u}.dcm' for u in instance_uids(1, 2, 3)]
                            + [f'{uid(1, 2)}/{uid(3, 4)}.dcm', f'{uid(1, 3)}/{uid(3, 5)}.dcm']
                            + [f'{uid(1, 4)}/{u}.dcm' for u in instance_uids(6, 7)])


def test_a_dcmtk_storescu_command_line_works_with_ours_and_rsp_needs_a_confirmation(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm', rows=16, cols=16)
    out = tmp_path / 'out'
    out.mkdir()
    with start_dcmtk_scp('storescp', ['-v', '-od', str(out)]) as (proc, port):
        # Options as users type them for DCMTK's storescu.
        typed = run_app('storescu', '-nh', '-ll', 'warn', '--repeat', '2', '--abort',
                        '--max-send-pdu', '16384', '-usr', 'alice', '-aet', 'MODALITY',
                        '-aec', 'STORESCP', '127.0.0.1', port, ct)
        # DCMTK's storescp does not answer user identity negotiation: with -rsp that
        # is a refusal of the identity (PS3.7 D.3.3.7.2), said in one line.
        confirmed = run_app('storescu', '-usr', 'alice', '-rsp', '127.0.0.1', port, ct)
        log = peers.process_output(proc)
    assert typed.returncode == 0, describe(typed)
    assert typed.stdout.startswith('sent 2 of 2 instances') and typed.stderr == ''
    assert log.count('Received Store Request') == 2, log
    assert 'I: Association Aborted' in log and 'Association Release' not in log, log
    assert len(list(out.iterdir())) == 1
    assert confirmed.returncode == 3, describe(confirmed)
    assert confirmed.stderr == (
        f'pynetdicom2 storescu: error: ANY-SCP@127.0.0.1:{port} accepted the association '
        'without confirming the user identity (-rsp)\n')


def test_dcmtk_storescu_to_our_storescp_running_commands(tmp_path):
    make_archive_files(tmp_path / 'src')
    log = tmp_path / 'log.txt'
    with our_server('storescp', '-od', tmp_path / 'out', '-su', 'ST', '-fe', '', '-xs',
                    '-xcr', f'echo #a #c #f >> {log}') as (proc, port):
        result = run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '-aec', 'OURS', '+sd',
                           '127.0.0.1', str(port), str(tmp_path / 'src' / 'i6.dcm'),
                           str(tmp_path / 'src' / 'i7.dcm')])
    assert result.returncode == 0, describe(result)
    assert log.read_text().splitlines() == [
        f'STORESCU OURS {uid(3, 6)}', f'STORESCU OURS {uid(3, 7)}']
    assert sorted(p.name for p in (tmp_path / 'out' / f'ST_{uid(1, 4)}').iterdir()) == [
        uid(3, 6), uid(3, 7)]


# -- the archive ------------------------------------------------------------------------

def _fill(port: int, source: pathlib.Path) -> None:
    result = run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '-aec', 'ARCHIVE', '+sd',
                       '127.0.0.1', str(port), str(source)])
    assert result.returncode == 0, describe(result)


def _dcmtk_find(port: int, out: pathlib.Path, model: str, *keys: str) -> list:
    out.mkdir()
    args = [dcmtk('findscu'), *DCMTK_TIMEOUTS, model, '-aec', 'ARCHIVE', '-X', '-od', str(out)]
    for key in keys:
        args += ['-k', key]
    result = run_tool([*args, '127.0.0.1', str(port)])
    assert result.returncode == 0, describe(result)
    return [pydicom.dcmread(p) for p in sorted(out.glob('rsp*.dcm'))]


# (model flag, keys, the unique key to compare, expected values)
FIND_CASES = [
    ('-P', ['QueryRetrieveLevel=PATIENT', 'PatientName=DOE*', 'PatientID'],
     'PatientID', ['P1', 'P2']),
    ('-P', ['QueryRetrieveLevel=STUDY', 'PatientID=P1', 'StudyInstanceUID'],
     'StudyInstanceUID', study_uids(1, 2)),
    ('-P', ['QueryRetrieveLevel=SERIES', 'PatientID=P1', f'StudyInstanceUID={uid(1, 1)}',
            'SeriesInstanceUID', 'Modality'],
     'SeriesInstanceUID', [uid(2, 1), uid(2, 2)]),
    ('-P', ['QueryRetrieveLevel=IMAGE', 'PatientID=P3', f'StudyInstanceUID={uid(1, 4)}',
            f'SeriesInstanceUID={uid(2, 5)}', 'SOPInstanceUID'],
     'SOPInstanceUID', instance_uids(6, 7)),
    ('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20240101-20240228', 'StudyInstanceUID'],
     'StudyInstanceUID', study_uids(1, 2)),
    ('-S', ['QueryRetrieveLevel=STUDY', f'StudyInstanceUID={uid(1, 1)}\\{uid(1, 3)}'],
     'StudyInstanceUID', study_uids(1, 3)),
    ('-S', ['QueryRetrieveLevel=STUDY', 'ModalitiesInStudy=MR', 'StudyInstanceUID'],
     'StudyInstanceUID', study_uids(2)),
    ('-S', ['QueryRetrieveLevel=SERIES', f'StudyInstanceUID={uid(1, 1)}', 'Modality=C?',
            'SeriesInstanceUID'],
     'SeriesInstanceUID', [uid(2, 1), uid(2, 2)]),
    ('-S', ['QueryRetrieveLevel=IMAGE', f'StudyInstanceUID={uid(1, 1)}',
            f'SeriesInstanceUID={uid(2, 1)}', 'SOPInstanceUID'],
     'SOPInstanceUID', instance_uids(1, 2)),
]


def test_dcmtk_storescu_then_findscu_at_every_level_of_both_roots(tmp_path):
    make_archive_files(tmp_path / 'src')
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        _fill(port, tmp_path / 'src')
        for n, (model, keys, unique, expected) in enumerate(FIND_CASES):
            found = _dcmtk_find(port, tmp_path / f'find{n}', model, *keys)
            got = sorted(str(ds.get(unique)) for ds in found)
            assert got == sorted(expected), (model, keys, [str(ds) for ds in found])
            level = keys[0].split('=')[1]
            assert all(ds.QueryRetrieveLevel == level for ds in found)
        # Returned values, counts included, as the archive has them.
        (study,) = _dcmtk_find(port, tmp_path / 'details', '-S', 'QueryRetrieveLevel=STUDY',
                               f'StudyInstanceUID={uid(1, 1)}', 'PatientName', 'StudyDate',
                               'AccessionNumber', 'NumberOfStudyRelatedInstances',
                               'ModalitiesInStudy')
    assert (str(study.PatientName), study.StudyDate, study.AccessionNumber) == (
        'DOE^JOHN', '20240110', 'A1')
    assert study.NumberOfStudyRelatedInstances == 3 and study.ModalitiesInStudy == 'CT'


def test_dcmtk_movescu_moves_a_study_to_dcmtk_storescp_and_getscu_gets_a_series(tmp_path):
    sources = make_archive_files(tmp_path / 'src')
    expected = pixel_data_by_uid(sources)
    moved, got = tmp_path / 'moved', tmp_path / 'got'
    moved.mkdir()
    got.mkdir()
    with start_dcmtk_scp('storescp', ['-aet', 'DEST', '-od', str(moved)]) as (dest, dest_port):
        with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE',
                        '--move-dest', f'DEST=127.0.0.1:{dest_port}') as (proc, port):
            _fill(port, tmp_path / 'src')
            move = run_tool([dcmtk('movescu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aec', 'ARCHIVE',
                             '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY',
                             '-k', f'StudyInstanceUID={uid(1, 1)}', '127.0.0.1', str(port)])
            assert move.returncode == 0, describe(move) + peers.process_output(proc)
            get = run_tool([dcmtk('getscu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aec', 'ARCHIVE',
                            '-od', str(got), '-k', 'QueryRetrieveLevel=SERIES',
                            '-k', f'StudyInstanceUID={uid(1, 4)}',
                            '-k', f'SeriesInstanceUID={uid(2, 5)}', '127.0.0.1', str(port)])
            assert get.returncode == 0, describe(get) + peers.process_output(proc)
    assert 'Final Move Response (Success)' in move.stderr, describe(move)
    moved_files = pixel_data_by_uid(sorted(moved.iterdir()))
    assert sorted(moved_files) == instance_uids(1, 2, 3)
    got_files = pixel_data_by_uid(sorted(got.iterdir()))
    assert sorted(got_files) == instance_uids(6, 7)
    for found in (moved_files, got_files):
        assert all(found[u] == expected[u] for u in found)
