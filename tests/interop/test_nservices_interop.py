"""DIMSE-N interoperability with pynetdicom 3: storage commitment both ways (the result on
the same association and on a new one), MPPS N-CREATE / N-SET both ways, and N-GET.

The pynetdicom side is tests/interop/peers/n_pynetdicom.py, in its own process; it
prints one JSON line per message it served or received, which the tests read back.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import queue
import time

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from pynetdicom2.services import nservices
from tests import peers
from tests.test_nservices import CommitmentAE, MPPSAE, OldStyleAE, RecordingCommitment

SCRIPT = pathlib.Path(__file__).resolve().parent / 'peers' / 'n_pynetdicom.py'
# A 0.9.8-style storage commitment script, run under the released 0.9.8.
OLD_SCRIPT = pathlib.Path(__file__).resolve().parent / 'peers' / 'commitment_098.py'
SC = uids.STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS
SC_INSTANCE = '1.2.840.10008.1.20.1.1'
MPPS = uids.MODALITY_PERFORMED_PROCEDURE_STEP_SOP_CLASS
MPPS_RETRIEVE = uids.MODALITY_PERFORMED_PROCEDURE_STEP_RETRIEVE_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
WAIT = 15


@pytest.fixture(autouse=True)
def _needs_pynetdicom():
    peers.require_pynetdicom()


@contextlib.contextmanager
def n_peer(*args):
    """Run the N-service pynetdicom peer; yield ``(proc, port)`` once it prints its port."""
    proc = peers._spawn([peers.pynetdicom_python(), str(SCRIPT), *args])
    try:
        yield proc, peers._read_port_line(proc, WAIT)
    finally:
        peers.stop_process(proc)
        peers._discard_logs(proc)


def records(proc):
    """The JSON lines the peer printed so far."""
    text = pathlib.Path(proc.logdir, 'stdout').read_text(errors='replace')
    return [json.loads(line) for line in text.splitlines() if line.startswith('{')]


def wait_for(proc, event, count=1, timeout=WAIT):
    """The first ``count`` records named ``event``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in records(proc) if r['event'] == event]
        if len(found) >= count:
            return found[:count]
        time.sleep(0.05)
    pytest.fail(f'no {event!r} from the peer within {timeout} s\n{peers.process_output(proc)}')


def run_peer_scu(*args, timeout=60):
    result = peers.run_tool([peers.pynetdicom_python(), str(SCRIPT), *args], timeout=timeout)
    assert result.returncode == 0, peers.describe(result)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]


def refs_args(refs):
    return [arg for cls, inst in refs for arg in ('--ref', f'{cls}:{inst}')]


def instances(n):
    return [(CT, generate_uid()) for _ in range(n)]


# -- our commitment SCU -> pynetdicom SCP ---------------------------------------------

@pytest.mark.parametrize('fail, delay', [(False, '0'), (True, '0'), (True, '0.5')])
def test_our_scu_gets_the_result_on_the_same_association(fail, delay):
    # With no delay pynetdicom's report may overtake its N-ACTION-RSP; we take either order.
    refs = instances(3)
    args = ['--report', 'same', '--report-delay', delay] + (
        ['--fail', refs[2][1]] if fail else [])
    results = queue.Queue()
    events = queue.Queue()

    class Requester(ae_module.ClientAE):
        def on_commitment_response(self, transaction_uid, success, failure):
            results.put((transaction_uid, success, failure))

    scu = Requester('OUR_SCU')
    scu.dcm_timeout = 10
    scu.add_scu(sopclass.storage_commitment_scu)
    # Asks for the report here: we propose both roles and wait for it.
    scu.add_scp(RecordingCommitment(events, report_on_same_association=True))
    transaction = generate_uid()
    with n_peer(*args) as (proc, port):
        with scu.request_association({'aet': 'PYNETDICOM', 'address': '127.0.0.1',
                                      'port': port}) as assoc:
            assert assoc.roles.get(SC) == (1, 1)
            status = assoc.get_scu(SC)(transaction, refs, 1, wait_for_report=True)
        assert status == 0x0000
        (action,) = wait_for(proc, 'n_action')
        (sent,) = wait_for(proc, 'report_sent')
    assert action['calling_aet'] == 'OUR_SCU'
    assert (action['sop_class'], action['sop_instance'], action['action_type']) == (
        SC, SC_INSTANCE, 1)
    assert action['transaction_uid'] == transaction
    assert [tuple(r) for r in action['refs']] == refs
    assert sent == {'event': 'report_sent', 'on': 'same', 'event_type': 2 if fail else 1,
                    'status': 0}
    uid, success, failure = results.get_nowait()
    assert uid == transaction
    if fail:
        assert success == refs[:2]
        assert failure == [(CT, refs[2][1], 0x0112)]
    else:
        assert success == refs and failure == []


