"""DIMSE-N services between our own AEs over loopback: storage commitment (both ways of
delivering the result), MPPS, and the generic N-service SCU calls and SCP.
"""

from __future__ import annotations

import logging
import queue
import threading

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pynetdicom2 import ae as ae_module
from pynetdicom2 import dimse, sopclass, statuses, uids
from pynetdicom2.exceptions import (
    AssociationAbortedError, DIMSEProcessingError, EventHandlingError)
from pynetdicom2.services import commitment, nservices

SC = uids.STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS
SC_INSTANCE = '1.2.840.10008.1.20.1.1'
MPPS = uids.MODALITY_PERFORMED_PROCEDURE_STEP_SOP_CLASS
CT = uids.CT_IMAGE_STORAGE
WAIT = 10  # seconds: every wait for another thread is bounded by this


def remote(server, aet=None):
    return {'aet': aet or server.local_ae.aet, 'address': '127.0.0.1',
            'port': server.local_ae.port}


def instances(n):
    return [(CT, generate_uid()) for _ in range(n)]


class RecordingCommitment(commitment.StorageCommitment):
    """StorageCommitment that also notes the Event Type ID of each report it takes."""

    def __init__(self, events, report_on_same_association=False):
        super().__init__(report_on_same_association)
        self.events = events
        self.roles = []  # the roles negotiated on each association a report came on

    def n_event_report(self, msg, asce, ctx):
        self.roles.append(asce.roles.get(SC))
        self.events.put(msg.event_type_id)
        super().n_event_report(msg, asce, ctx)


class CommitmentAE(ae_module.AE):
    """An AE server that commits (or fails) what it is asked, and records results.

    ``fail`` holds SOP instance UIDs to report as failed (reason 0x0112);
    ``report_to`` is what ``on_commitment_request`` returns as remote AE.
    """

    def __init__(self, title, report_to=None, fail=(), request_error=None,
                 response_error=None):
        super().__init__(title, 0, bind_address='127.0.0.1')
        self.dcm_timeout = 5
        self.report_to = report_to
        self.fail = set(fail)
        self.request_error = request_error
        self.response_error = response_error
        self.requests = queue.Queue()
        self.results = queue.Queue()
        self.events = queue.Queue()
        self.add_scp(sopclass.verification_scp)
        self.commitment = RecordingCommitment(self.events)
        self.add_scp(self.commitment)

    def on_commitment_request(self, remote_aet, uids):
        uids = list(uids)
        self.requests.put((remote_aet, uids))
        if self.request_error is not None:
            raise self.request_error
        success = [(c, i) for c, i in uids if i not in self.fail]
        failure = [(c, i, 0x0112) for c, i in uids if i in self.fail]
        return self.report_to, success, failure

    def on_commitment_response(self, transaction_uid, success, failure):
        self.results.put((transaction_uid, success, failure))
        if self.response_error is not None:
            raise self.response_error


def client(title='COMMIT_SCU', *services):
    scu = ae_module.ClientAE(title)
    scu.dcm_timeout = 5
    scu.add_scu(sopclass.storage_commitment_scu)
    scu.add_scu(sopclass.verification_scu)
    for service in services:
        scu.add_scp(service)
    return scu


@pytest.fixture
def receiver():
    with CommitmentAE('RECEIVER') as srv:
        yield srv


# -- storage commitment: result on a new association ---------------------------------

def test_commitment_all_succeeded_reports_event_1_on_a_new_association(receiver):
    refs = instances(3)
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver)) as scp:
        scu = client()
        transaction = generate_uid()
        with scu.request_association(remote(scp)) as assoc:
            status = assoc.get_scu(SC)(transaction, refs, 7)
            assert SC not in assoc.roles  # no SCP role asked: the report goes elsewhere
        assert status == 0x0000 and status.is_success
        remote_aet, asked = scp.requests.get(timeout=WAIT)
        assert remote_aet == 'COMMIT_SCU'
        assert asked == refs
        assert receiver.events.get(timeout=WAIT) == 1
        uid, success, failure = receiver.results.get(timeout=WAIT)
    assert uid == transaction
    assert success == refs
    assert failure == []
    # The report's association proposed the SCP role alone (PS3.4 J.3.3.1.3).
    assert receiver.commitment.roles == [(0, 1)]


