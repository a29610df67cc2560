"""qrscp's archive rules against DCMTK's tools: storescu cannot re-parent a study or a
series (0xC000 with an Error Comment, read from ``-d`` output) and findscu still
answers with the original; values that do not parse as their VR, sent by storescu,
come back verbatim from findscu at every level; movescu and getscu are refused a
wildcard or range unique key, and getscu gets a list of UIDs.
"""

from __future__ import annotations

import pathlib

import pydicom
import pytest

from tests.peers import dcmtk, describe, run_tool
from tests.test_apps import our_server
from tests.test_qrindex import BAD_VALUES, instance_file, raw_value, uid

pytestmark = pytest.mark.filterwarnings('ignore:Invalid value for VR')

DCMTK_TIMEOUTS = ['-to', '10', '-ta', '10', '-td', '10']


def dcmtk_store(port: int, *paths, debug: bool = False):
    return run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '-d' if debug else '-v', '+sd',
                     '-aec', 'ARCHIVE', '127.0.0.1', str(port), *map(str, paths)])


def dcmtk_find(port: int, out: pathlib.Path, model: str, *keys: str) -> list:
    out.mkdir()
    args = [dcmtk('findscu'), *DCMTK_TIMEOUTS, model, '-aec', 'ARCHIVE', '-X', '-od', str(out)]
    for key in keys:
        args += ['-k', key]
    result = run_tool([*args, '127.0.0.1', str(port)])
    assert result.returncode == 0, describe(result)
    return [pydicom.dcmread(p) for p in sorted(out.glob('rsp*.dcm'))]


def error_comment(result) -> str:
    """The Error Comment DCMTK's ``-d`` output shows (the first one)."""
    for line in result.stderr.splitlines():
        if '(0000,0902)' in line:
            return line.split('[', 1)[1].rsplit(']', 1)[0]
    raise AssertionError(f'no Error Comment in\n{describe(result)}')


def test_dcmtk_storescu_cannot_reparent_a_study_or_a_series(tmp_path):
    src = tmp_path / 'src'
    original = instance_file(src / 'original.dcm', uid(3, 1), uid(1, 1), uid(2, 1),
                             patient_id='P1', name='DOE^JOHN')
    other_patient = instance_file(src / 'other_patient.dcm', uid(3, 2), uid(1, 1), uid(2, 2),
                                  patient_id='P2', name='ROE^JANE')
    other_study = instance_file(src / 'other_study.dcm', uid(3, 3), uid(1, 3), uid(2, 1),
                                patient_id='P1', name='DOE^JOHN')
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        stored = dcmtk_store(port, original)
        refused_patient = dcmtk_store(port, other_patient, debug=True)
        refused_study = dcmtk_store(port, other_study, debug=True)
        images = dcmtk_find(port, tmp_path / 'images', '-P', 'QueryRetrieveLevel=IMAGE',
                            'PatientID', 'PatientName', 'StudyInstanceUID',
                            'SeriesInstanceUID', 'SOPInstanceUID')
        series = dcmtk_find(port, tmp_path / 'series', '-S', 'QueryRetrieveLevel=SERIES',
                            f'StudyInstanceUID={uid(1, 1)}', 'SeriesInstanceUID')
    assert stored.returncode == 0, describe(stored)
    for refused in (refused_patient, refused_study):
        assert 'DIMSE Status                  : 0xc000' in refused.stderr, describe(refused)
    assert error_comment(refused_patient) == 'study already belongs to Patient ID P1, not P2'
    assert error_comment(refused_study) == \
        'Series Instance UID already belongs to another study'
    assert [(ds.PatientID, str(ds.PatientName), ds.StudyInstanceUID, ds.SeriesInstanceUID,
             ds.SOPInstanceUID) for ds in images] == [
        ('P1', 'DOE^JOHN', uid(1, 1), uid(2, 1), uid(3, 1))]
    assert [ds.SeriesInstanceUID for ds in series] == [uid(2, 1)]
    assert sorted(p.name for p in (tmp_path / 'pacs').rglob('*.dcm')) == [f'{uid(3, 1)}.dcm']