def test_our_scu_gets_the_result_on_a_new_association():
    refs = instances(2)
    with CommitmentAE('RECEIVER') as receiver:
        scu = ae_module.ClientAE('OUR_SCU')
        scu.dcm_timeout = 10
        scu.add_scu(sopclass.storage_commitment_scu)
        transaction = generate_uid()
        with n_peer('--report', 'new', '--report-port', str(receiver.local_ae.port),
                    '--report-aet', 'RECEIVER', '--fail', refs[0][1]) as (proc, port):
            with scu.request_association({'aet': 'PYNETDICOM', 'address': '127.0.0.1',
                                          'port': port}) as assoc:
                assert assoc.get_scu(SC)(transaction, refs, 1) == 0x0000
            uid, success, failure = receiver.results.get(timeout=WAIT)
            assert receiver.events.get(timeout=WAIT) == 2
            (sent,) = wait_for(proc, 'report_sent')
    assert sent['on'] == 'new' and sent['status'] == 0
    assert uid == transaction
    assert success == refs[1:]
    assert failure == [(CT, refs[0][1], 0x0112)]


# -- pynetdicom SCU -> our commitment SCP ---------------------------------------------

def test_pynetdicom_scu_gets_our_result_on_the_same_association():
    refs = instances(3)
    transaction = generate_uid()
    with CommitmentAE('OUR_SCP', report_to=None, fail=[refs[1][1]]) as scp:
        out = run_peer_scu('--scu', 'commit', '--report', 'same', '--port',
                           str(scp.local_ae.port), '--transaction-uid', transaction,
                           *refs_args(refs))
        remote_aet, asked = scp.requests.get(timeout=WAIT)
    assert remote_aet == 'PYNETDICOM_SCU'
    assert asked == refs
    by_event = {r['event']: r for r in out}
    assert by_event['n_action_rsp']['status'] == 0
    report = by_event['n_event_report']
    assert report['event_type'] == 2
    assert (report['sop_class'], report['sop_instance']) == (SC, SC_INSTANCE)
    assert report['transaction_uid'] == transaction
    assert report['success'] == [list(refs[0]), list(refs[2])]
    assert report['failure'] == [[CT, refs[1][1], 0x0112]]
    assert by_event['done']['report_received'] is True


def test_pynetdicom_scu_gets_our_result_on_a_new_association():
    refs = instances(2)
    transaction = generate_uid()
    holder = {}

    class OurSCP(CommitmentAE):
        def on_commitment_request(self, remote_aet, uids):
            # The peer printed the port it listens on before it associated with us.
            port = peers._read_port_line(holder['proc'], WAIT)
            self.report_to = {'aet': remote_aet, 'address': '127.0.0.1', 'port': port}
            return super().on_commitment_request(remote_aet, uids)

    with OurSCP('OUR_SCP') as scp:
        proc = peers._spawn([peers.pynetdicom_python(), str(SCRIPT), '--scu', 'commit',
                             '--report', 'new',
                             '--port', str(scp.local_ae.port), '--transaction-uid',
                             transaction, *refs_args(refs)])
        holder['proc'] = proc
        try:
            (done,) = wait_for(proc, 'done', timeout=40)
            out = records(proc)
            assert proc.wait(WAIT) == 0, peers.process_output(proc)
        finally:
            peers.stop_process(proc)
            peers._discard_logs(proc)
    assert done['report_received'] is True
    report = next(r for r in out if r['event'] == 'n_event_report')
    assert report['event_type'] == 1
    assert report['transaction_uid'] == transaction
    assert report['success'] == [list(r) for r in refs]
    assert report['failure'] == []


