"""C-CANCEL against pynetdicom: their SCU cancelling our SCP, our SCU cancelling theirs."""

from __future__ import annotations

import json
import pathlib
import time

from pydicom.dataset import Dataset

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from tests.peers import process_output, require_pynetdicom, run_tool, start_pynetdicom_peer

SCRIPT = pathlib.Path(__file__).resolve().parent / 'peers' / 'cancel_pynetdicom.py'


class ManyMatches(ae_module.AE):
    """Yields 10 000 matches; records how many were produced before the cancel."""

    produced = 0

    def on_receive_find(self, context, ds):
        ManyMatches.produced = 0
        for number in range(10000):
            match = Dataset()
            match.QueryRetrieveLevel = 'STUDY'
            match.StudyInstanceUID = f'1.2.3.{number}'
            ManyMatches.produced += 1
            yield match, 0xFF00
            time.sleep(0.002)


def test_pynetdicom_scu_cancels_our_find_and_the_association_stays_usable():
    python = require_pynetdicom()
    server = ManyMatches('CANCEL_SCP', 0, bind_address='127.0.0.1')
    server.add_scp(sopclass.verification_scp).add_scp(sopclass.qr_find_scp)
    with server:
        result = run_tool([python, str(SCRIPT), '--scu', '--port',
                           str(server.local_ae.port), '--called-aet', 'CANCEL_SCP'])
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome['final'] == 0xFE00
    assert outcome['echo'] == 0x0000
    assert 5 <= outcome['matches'] < 10000
    assert ManyMatches.produced < 10000


def test_our_scu_cancels_a_pynetdicom_find():
    with start_pynetdicom_peer(['--scp'], script=SCRIPT) as (proc, port):
        scu = ae_module.ClientAE('CANCEL_SCU')
        scu.add_scu(sopclass.qr_find_scu, [uids.STUDY_ROOT_FIND_SOP_CLASS])
        scu.add_scu(sopclass.verification_scu)
        scu.dcm_timeout = 10
        remote = {'aet': 'CANCEL_SCP', 'address': '127.0.0.1', 'port': port}
        query = Dataset()
        query.QueryRetrieveLevel = 'STUDY'
        query.StudyInstanceUID = ''
        with scu.request_association(remote) as assoc:
            responses = assoc.get_scu(uids.STUDY_ROOT_FIND_SOP_CLASS)(query, 3)
            received = [next(responses) for _ in range(5)]
            responses.close()                      # sends C-CANCEL-RQ, drains to the end
            assert all(status.is_pending for _, status in received)
            assert assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(4).is_success
        deadline = time.monotonic() + 5
        while 'cancelled_after' not in process_output(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 'cancelled_after' in process_output(proc)
