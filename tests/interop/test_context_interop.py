"""Handlers that know their association, against real peers (issue 17).

DCMTK storescu, pynetdicom 3 and our own requester talk to an AE whose hooks read
``context.association``: stores routed into a folder per calling AE title from eight
concurrent associations, the user identity each sender presented, and the lifecycle
hooks when a real peer releases or aborts.
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import shutil
import subprocess
import textwrap
import threading
import time

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import sopclass, uids
from pynetdicom2.exceptions import AssociationAbortedError
from tests.peers import (
    dcmtk, describe, make_ct_file, require_pynetdicom, run_tool, start_pynetdicom_peer)

WAIT = 30  # seconds: the bound of every wait on another thread or process
DCMTK_TIMEOUTS = ['-to', '30', '-ta', '30', '-td', '60']


class RoutingAE(ae_module.AE):
    """Keeps each received instance under <root>/<calling AE title>/, records the
    associations it sees and their lifecycle."""

    def __init__(self, root: pathlib.Path, expected_concurrent: int = 0):
        super().__init__('ROUTER', 0, bind_address='127.0.0.1')
        self.add_scp(sopclass.verification_scp)
        self.add_scp(sopclass.storage_scp)
        self.dcm_timeout = 60
        self.root = root
        self.expected_concurrent = expected_concurrent
        self.open = 0
        self.most_open = 0
        self.events = []
        self.identities = {}
        self.changed = threading.Condition()

    def _record(self, *event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_events(self, count: int) -> list:
        deadline = time.monotonic() + WAIT
        with self.changed:
            while len(self.events) < count and time.monotonic() < deadline:
                self.changed.wait(0.1)
            return list(self.events)

    def on_association_established(self, info):
        with self.changed:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            self.events.append(('established', info))
            self.changed.notify_all()

    def on_association_released(self, info):
        with self.changed:
            self.open -= 1
        self._record('released', info)

    def on_association_aborted(self, info, source, reason, by_peer):
        with self.changed:
            self.open -= 1
        self._record('aborted', info, source, reason, by_peer)

    def on_association_timed_out(self, info):
        self._record('timed_out', info)

    def on_receive_echo(self, context):
        info = context.association
        self.identities[info.calling_ae_title] = info.user_identity
        return 0

    def on_receive_store(self, context, ds):
        info = context.association
        self.identities[info.calling_ae_title] = info.user_identity
        # Hold the first store until every expected association is open, so that
        # the routing below is proven with all of them established at once.
        deadline = time.monotonic() + WAIT
        with self.changed:
            while self.most_open < self.expected_concurrent and time.monotonic() < deadline:
                self.changed.wait(0.1)
        folder = self.root / info.calling_ae_title
        folder.mkdir(exist_ok=True)
        uid = pydicom.dcmread(ds, stop_before_pixels=True).SOPInstanceUID
        ds.seek(0)
        with open(folder / f'{uid}.dcm', 'wb') as out:
            shutil.copyfileobj(ds, out)
        return 0


def received(root: pathlib.Path) -> dict:
    return {folder.name: {pydicom.dcmread(p).SOPInstanceUID for p in folder.iterdir()}
            for folder in root.iterdir()}


def test_stores_routed_by_calling_ae_title_from_eight_concurrent_associations(tmp_path):
    root = tmp_path / 'routed'
    root.mkdir()
    senders = {f'DCMTK_{n}': 'dcmtk' for n in range(4)}
    senders.update({f'OURS_{n}': 'ours' for n in range(4)})
    files = {}
    for title in senders:
        folder = tmp_path / 'src' / title
        folder.mkdir(parents=True)
        files[title] = [make_ct_file(folder / f'{i}.dcm') for i in range(2)]

    def send(title):
        paths = [str(p) for p in files[title]]
        if senders[title] == 'dcmtk':
            return run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '-aet', title, '-aec',
                             'ROUTER', '127.0.0.1', str(port), *paths], timeout=120)
        scu = ae_module.ClientAE(title).add_scu(sopclass.storage_scu, [uids.CT_IMAGE_STORAGE])
        scu.dcm_timeout = 60
        remote = {'aet': 'ROUTER', 'address': '127.0.0.1', 'port': port}
        with scu.request_association(remote) as assoc:
            store = assoc.get_scu(uids.CT_IMAGE_STORAGE)
            codes = [int(store(path, n + 1)) for n, path in enumerate(paths)]
        return subprocess.CompletedProcess(title, 0 if codes == [0, 0] else 1, str(codes), '')

    with RoutingAE(root, expected_concurrent=len(senders)) as server:
        port = server.local_ae.port
        with concurrent.futures.ThreadPoolExecutor(len(senders)) as pool:
            results = list(pool.map(send, senders))
        for result in results:
            assert result.returncode == 0, describe(result)
        events = server.wait_events(2 * len(senders))
    assert server.most_open == len(senders)
    expected = {title: {pydicom.dcmread(p).SOPInstanceUID for p in paths}
                for title, paths in files.items()}
    assert received(root) == expected
    # Each association: established, then released, told with its own titles.
    by_title = {}
    for event in events:
        by_title.setdefault(event[1].calling_ae_title, []).append(event[0])
    assert by_title == {title: ['established', 'released'] for title in senders}
    assert all(e[1].called_ae_title == 'ROUTER' and e[1].peer_address == '127.0.0.1'
               for e in events)


def test_user_identity_from_dcmtk_storescu(tmp_path):
    path = make_ct_file(tmp_path / 'ct.dcm')
    with RoutingAE(tmp_path) as server:
        result = run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '-aet', 'WITH_ID',
                           '-usr', 'alice', '-pwd', 's3cret', '127.0.0.1',
                           str(server.local_ae.port), str(path)])
        assert result.returncode == 0, describe(result)
        server.wait_events(2)
    identity = server.identities['WITH_ID']
    assert (identity.user_identity_type, identity.primary_field,
            identity.secondary_field) == (2, 'alice', 's3cret')


PYNETDICOM_IDENTITY_SCU = textwrap.dedent('''
    import sys
    from pynetdicom import AE
    from pynetdicom.pdu_primitives import UserIdentityNegotiation
    from pynetdicom.sop_class import Verification

    port = int(sys.argv[1])
    ae = AE(ae_title='PYNETDICOM_ID')
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(Verification)
    item = UserIdentityNegotiation()
    item.user_identity_type = 1
    item.primary_field = b'bob'
    item.positive_response_requested = True
    assoc = ae.associate('127.0.0.1', port, ae_title='ROUTER', ext_neg=[item])
    if not assoc.is_established:
        sys.exit(2)
    status = assoc.send_c_echo()
    assoc.release()
    print('STATUS', status.Status)
''')


def test_user_identity_from_pynetdicom(tmp_path):
    python = require_pynetdicom()
    script = tmp_path / 'identity_scu.py'
    script.write_text(PYNETDICOM_IDENTITY_SCU)
    with RoutingAE(tmp_path) as server:
        server.on_user_identity = lambda asce, identity: b'hello ' + identity.primary_field.encode()
        result = run_tool([python, str(script), str(server.local_ae.port)])
        assert result.returncode == 0 and 'STATUS 0' in result.stdout, describe(result)
        events = server.wait_events(2)
    identity = server.identities['PYNETDICOM_ID']
    assert (identity.user_identity_type, identity.primary_field) == (1, 'bob')
    assert identity.positive_response_requested
    assert events[0][1].user_identity_response == 'hello bob'


def test_dcmtk_abort_seen_by_our_acceptor(tmp_path):
    path = make_ct_file(tmp_path / 'ct.dcm')
    with RoutingAE(tmp_path) as server:
        result = run_tool([dcmtk('storescu'), *DCMTK_TIMEOUTS, '-aet', 'ABORTER', '--abort',
                           '127.0.0.1', str(server.local_ae.port), str(path)])
        assert result.returncode == 0, describe(result)
        events = server.wait_events(2)
    assert [e[0] for e in events] == ['established', 'aborted']
    assert events[1][1].calling_ae_title == 'ABORTER'
    assert events[1][4] is True                          # the peer aborted
    assert events[1][2] in (0, 2)                        # source as DCMTK sent it


class Requester(ae_module.ClientAE):
    def __init__(self):
        super().__init__('OUR_SCU')
        self.add_scu(sopclass.verification_scu)
        self.dcm_timeout = 20
        self.events = []

    def on_association_established(self, info):
        self.events.append(('established', info))

    def on_association_released(self, info):
        self.events.append(('released', info))

    def on_association_aborted(self, info, source, reason, by_peer):
        self.events.append(('aborted', info, source, reason, by_peer))

    def on_association_timed_out(self, info):
        self.events.append(('timed_out', info))


@pytest.mark.parametrize('switch, expected', [
    ('--release-on-echo', 'released'), ('--abort-on-echo', 'aborted')])
def test_pynetdicom_acceptor_ending_the_association(switch, expected):
    with start_pynetdicom_peer([switch]) as (_, port):
        scu = Requester()
        remote = {'aet': 'PYNETDICOM', 'address': '127.0.0.1', 'port': port}
        try:
            with scu.request_association(remote) as assoc:
                assoc.get_scu(uids.VERIFICATION_SOP_CLASS)(1)
                assoc.receive()                          # what the peer does next
        except Exception as exc:                         # released or aborted
            outcome = exc
    assert [e[0] for e in scu.events] == ['established', expected]
    info = scu.events[0][1]
    assert (info.calling_ae_title, info.called_ae_title) == ('OUR_SCU', 'PYNETDICOM')
    assert info.is_requestor and info.peer_port == port
    if expected == 'aborted':
        assert isinstance(outcome, AssociationAbortedError) and scu.events[1][4] is True