def test_commitment_with_failures_reports_event_2_with_failure_reason(receiver):
    refs = instances(3)
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver), fail=[refs[1][1]]) as scp:
        transaction = generate_uid()
        with client().request_association(remote(scp)) as assoc:
            status = assoc.get_scu(SC)(transaction, refs, 1)
        assert status.is_success
        assert receiver.events.get(timeout=WAIT) == 2
        uid, success, failure = receiver.results.get(timeout=WAIT)
    assert uid == transaction
    assert success == [refs[0], refs[2]]
    assert failure == [(CT, refs[1][1], 0x0112)]


class OldStyleAE(ae_module.AE):
    """A pynetdicom2 0.9.8-style AE: it serves and requests storage commitment, and its
    ``on_commitment_request`` sends the result to the requester's own server."""

    def __init__(self, title, peers):
        super().__init__(title, 0, bind_address='127.0.0.1')
        self.dcm_timeout = 5
        self.peers = peers  # AE title -> remote AE dict, filled in once all listen
        self.responses = queue.Queue()
        self.add_scp(commitment.StorageCommitment())
        self.add_scu(sopclass.storage_commitment_scu)
        self.add_scp(sopclass.verification_scp)
        self.add_scu(sopclass.verification_scu)

    def on_commitment_request(self, remote_aet, uids):
        return self.peers[remote_aet], list(uids), []

    def on_commitment_response(self, transaction_uid, success, failure):
        self.responses.put((transaction_uid, list(success), list(failure),
                            threading.current_thread().name))


def test_two_0_9_8_style_aes_report_on_a_new_association_while_the_requester_waits():
    # The requester waits for on_commitment_response while it still holds the
    # association; 0.9.8 reported on a new association, so nothing deadlocks.
    peers = {}
    with OldStyleAE('NODE_A', peers) as node_a, OldStyleAE('NODE_B', peers) as node_b:
        peers.update(NODE_A=remote(node_a), NODE_B=remote(node_b))
        refs = instances(2)
        with node_a.request_association(remote(node_b)) as assoc:
            assert SC not in assoc.roles  # no role proposed: the report goes elsewhere
            status = assoc.get_scu(SC)('1.2.70', refs, 1)
            uid, success, failure, thread = node_a.responses.get(timeout=WAIT)
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2).is_success
        assert status.is_success
    assert (uid, success, failure) == ('1.2.70', refs, [])
    assert thread != threading.current_thread().name  # the server took it


def test_a_requester_proposing_only_the_scp_role_gets_a_new_association(receiver):
    # pynetdicom2 0.9.x proposed (SCU 0, SCP 1) for every class it served, and read no
    # report on its own association.
    from pynetdicom2.userdataitems import ScpScuRoleSelectionSubItem
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver)) as scp:
        old_style = dict(remote(scp), user_data=[ScpScuRoleSelectionSubItem(SC, 0, 1)])
        with client().request_association(old_style) as assoc:
            assert assoc.roles[SC] == (0, 1)
            assert assoc.get_scu(SC)('1.2.71', instances(1), 1, wait_for_report=False) == 0
            assert receiver.results.get(timeout=WAIT)[0] == '1.2.71'
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2).is_success


def test_wait_for_report_waits_only_when_the_roles_were_negotiated(receiver):
    refs = instances(1)
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver)) as scp:
        scu = client('COMMIT_SCU', commitment.StorageCommitment())
        assert commitment.StorageCommitment().propose_scp_role is False
        assert commitment.StorageCommitment(True).propose_scp_role is True
        with scu.request_association(remote(scp)) as assoc:
            assert SC not in assoc.roles
            # Returns at once: the report goes to the receiver, not here.
            assert assoc.get_scu(SC)('1.2.72', refs, 1).is_success
            assert receiver.results.get(timeout=WAIT)[0] == '1.2.72'


