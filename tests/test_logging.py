"""What the logs show (pynetdicom2.dumps and the tools' -v/-d): the association
requested, accepted with its contexts and released at INFO; each A-ASSOCIATE as a
readable block, each DIMSE command and each identifier at DEBUG; PDU reprs and
state-machine transitions only at TRACE; never a passcode.
"""

from __future__ import annotations

import logging
import re
import pathlib

import pytest
from pydicom.dataset import Dataset

from pynetdicom2 import AE, dumps, pdu, sopclass, uids, userdataitems, verify
from pynetdicom2.dimse import CEchoRSPMessage, CFindRQMessage
from pynetdicom2.transcode import encode_data_set
from tests.peers import describe, make_ct_file
from tests.test_apps import our_server, run_app

PASSCODE = 'Pa55-c0de-never-logged'


def _echo_server():
    return AE('SERVER', 0, bind_address='127.0.0.1').add_scp(sopclass.verification_scp)


def _lines(text: str, letter: str) -> list:
    return [line[3:] for line in text.splitlines() if line.startswith(f'{letter}: ')]


# -- the tools ------------------------------------------------------------------------

@pytest.mark.socket
def test_echoscu_verbose_shows_the_association_and_the_messages():
    server = _echo_server()
    with server:
        result = run_app('echoscu', '-v', '-aec', 'SERVER', '127.0.0.1', server.local_ae.port)
    assert result.returncode == 0, describe(result)
    info = _lines(result.stderr, 'I')
    assert info[0] == 'Requesting Association'
    assert info[1].startswith('Association Accepted (Max Send PDV: ')
    assert info[2].startswith('  Context 1: Verification SOP Class (1.2.840.10008.1.1), ')
    assert info[3:] == ['Sending Echo Request (MsgID 1)',
                        'Received Echo Response (MsgID 1, Success)',
                        'Releasing Association']
    # -v is not -d: no blocks, no PDU reprs, no state machine.
    assert not _lines(result.stderr, 'D') and 'Sta6' not in result.stderr


@pytest.mark.socket
def test_echoscu_debug_dumps_the_request_and_the_command_not_the_pdu_reprs():
    server = _echo_server()
    with server:
        result = run_app('echoscu', '-d', '-aet', 'MY_SCU', '-aec', 'SERVER', '127.0.0.1',
                         server.local_ae.port)
    assert result.returncode == 0, describe(result)
    debug = _lines(result.stderr, 'D')
    start = debug.index('==================== BEGIN A-ASSOCIATE-RQ ====================')
    block = debug[start:debug.index('==================== END A-ASSOCIATE-RQ ====================')]
    assert 'Calling AE Title:                   MY_SCU' in block
    assert 'Called AE Title:                    SERVER' in block
    assert '  Context ID 1 (Proposed)' in block
    assert '    Abstract Syntax: Verification SOP Class (1.2.840.10008.1.1)' in block
    assert '      Implicit VR Little Endian (1.2.840.10008.1.2)' in block
    assert '      Explicit VR Little Endian (1.2.840.10008.1.2.1)' in block
    assert 'User Identity: none' in block
    assert '    Accepted Transfer Syntax: Explicit VR Little Endian (1.2.840.10008.1.2.1)' \
        in debug
    assert 'Message Type: Echo Request' in debug
    assert 'Status: 0x0000 Success: Success' in debug
    assert 'Sta6' not in result.stderr and 'AAssociateRqPDU(' not in result.stderr


@pytest.mark.socket
def test_trace_level_keeps_the_pdus_and_the_state_machine():
    server = _echo_server()
    with server:
        result = run_app('echoscu', '-ll', 'trace', '-aec', 'SERVER', '127.0.0.1',
                         server.local_ae.port)
    assert result.returncode == 0, describe(result)
    trace = _lines(result.stderr, 'T')
    assert any(line.endswith('Sta5 + Evt3 -> AE-3 -> Sta6') for line in trace), result.stderr
    assert any('sending AAssociateRqPDU(' in line for line in trace)