# -- pynetdicom2 0.9.8 (the released original) ---------------------------------------

def test_a_0_9_8_requester_holding_its_association_gets_our_report_on_a_new_one():
    # The 0.9.8 way: wait for on_commitment_response while the association is held. It
    # proposed the SCP role for every class it served; we report on a new association.
    refs = instances(2)
    transaction = generate_uid()
    holder = {}

    class OurSCP(CommitmentAE):
        def on_commitment_request(self, remote_aet, uids):
            port = peers._read_port_line(holder['proc'], WAIT)
            self.report_to = {'aet': remote_aet, 'address': '127.0.0.1', 'port': port}
            return super().on_commitment_request(remote_aet, uids)

    with OurSCP('OUR_SCP') as scp:
        proc = peers._spawn([peers.original_python(), str(OLD_SCRIPT), '--role', 'scu',
                             '--port', str(scp.local_ae.port), '--transaction-uid',
                             transaction, *refs_args(refs)])
        holder['proc'] = proc
        try:
            (result,) = wait_for(proc, 'result', timeout=40)
            assert proc.wait(WAIT) == 0, peers.process_output(proc)
        finally:
            peers.stop_process(proc)
            peers._discard_logs(proc)
        remote_aet, asked = scp.requests.get(timeout=WAIT)
    assert (remote_aet, asked) == ('OLD_SCU', refs)
    assert result['n_action_status'] == 0 and 'error' not in result, result
    assert result['report_arrived'] is True
    assert result['reports'] == [{'transaction_uid': transaction,
                                  'success': [list(r) for r in refs], 'failure': []}]


def test_our_requester_holding_its_association_gets_a_0_9_8_report():
    refs = instances(2)
    transaction = generate_uid()
    with OldStyleAE('OUR_SCU', {}) as ours:
        with n_peer_098('--role', 'scp', '--dest-port', str(ours.local_ae.port)) as (
                proc, port):
            with ours.request_association({'aet': 'OLD_SCP', 'address': '127.0.0.1',
                                           'port': port}) as assoc:
                status = assoc.get_scu(SC)(transaction, refs, 1)
                uid, success, failure, _ = ours.responses.get(timeout=WAIT)
            (request,) = wait_for(proc, 'commitment request')
    assert status == 0x0000
    assert request['remote_aet'] == 'OUR_SCU'
    assert [tuple(r) for r in request['uids']] == refs
    assert (uid, success, failure) == (transaction, refs, [])


@contextlib.contextmanager
def n_peer_098(*args):
    """Run the 0.9.8 commitment script; yield ``(proc, port)`` once it prints its port."""
    proc = peers._spawn([peers.original_python(), str(OLD_SCRIPT), *args])
    try:
        yield proc, peers._read_port_line(proc, WAIT)
    finally:
        peers.stop_process(proc)
        peers._discard_logs(proc)


# -- MPPS and N-GET ---------------------------------------------------------------

def mpps_step():
    ds = Dataset()
    ds.PatientName = 'OUR^MPPS'
    ds.PatientID = 'OURPID'
    ds.Modality = 'CT'
    ds.PerformedProcedureStepID = 'OURSTEP'
    ds.PerformedProcedureStepStatus = 'IN PROGRESS'
    ds.PerformedProcedureStepStartDate = '20240103'
    ds.PerformedProcedureStepStartTime = '090000'
    attr = Dataset()
    attr.AccessionNumber = 'OURACC'
    ds.ScheduledStepAttributesSequence = [attr]
    return ds