@pytest.mark.unit
def test_only_failures_leave_out_the_referenced_sop_sequence():
    ds = commitment.build_event_information('1.2.3', [], [(CT, '1.2.3.4')])
    assert 'ReferencedSOPSequence' not in ds
    assert ds.FailedSOPSequence[0].FailureReason == 0x0110
    ds = commitment.build_event_information('1.2.3', [(CT, '1.2.3.5')], [])
    assert 'FailedSOPSequence' not in ds
    assert ds.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == '1.2.3.5'


def test_commitment_request_on_the_wire_names_the_well_known_instance(receiver):
    # A generic SCP stands in for the commitment SCP, so we see the raw N-ACTION-RQ.
    seen = queue.Queue()

    class Spy(ae_module.AE):
        def on_receive_n_action(self, context, msg, ds):
            seen.put((msg.sop_class_uid, msg.requested_sop_instance_uid, msg.action_type_id,
                      ds))
            return 0x0000, None

    with Spy('SPY', 0, bind_address='127.0.0.1') as spy:
        spy.add_scp(nservices.NServiceSCP([SC]))
        refs = instances(2)
        with client().request_association(remote(spy)) as assoc:
            status = sopclass.storage_commitment_scu(assoc, assoc.context_for(SC), '1.2.9',
                                                     refs, 3)
        assert status.is_success
        sop_class, instance, action, ds = seen.get(timeout=WAIT)
    assert (sop_class, instance, action) == (SC, SC_INSTANCE, 1)
    assert ds.TransactionUID == '1.2.9'
    assert [(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
            for i in ds.ReferencedSOPSequence] == refs


# -- storage commitment: result on the same association ------------------------------

def test_report_on_the_same_association_when_the_requester_asks_for_it(receiver):
    # The SCP's hook names a remote AE, but the requester asked for the report here.
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver), fail=[]) as scp:
        events = queue.Queue()
        results = queue.Queue()

        class Requester(ae_module.ClientAE):
            def on_commitment_response(self, transaction_uid, success, failure):
                results.put((transaction_uid, success, failure))

        scu = Requester('COMMIT_SCU')
        scu.dcm_timeout = 5
        scu.add_scu(sopclass.storage_commitment_scu)
        scu.add_scu(sopclass.verification_scu)
        scu.add_scp(RecordingCommitment(events, report_on_same_association=True))
        refs = instances(2)
        with scu.request_association(remote(scp)) as assoc:
            assert assoc.roles[SC] == (1, 1)
            status = assoc.get_scu(SC)('1.2.77', refs, 5)  # waits: the roles say so
            # Taken before the call returned, on this association.
            assert results.get_nowait() == ('1.2.77', refs, [])
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(6).is_success
        assert status.is_success
        assert events.empty()  # the SCU answered it itself, not through a served SCP
        assert scp.requests.get(timeout=WAIT)[1] == refs
    assert receiver.results.empty()


def test_same_association_report_falls_back_to_a_new_one_when_the_scu_releases(
        receiver, caplog):
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver)) as scp:
        scu = client('COMMIT_SCU', commitment.StorageCommitment(report_on_same_association=True))
        refs = instances(1)
        with caplog.at_level(logging.INFO, logger='pynetdicom2.services.commitment'):
            with scu.request_association(remote(scp)) as assoc:
                assert assoc.roles[SC] == (1, 1)
                status = assoc.get_scu(SC)('1.2.78', refs, 1, wait_for_report=False)
                assert status.is_success
            # We released without taking the report; it arrives at the receiver instead.
            assert receiver.results.get(timeout=WAIT) == ('1.2.78', refs, [])
            assert receiver.events.get(timeout=WAIT) == 1
    assert any('sending it on a new association' in r.getMessage() for r in caplog.records)