def test_dcmtk_findscu_gets_values_that_do_not_parse_back_verbatim(tmp_path):
    src = tmp_path / 'src'
    instance_file(src / 'odd.dcm', uid(3, 1), uid(1, 1), uid(2, 1), patient_id='ODD',
                  **{kw: text for kw, (vr, text) in BAD_VALUES.items()})
    instance_file(src / 'good.dcm', uid(3, 2), uid(1, 2), uid(2, 2), patient_id='GOOD',
                  StudyDate='20200315', StudyTime='101500', SeriesNumber='7')
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        stored = dcmtk_store(port, src / 'odd.dcm', src / 'good.dcm')
        assert stored.returncode == 0, describe(stored)
        found = {}
        for level, keys in [
                ('PATIENT', []),
                ('STUDY', ['StudyDate', 'StudyTime', 'PatientWeight']),
                ('SERIES', ['StudyDate', 'SeriesNumber']),
                ('IMAGE', ['StudyTime', 'SeriesNumber', 'InstanceNumber'])]:
            found[level] = dcmtk_find(port, tmp_path / level, '-P',
                                      f'QueryRetrieveLevel={level}', 'PatientID=ODD',
                                      *keys)
        in_range = dcmtk_find(port, tmp_path / 'range', '-S', 'QueryRetrieveLevel=STUDY',
                              'StudyDate=19000101-20991231', 'PatientID')
        exact = dcmtk_find(port, tmp_path / 'exact', '-S', 'QueryRetrieveLevel=SERIES',
                           'SeriesNumber=abc', 'PatientID')
    assert [len(answers) for answers in found.values()] == [1, 1, 1, 1]
    for level, (ds,) in found.items():
        for keyword in BAD_VALUES:
            if keyword in ds:
                assert raw_value(ds, keyword) == BAD_VALUES[keyword][1], (level, keyword)
    assert 'InstanceNumber' in found['IMAGE'][0] and 'PatientWeight' in found['STUDY'][0]
    assert [ds.PatientID for ds in in_range] == ['GOOD']
    assert [ds.PatientID for ds in exact] == ['ODD']


@pytest.mark.parametrize('tool, keys, comment', [
    ('movescu', ['-P', '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID=*'],
     'no wildcard in a retrieve: PatientID *'),
    ('movescu', ['-S', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2*'],
     'no wildcard in a retrieve: StudyInstanceUID 1.2*'),
    ('getscu', ['-P', '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID=PAT*'],
     'no wildcard in a retrieve: PatientID PAT*'),
    ('getscu', ['-S', '-k', 'QueryRetrieveLevel=STUDY',
                '-k', 'StudyInstanceUID=20240101-20241231'],
     'no range in a retrieve: StudyInstanceUID 20240101-20241231'),
])
def test_dcmtk_retrieves_with_wildcard_or_range_keys_are_refused(tmp_path, tool, keys,
                                                                  comment):
    src = tmp_path / 'src'
    for n in (1, 2):
        instance_file(src / f'{n}.dcm', uid(3, n), uid(1, n), uid(2, n), patient_id='PAT1')
    (tmp_path / 'out').mkdir()
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE',
                    '--move-dest', 'NOBODY=127.0.0.1:9') as (proc, port):
        assert dcmtk_store(port, src).returncode == 0
        extra = ['-aem', 'NOBODY'] if tool == 'movescu' else ['-od', str(tmp_path / 'out')]
        result = run_tool([dcmtk(tool), *DCMTK_TIMEOUTS, '-d', '-aec', 'ARCHIVE', *extra,
                           *keys, '127.0.0.1', str(port)])
    assert 'UnableToProcess' in result.stderr, describe(result)
    assert error_comment(result) == comment
    assert list((tmp_path / 'out').iterdir()) == []


def test_dcmtk_getscu_gets_a_list_of_uids(tmp_path):
    src = tmp_path / 'src'
    for n in (1, 2, 3):
        instance_file(src / f'{n}.dcm', uid(3, n), uid(1, n), uid(2, n), patient_id='PAT1')
    (tmp_path / 'out').mkdir()
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        assert dcmtk_store(port, src).returncode == 0
        result = run_tool([dcmtk('getscu'), *DCMTK_TIMEOUTS, '-v', '-S', '-aec', 'ARCHIVE',
                           '-od', str(tmp_path / 'out'), '-k', 'QueryRetrieveLevel=STUDY',
                           '-k', f'StudyInstanceUID={uid(1, 1)}\\{uid(1, 3)}',
                           '127.0.0.1', str(port)])
    assert result.returncode == 0, describe(result)
    got = sorted(pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / 'out').iterdir())
    assert got == [uid(3, 1), uid(3, 3)]