def test_our_mpps_scu_and_n_get_against_pynetdicom():
    uid = generate_uid()
    scu = ae_module.ClientAE('OUR_SCU')
    scu.dcm_timeout = 10
    scu.add_scu(sopclass.mpps_scu)
    scu.add_scu(nservices.NServiceSCU, [MPPS_RETRIEVE])
    done = Dataset()
    done.PerformedProcedureStepStatus = 'COMPLETED'
    done.PerformedProcedureStepEndDate = '20240103'
    done.PerformedProcedureStepEndTime = '093000'
    with n_peer() as (proc, port):
        with scu.request_association({'aet': 'PYNETDICOM', 'address': '127.0.0.1',
                                      'port': port}) as assoc:
            mpps = assoc.get_scu(MPPS)()
            status, created = mpps.create(uid, mpps_step(), 1)
            assert status == 0x0000
            assert created.PatientName == 'OUR^MPPS'
            status, _ = mpps.set(uid, done, 2)
            assert status == 0x0000
            assert mpps.set(uid, done, 3).status == 0x0110  # no longer IN PROGRESS
            retrieve = assoc.get_scu(MPPS_RETRIEVE)()
            status, got = retrieve.get(uid, ['PatientName', 'PerformedProcedureStepStatus',
                                             'ScheduledStepAttributesSequence'], 4)
            assert status == 0x0000
            assert got.PatientName == 'OUR^MPPS'
            assert got.PerformedProcedureStepStatus == 'COMPLETED'
            assert got.ScheduledStepAttributesSequence[0].AccessionNumber == 'OURACC'
            assert 'PatientID' not in got
            assert retrieve.get(generate_uid(), None, 5).status == 0x0112
        (create,) = wait_for(proc, 'n_create')
        sets = wait_for(proc, 'n_set', count=2)
        gets = wait_for(proc, 'n_get', count=2)
    assert (create['sop_class'], create['sop_instance']) == (MPPS, uid)
    received = Dataset.from_json(create['data'])
    assert received.PatientName == 'OUR^MPPS'
    assert received.PerformedProcedureStepStatus == 'IN PROGRESS'
    assert received.ScheduledStepAttributesSequence[0].AccessionNumber == 'OURACC'
    assert (sets[0]['sop_class'], sets[0]['sop_instance']) == (MPPS, uid)
    modification = Dataset.from_json(sets[0]['data'])
    assert modification.PerformedProcedureStepStatus == 'COMPLETED'
    assert modification.PerformedProcedureStepEndTime == '093000'
    assert gets[0]['sop_class'] == MPPS_RETRIEVE
    assert gets[0]['tags'] == [0x00100010, 0x00400252, 0x00400270]


def test_pynetdicom_mpps_scu_against_our_scp():
    uid = generate_uid()
    with MPPSAE() as scp:
        out = run_peer_scu('--scu', 'mpps', '--port', str(scp.local_ae.port), '--called-aet',
                           'MPPS_SCP', '--mpps-uid', uid)
    by_event = {r['event']: r for r in out}
    assert by_event['n_create_rsp']['status'] == 0
    assert Dataset.from_json(by_event['n_create_rsp']['data']).PatientName == 'INTEROP^MPPS'
    assert by_event['n_set_rsp']['status'] == 0
    assert by_event['n_set_again_rsp']['status'] == 0x0110
    step = scp.steps[uid]
    assert step.PatientName == 'INTEROP^MPPS'
    assert step.PerformedProcedureStepID == 'PPS42'
    assert step.ScheduledStepAttributesSequence[0].AccessionNumber == 'ACC42'
    assert step.PerformedProcedureStepStatus == 'COMPLETED'
    assert step.PerformedProcedureStepEndTime == '103000'