def test_a_result_that_overtakes_the_n_action_rsp_is_answered_first():
    refs = instances(2)
    answered = queue.Queue()

    def early_reporter(asce, ctx, msg):
        # An SCP that sends the result before its N-ACTION-RSP (pynetdicom 3 may).
        report = dimse.NEventReportRQMessage()
        report.message_id = 500
        report.affected_sop_class_uid = SC
        report.affected_sop_instance_uid = SC_INSTANCE
        report.event_type_id = 1
        report.data_set = nservices.encode_data_set(
            commitment.build_event_information('1.2.99', refs, []), ctx.supported_ts)
        asce.send(report, ctx.id)
        rsp = dimse.NActionRSPMessage()
        rsp.message_id_being_responded_to = msg.message_id
        rsp.affected_sop_class_uid = SC
        rsp.status = 0
        asce.send(rsp, ctx.id)
        got, _ = asce.receive()
        answered.put((type(got), got.message_id_being_responded_to, got.status))
    early_reporter.sop_classes = [SC]

    results = queue.Queue()

    class Requester(ae_module.ClientAE):
        def on_commitment_response(self, transaction_uid, success, failure):
            results.put((transaction_uid, success, failure))

    with ae_module.AE('EARLY', 0, bind_address='127.0.0.1') as scp:
        scp.add_scp(early_reporter)
        scu = Requester('COMMIT_SCU')
        scu.dcm_timeout = 5
        scu.add_scu(sopclass.storage_commitment_scu)
        with scu.request_association(remote(scp)) as assoc:
            # wait_for_report=True must not wait for a second report.
            status = assoc.get_scu(SC)('1.2.99', refs, 8, wait_for_report=True)
        assert status == 0x0000
        assert results.get_nowait() == ('1.2.99', refs, [])
        assert answered.get(timeout=WAIT) == (dimse.NEventReportRSPMessage, 500, 0)


# -- storage commitment: failures -----------------------------------------------------

def test_event_handling_error_from_the_request_hook_answers_0110_and_keeps_going(receiver):
    error = EventHandlingError('archive offline')
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver), request_error=error) as scp:
        with client().request_association(remote(scp)) as assoc:
            status = assoc.get_scu(SC)('1.2.79', instances(1), 1)
            assert status == 0x0110 and status.is_failure
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2).is_success
            scp.request_error = None
            assert assoc.get_scu(SC)('1.2.80', instances(1), 3).is_success
        assert receiver.results.get(timeout=WAIT)[0] == '1.2.80'
    assert receiver.results.empty()  # nothing was reported for the failed request


def test_event_handling_error_may_carry_the_status_to_answer(receiver):
    error = EventHandlingError('too many')
    error.status = commitment.StorageCommitment.RESOURCE_LIMITATION
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver), request_error=error) as scp:
        with client().request_association(remote(scp)) as assoc:
            status = assoc.get_scu(SC)('1.2.81', instances(1), 1)
    assert status == 0x0213 and status.is_failure


def test_event_handling_error_from_the_response_hook_answers_0110():
    with CommitmentAE('RECEIVER', response_error=EventHandlingError('db down')) as rcv:
        scu = ae_module.ClientAE('REPORTER')
        scu.dcm_timeout = 5
        scu.add_scu(nservices.NServiceSCU, [SC])
        info = commitment.build_event_information('1.2.82', instances(1), [])
        with scu.request_association(remote(rcv)) as assoc:
            n = assoc.get_scu(SC)()
            status, reply = n.event_report(SC_INSTANCE, 1, info, 1)
            assert status == 0x0110 and reply is None
            assert n.event_report(SC_INSTANCE, 1, info, 2).response.error_comment == 'db down'
            rcv.response_error = None
            assert n.event_report(SC_INSTANCE, 1, info, 3).status == 0x0000
            assert n.event_report(SC_INSTANCE, 9, info, 4).status == 0x0113
        assert [rcv.results.get(timeout=WAIT)[0] for _ in range(3)] == ['1.2.82'] * 3