@pytest.mark.socket
def test_no_passcode_in_any_log_line_of_either_end(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm', rows=8, cols=8)
    with our_server('storescp', '-d', '-od', tmp_path / 'in') as (proc, port):
        sent = run_app('storescu', '-d', '-usr', 'alice', '-pwd', PASSCODE, '127.0.0.1',
                       port, ct)
        server_log = _server_output(proc)
    assert sent.returncode == 0, describe(sent)
    assert 'User Identity: username and passcode' in _lines(sent.stderr, 'D')
    assert 'User Identity: username and passcode' in _lines(server_log, 'D')
    assert 'Sending Store Request (MsgID 1, CT Image Storage)' in _lines(sent.stderr, 'I')
    assert 'Received Store Request (MsgID 1, CT Image Storage)' in _lines(server_log, 'I')
    assert PASSCODE not in sent.stdout + sent.stderr
    assert PASSCODE not in server_log


def _server_output(proc) -> str:
    return ''.join(pathlib.Path(proc.logdir, name).read_text(errors='replace')
                   for name in ('stdout', 'stderr'))


@pytest.mark.socket
def test_storescp_verbose_logs_received_acknowledged_and_release(tmp_path):
    with our_server('storescp', '-v', '-od', tmp_path / 'in') as (proc, port):
        echoed = run_app('echoscu', '-aet', 'MODALITY', '127.0.0.1', port)
        assert echoed.returncode == 0, describe(echoed)
        log = _server_output(proc)
    info = _lines(log, 'I')
    received = [line for line in info if line.startswith('Association Received ')]
    assert len(received) == 1 and received[0].endswith(': MODALITY -> ANY-SCP'), log
    assert any(line.startswith('Association Acknowledged (Max Send PDV: ') for line in info)
    assert 'Received Echo Request (MsgID 1)' in info
    assert 'Sending Echo Response (MsgID 1, Success)' in info
    assert 'Received Association Release Request' in info


# -- the renderings ---------------------------------------------------------------------

def _rq(identity=None) -> pdu.AAssociateRqPDU:
    user = [userdataitems.MaximumLengthSubItem(16384),
            userdataitems.ImplementationClassUIDSubItem('1.2.3.4'),
            userdataitems.ScpScuRoleSelectionSubItem(uids.CT_IMAGE_STORAGE, 0, 1)]
    if identity is not None:
        user.append(identity)
    return pdu.AAssociateRqPDU('CALLED', 'CALLING', [
        pdu.ApplicationContextItem(uids.APPLICATION_CONTEXT_NAME),
        pdu.PresentationContextItemRQ(1, pdu.AbstractSyntaxSubItem(uids.CT_IMAGE_STORAGE),
                                      [pdu.TransferSyntaxSubItem('1.2.840.10008.1.2.4.50')]),
        pdu.PresentationContextItemRQ(3, pdu.AbstractSyntaxSubItem('1.2.840.10008.1.1'),
                                      [pdu.TransferSyntaxSubItem('1.2.840.10008.1.2')]),
        pdu.UserInformationItem(user)])


def test_the_request_block_names_roles_and_identity_type_without_the_secret():
    identity = userdataitems.UserIdentityNegotiationSubItem(
        'alice', PASSCODE, user_identity_type=2, positive_response_req=1)
    text = dumps.associate_rq(pdu.AAssociateRqPDU.decode(_rq(identity).encode()), sent=False)
    lines = text.splitlines()
    assert 'Their Implementation Class UID:     1.2.3.4' in lines
    assert 'Their Max PDU Receive Size:         16384' in lines
    assert '    Abstract Syntax: CT Image Storage (1.2.840.10008.5.1.4.1.1.2)' in lines
    assert '    Proposed Role:   SCU role 0, SCP role 1' in lines
    assert '      JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)' in lines
    assert 'User Identity: username and passcode, positive response requested' in lines
    assert PASSCODE not in text and 'alice' not in text


def test_the_accept_block_says_each_result_by_name():
    ac = pdu.AAssociateAcPDU('CALLED', 'CALLING', [
        pdu.ApplicationContextItem(uids.APPLICATION_CONTEXT_NAME),
        pdu.PresentationContextItemAC(1, 4, None),
        pdu.PresentationContextItemAC(3, 0, pdu.TransferSyntaxSubItem('1.2.840.10008.1.2')),
        pdu.UserInformationItem([userdataitems.MaximumLengthSubItem(0)])])
    lines = dumps.associate_ac(ac, _rq(), sent=True).splitlines()
    assert lines[lines.index('  Context ID 1 (Rejected: transfer syntaxes not supported)')
                 + 1] == '    Abstract Syntax: CT Image Storage (1.2.840.10008.5.1.4.1.1.2)'
    verification = lines.index('  Context ID 3 (Accepted)')
    assert lines[verification + 2] == \
        '    Accepted Transfer Syntax: Implicit VR Little Endian (1.2.840.10008.1.2)'
    assert dumps.max_send_pdv(0) == 'unlimited' and dumps.max_send_pdv(16384) == '16378'


def test_the_reject_block_says_the_reason():
    text = dumps.associate_rj(pdu.AAssociateRjPDU(1, 1, 7))
    assert 'Reason: result 1 (rejected-permanent), source 1 (' in text
    assert text.endswith('diagnostic 7 (called-AE-title-not-recognized)\n'
                         '==================== END A-ASSOCIATE-RJ ====================')


def test_a_command_and_its_identifier(caplog):
    rsp = CEchoRSPMessage()
    rsp.message_id_being_responded_to = 7
    rsp.sop_class_uid = '1.2.840.10008.1.1'
    rsp.status = 0x0211
    assert dumps.message_line('Received', rsp) == 'Received Echo Response (MsgID 7, Failure)'
    assert 'Status: 0x0211 Failure: ' in dumps.command(rsp)
    rq = CFindRQMessage()
    rq.message_id = 3
    rq.sop_class_uid = uids.STUDY_ROOT_FIND_SOP_CLASS
    identifier = Dataset()
    identifier.QueryRetrieveLevel = 'STUDY'
    identifier.PatientName = 'DOE^JOHN'
    rq.data_set = encode_data_set(identifier, '1.2.840.10008.1.2')
    logger = logging.getLogger('tests.test_logging')
    with caplog.at_level(logging.DEBUG, logger='tests.test_logging'):
        dumps.log_message(logger, 'Sending', rq, '1.2.840.10008.1.2')
    info, debug = caplog.records
    assert info.getMessage() == 'Sending Find Request (MsgID 3)'
    text = debug.getMessage()
    assert 'AffectedSOPClassUID: Study Root Query/Retrieve Information Model - FIND' in text
    # pydicom 2 writes the tag as "(0010, 0010)", pydicom 3 as "(0010,0010)".
    assert re.search(r"\(0010, ?0010\) Patient's Name", text) and 'DOE^JOHN' in text
    assert 'BEGIN IDENTIFIER' in text


@pytest.mark.socket
def test_the_library_logs_nothing_per_message_below_info(caplog):
    # The message lines are guarded: at WARNING nothing is rendered or recorded.
    server = _echo_server()
    with caplog.at_level(logging.WARNING, logger='pynetdicom2'):
        with server:
            verify('MY_SCU', dict(aet='SERVER', address='127.0.0.1',
                                  port=server.local_ae.port))
    assert not [r for r in caplog.records if r.name == 'pynetdicom2.dimse']


@pytest.mark.socket
def test_findscu_debug_shows_the_identifier_sent(tmp_path):
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (proc, port):
        found = run_app('findscu', '-d', '-S', '-aec', 'ARCHIVE', '-k',
                        'QueryRetrieveLevel=STUDY', '-k', 'PatientName=DOE*', '127.0.0.1', port)
    assert found.returncode == 0, describe(found)
    debug = _lines(found.stderr, 'D')
    start = debug.index('==================== BEGIN IDENTIFIER ====================')
    # pydicom 2 writes the tag as "(0008, 0052)", pydicom 3 as "(0008,0052)".
    assert re.match(r'\(0008, ?0052\) Query/Retrieve Level', debug[start + 1])
    assert debug[start + 1].endswith("CS: 'STUDY'")
    assert debug[start + 2].endswith("PN: 'DOE*'")
    assert 'Status: 0x0000 Success: Matching is complete' in debug
    assert 'Sending Find Request (MsgID 1)' in _lines(found.stderr, 'I')


@pytest.mark.socket
def test_a_rejection_is_logged_at_both_ends(caplog):
    server = _echo_server()
    server.allowed_called_aets = ['SERVER']
    with caplog.at_level(logging.DEBUG, logger='pynetdicom2.asceprovider'):
        with server:
            result = run_app('echoscu', '-v', '-aec', 'ELSEWHERE', '127.0.0.1',
                             server.local_ae.port)
    info = _lines(result.stderr, 'I')
    assert info[:2] == ['Requesting Association', 'Association Rejected'], result.stderr
    assert 'Reason: result 1 (rejected-permanent), source 1 (' in result.stderr
    assert 'diagnostic 7 (called-AE-title-not-recognized)' in result.stderr
    logged = [r.getMessage() for r in caplog.records]
    assert 'Association Rejected' in logged
    assert any(m.startswith('==================== BEGIN A-ASSOCIATE-RJ') and
               'diagnostic 7 (called-AE-title-not-recognized)' in m for m in logged)