def test_an_ae_without_commitment_support_answers_0110():
    class Plain(ae_module.AE):
        pass  # AEBase.on_commitment_request raises NotImplementedError

    with Plain('PLAIN', 0, bind_address='127.0.0.1') as scp:
        scp.add_scp(commitment.StorageCommitment())
        with client().request_association(remote(scp)) as assoc:
            assert assoc.get_scu(SC)('1.2.83', instances(1), 1) == 0x0110


def test_wrong_instance_and_action_type_are_refused(receiver):
    scu = ae_module.ClientAE('RAW')
    scu.dcm_timeout = 5
    scu.add_scu(nservices.NServiceSCU, [SC])
    info = commitment.build_action_information('1.2.84', instances(1))
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver)) as scp:
        with scu.request_association(remote(scp)) as assoc:
            n = assoc.get_scu(SC)()
            assert n.action('1.2.3', 1, info, 1).status == 0x0112
            assert n.action(SC_INSTANCE, 2, info, 2).status == 0x0123
            assert n.action(SC_INSTANCE, 1, Dataset(), 3).status == 0x0110
            result = n.action(SC_INSTANCE, 1, info, 4)
            assert result.status == 0x0000
            assert result.response.affected_sop_instance_uid == SC_INSTANCE
            assert result.response.action_type_id == 1
        assert receiver.results.get(timeout=WAIT)[0] == '1.2.84'
    assert scp.requests.qsize() == 1


def test_other_exception_from_the_hook_aborts_that_association(receiver):
    with CommitmentAE('COMMIT_SCP', request_error=RuntimeError('bug')) as scp:
        with pytest.raises(AssociationAbortedError):
            with client().request_association(remote(scp)) as assoc:
                assoc.get_scu(SC)('1.2.85', instances(1), 1)
        scp.request_error = None
        scp.report_to = remote(receiver)
        with client().request_association(remote(scp)) as assoc:
            assert assoc.get_scu(SC)('1.2.86', instances(1), 1).is_success


def test_unreachable_report_destination_is_logged_and_the_association_lives(caplog):
    with CommitmentAE('DEAD') as dead:
        gone = remote(dead)
    with CommitmentAE('COMMIT_SCP', report_to=gone) as scp:
        with caplog.at_level(logging.ERROR, logger='pynetdicom2.services.commitment'):
            with client().request_association(remote(scp)) as assoc:
                assert assoc.get_scu(SC)('1.2.87', instances(1), 1).is_success
                assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(2).is_success
    assert any('1.2.87' in r.getMessage() for r in caplog.records)


# -- MPPS ---------------------------------------------------------------------------

class MPPSAE(ae_module.AE):
    def __init__(self):
        super().__init__('MPPS_SCP', 0, bind_address='127.0.0.1')
        self.dcm_timeout = 5
        self.steps = {}
        self.add_scp(sopclass.mpps_scp)

    def on_mpps_create(self, context, sop_instance_uid, ds):
        if sop_instance_uid in self.steps:
            return 0x0111, None
        self.steps[sop_instance_uid] = ds
        return statuses.SUCCESS, ds

    def on_mpps_set(self, context, sop_instance_uid, ds):
        step = self.steps.get(sop_instance_uid)
        if step is None:
            return 0x0112, None
        if step.PerformedProcedureStepStatus != 'IN PROGRESS':
            raise EventHandlingError('Performed Procedure Step may no longer be updated')
        for elem in ds:
            step[elem.tag] = elem
        return 0x0000, None


def mpps_attributes():
    ds = Dataset()
    ds.PatientName = 'MPPS^TEST'
    ds.PatientID = 'P1'
    ds.Modality = 'CT'
    ds.PerformedProcedureStepID = 'STEP1'
    ds.PerformedProcedureStepStatus = 'IN PROGRESS'
    ds.PerformedProcedureStepStartDate = '20240101'
    ds.PerformedProcedureStepStartTime = '120000'
    attr = Dataset()
    attr.StudyInstanceUID = generate_uid()
    attr.AccessionNumber = 'ACC1'
    ds.ScheduledStepAttributesSequence = [attr]
    return ds


def completed(refs):
    ds = Dataset()
    ds.PerformedProcedureStepStatus = 'COMPLETED'
    ds.PerformedProcedureStepEndDate = '20240101'
    ds.PerformedProcedureStepEndTime = '121500'
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.ReferencedImageSequence = [
        Dataset() for _ in refs]
    for item, (cls, inst) in zip(series.ReferencedImageSequence, refs):
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = inst
    ds.PerformedSeriesSequence = [series]
    return ds


@pytest.mark.parametrize('ts', [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                uids.EXPLICIT_VR_BIG_ENDIAN])
def test_mpps_create_then_set_to_completed(ts):
    with MPPSAE() as scp:
        scu = ae_module.ClientAE('MODALITY', supported_ts=[ts])
        scu.dcm_timeout = 5
        scu.add_scu(sopclass.mpps_scu)
        uid = generate_uid()
        refs = instances(2)
        with scu.request_association(remote(scp)) as assoc:
            mpps = assoc.get_scu(MPPS)()
            assert mpps.ctx.supported_ts == ts
            status, created = mpps.create(uid, mpps_attributes(), 1)
            assert status.is_success
            assert created.PatientName == 'MPPS^TEST'
            assert mpps.create(uid, mpps_attributes(), 2).status == 0x0111
            status, reply = sopclass.mpps_set_scu(assoc, mpps.ctx, uid, completed(refs), 3)
            assert status == 0x0000 and reply is None
            again = mpps.set(uid, completed(refs), 4)
            assert again.status == 0x0110
            assert 'may no longer be updated' in again.response.error_comment
            assert mpps.set(generate_uid(), completed(refs), 5).status == 0x0112
            # N-GET is not an operation of this SOP class.
            assert nservices.n_get_scu(assoc, mpps.ctx, uid, None, 6).status == 0x0211
    step = scp.steps[uid]
    assert step.PerformedProcedureStepStatus == 'COMPLETED'
    assert step.PerformedProcedureStepID == 'STEP1'
    assert step.ScheduledStepAttributesSequence[0].AccessionNumber == 'ACC1'
    images = step.PerformedSeriesSequence[0].ReferencedImageSequence
    assert [(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID) for i in images] == refs


def test_mpps_without_hooks_answers_unrecognized_operation():
    with ae_module.AE('BARE', 0, bind_address='127.0.0.1') as scp:
        scp.add_scp(sopclass.mpps_scp)
        scu = ae_module.ClientAE('MODALITY').add_scu(sopclass.mpps_scu)
        with scu.request_association(remote(scp)) as assoc:
            ctx = assoc.context_for(MPPS)
            result = sopclass.mpps_create_scu(assoc, ctx, generate_uid(), mpps_attributes(), 1)
    assert result.status == 0x0211 and result.status.is_failure
    assert result.response.error_comment == 'N-CREATE is not supported here'


# -- generic N services ------------------------------------------------------------------

PRINTER = '1.2.840.10008.5.1.1.16'  # Printer SOP Class (PS3.4 H.4.11): N-GET, N-EVENT-REPORT
PRINTER_INSTANCE = '1.2.840.10008.5.1.1.17'


class GenericAE(ae_module.AE):
    def __init__(self):
        super().__init__('GENERIC', 0, bind_address='127.0.0.1')
        self.dcm_timeout = 5
        self.calls = []
        self.add_scp(nservices.NServiceSCP([PRINTER, CT]))

    def on_receive_n_get(self, context, msg, ds):
        self.calls.append(('get', msg.requested_sop_instance_uid, msg.attribute_identifier_list))
        if msg.requested_sop_instance_uid != PRINTER_INSTANCE:
            return nservices.NO_SUCH_SOP_INSTANCE, None
        reply = Dataset()
        reply.PrinterStatus = 'NORMAL'
        reply.PrinterStatusInfo = 'NORMAL'
        reply.PrinterName = 'LASER'
        return 0x0000, reply

    def on_receive_n_set(self, context, msg, ds):
        self.calls.append(('set', msg.requested_sop_instance_uid, ds))
        raise EventHandlingError('read only')

    def on_receive_n_action(self, context, msg, ds):
        self.calls.append(('action', msg.action_type_id, ds))
        reply = Dataset()
        reply.PatientComments = f'did {msg.action_type_id}'
        return 0x0000, reply

    def on_receive_n_create(self, context, msg, ds):
        self.calls.append(('create', msg.affected_sop_instance_uid, ds))
        return statuses.SUCCESS  # a bare status is fine

    def on_receive_n_event_report(self, context, msg, ds):
        self.calls.append(('event', msg.event_type_id, ds))
        raise ValueError('a bug in the hook')


@pytest.fixture
def generic():
    with GenericAE() as srv:
        yield srv


def generic_client():
    scu = ae_module.ClientAE('N_SCU')
    scu.dcm_timeout = 5
    scu.add_scu(nservices.NServiceSCU, [PRINTER, CT])
    return scu


def test_generic_n_get_returns_the_requested_attributes(generic):
    with generic_client().request_association(remote(generic)) as assoc:
        ctx = assoc.context_for(PRINTER)
        status, ds = sopclass.n_get_scu(assoc, ctx, PRINTER_INSTANCE,
                                        [0x21100010, 'PrinterName'], 1)
        assert status.is_success
        assert ds.PrinterStatus == 'NORMAL' and ds.PrinterName == 'LASER'
        result = sopclass.n_get_scu(assoc, ctx, '1.2.3.4', None, 2)
        assert result == (0x0112, None)
        assert result.response.affected_sop_class_uid == PRINTER
        assert result.response.message_id_being_responded_to == 2
    assert generic.calls[0] == ('get', PRINTER_INSTANCE, [0x21100010, 0x21100030])
    assert generic.calls[1] == ('get', '1.2.3.4', None)


def test_generic_set_action_create_delete(generic):
    with generic_client().request_association(remote(generic)) as assoc:
        n = assoc.get_scu(CT)()
        modification = Dataset()
        modification.PatientName = 'NEW^NAME'
        status, reply = n.set('1.2.5', modification, 1)
        assert status == 0x0110 and reply is None
        info = Dataset()
        info.PatientID = 'X'
        status, reply = n.action('1.2.6', 42, info, 2)
        assert status.is_success and reply.PatientComments == 'did 42'
        created = n.create(None, info, 3)
        assert created.status.is_success and created.data_set is None
        assigned = created.response.affected_sop_instance_uid
        assert assigned and assigned.startswith('1.2.826.0.1.3680043')
        # No on_receive_n_delete hook: unrecognized operation.
        assert n.delete('1.2.7', 4).status == 0x0211
        # The association is still fine after every failure status.
        assert n.get('1.2.9', None, 5).status == 0x0112
    kinds = [call[0] for call in generic.calls]
    assert kinds == ['set', 'action', 'create', 'get']
    assert generic.calls[0][2].PatientName == 'NEW^NAME'
    assert generic.calls[1][:2] == ('action', 42) and generic.calls[1][2].PatientID == 'X'
    assert generic.calls[2][1] == assigned


def test_generic_hook_bug_aborts_only_that_association(generic):
    with pytest.raises(AssociationAbortedError):
        with generic_client().request_association(remote(generic)) as assoc:
            sopclass.n_event_report_scu(assoc, assoc.context_for(PRINTER), PRINTER_INSTANCE, 1,
                                        None, 1)
    with generic_client().request_association(remote(generic)) as assoc:
        assert sopclass.n_get_scu(assoc, assoc.context_for(PRINTER), PRINTER_INSTANCE,
                                  None, 1).status.is_success


def test_an_undecodable_request_data_set_answers_0110(generic):
    with generic_client().request_association(remote(generic)) as assoc:
        ctx = assoc.context_for(CT)
        rq = dimse.NActionRQMessage()
        rq.message_id = 9
        rq.sop_class_uid = CT
        rq.requested_sop_instance_uid = '1.2.8'
        rq.action_type_id = 1
        # Explicit VR little endian: (0028,0010) US with 3 bytes, which no US value has.
        rq.data_set = b'\x28\x00\x10\x00US\x03\x00abc\x00'
        assoc.send(rq, ctx.id)
        rsp, _ = assoc.receive()
    assert isinstance(rsp, dimse.NActionRSPMessage)
    assert rsp.status == 0x0110 and rsp.message_id_being_responded_to == 9
    assert generic.calls == []


def test_a_response_for_another_message_aborts_and_raises():
    class Liar(ae_module.AE):
        pass

    def lying_scp(asce, ctx, msg):
        rsp = dimse.NGetRSPMessage()
        rsp.message_id_being_responded_to = msg.message_id + 1
        rsp.status = 0
        asce.send(rsp, ctx.id)
    lying_scp.sop_classes = [PRINTER]

    with Liar('LIAR', 0, bind_address='127.0.0.1') as scp:
        scp.add_scp(lying_scp)
        with pytest.raises(DIMSEProcessingError):
            with generic_client().request_association(remote(scp)) as assoc:
                sopclass.n_get_scu(assoc, assoc.context_for(PRINTER), PRINTER_INSTANCE, None, 1)


# -- the data set codec ---------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize('ts', [uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
                                uids.EXPLICIT_VR_BIG_ENDIAN,
                                uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN])
def test_data_sets_round_trip_in_every_uncompressed_syntax(ts):
    ds = mpps_attributes()
    ds.NumberOfStudyRelatedInstances = 12
    raw = nservices.encode_data_set(ds, ts)
    back = nservices.decode_data_set(raw, ts)
    assert back == ds
    assert back.ScheduledStepAttributesSequence[0].AccessionNumber == 'ACC1'


@pytest.mark.unit
@pytest.mark.parametrize('raw, ts', [
    # an undefined length on a UN element with no sequence delimiter after it
    (b'\x10\x00\x10\x00UN\x00\x00\xff\xff\xff\xffabcd', uids.EXPLICIT_VR_LITTLE_ENDIAN),
    # a US value of 3 bytes
    (b'\x28\x00\x10\x00US\x03\x00abc', uids.EXPLICIT_VR_LITTLE_ENDIAN),
    # not a deflate stream
    (b'\xff\xff\xff\xff', uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN),
])
def test_a_malformed_data_set_is_a_dimse_error(raw, ts):
    with pytest.raises(DIMSEProcessingError, match='does not decode'):
        nservices.decode_data_set(raw, ts)


@pytest.mark.unit
def test_the_services_are_reachable_from_sopclass():
    assert sopclass.StorageCommitment.sop_classes == [SC]
    assert sopclass.storage_commitment_scu.sop_classes == [SC]
    assert sopclass.mpps_scp.sop_classes == [MPPS]
    assert sopclass.mpps_scu.sop_classes == [MPPS]
    constants = sopclass.StorageCommitment
    assert (constants.PROCESSING_FAILURE, constants.NO_SUCH_OBJECT_INSTANCE,
            constants.RESOURCE_LIMITATION, constants.REFERENCED_SOP_CLASS_NOT_SUPPORTED,
            constants.CLASS_OR_INSTANCE_CONFLICT, constants.DUPLICATE_TRANSACTION_UID) == (
        0x0110, 0x0112, 0x0213, 0x0122, 0x0119, 0x0131)


def test_one_scp_instance_serves_concurrent_associations(receiver):
    with CommitmentAE('COMMIT_SCP', report_to=remote(receiver)) as scp:
        errors = []

        def run(n):
            try:
                with client(f'SCU{n}').request_association(remote(scp)) as assoc:
                    for i in range(3):
                        assert assoc.get_scu(SC)(f'1.2.90.{n}.{i}', instances(1), i + 1) == 0
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 2)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        got = sorted(receiver.results.get(timeout=WAIT)[0] for _ in range(12))
    assert got == sorted(f'1.2.90.{n}.{i}' for n in range(4) for i in range(3))
