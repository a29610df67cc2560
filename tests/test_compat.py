"""Scripts written for pynetdicom2 0.9.7 and 0.9.8 run unchanged (API.md §2, §9)."""

from __future__ import annotations

import pydicom
from pydicom.dataset import Dataset

import pynetdicom2
from pynetdicom2 import applicationentity, asceprovider, dimsemessages, sopclass
from tests.peers import make_ct_file


class QRServer(applicationentity.AE):
    """A small archive: answers C-FIND with two studies, stores what it receives."""

    stored = []

    def on_receive_find(self, context, ds):
        for number in (1, 2):
            match = Dataset()
            match.QueryRetrieveLevel = ds.QueryRetrieveLevel
            match.PatientName = f'DOE^{number}'
            match.StudyInstanceUID = f'1.2.3.{number}'
            yield match, 0xFF00

    def on_receive_store(self, context, ds):
        QRServer.stored.append(pydicom.dcmread(ds))
        return 0


def test_a_097_style_script_runs_as_written():
    # 0.9.7: AE(..., bind_and_activate=False) entered with `with`, ae.timeout,
    # sopclass.<UID NAME>, top-level c_find.
    ae2 = QRServer('ARCHIVE', 0, bind_and_activate=False, bind_address='127.0.0.1')
    ae2.add_scp(sopclass.verification_scp).add_scp(sopclass.qr_find_scp)
    ae2.timeout = 5
    with ae2:
        port = ae2.local_ae.port
        remote = dict(aet='ARCHIVE', address='127.0.0.1', port=port)
        client = applicationentity.ClientAE('SCRIPT').add_scu(sopclass.verification_scu)
        client.timeout = 5
        with client.request_association(remote) as assoc:
            status = assoc.get_scu(sopclass.VERIFICATION_SOP_CLASS)(1)
        assert status.is_success
        query = Dataset()
        query.QueryRetrieveLevel = 'PATIENT'
        query.PatientName = '*'
        results = list(pynetdicom2.c_find(remote, 'SCRIPT', query))
    names = [str(ds.PatientName) for ds, status in results if status.is_pending]
    assert names == ['DOE^1', 'DOE^2']
    assert results[-1][1].is_success


def test_a_098_style_script_runs_as_written(tmp_path):
    ct = make_ct_file(tmp_path / 'ct.dcm')
    server = QRServer('ARCHIVE', 0, bind_address='127.0.0.1')
    server.add_scp(sopclass.verification_scp).add_scp(sopclass.qr_find_scp)
    server.add_scp(sopclass.storage_scp)
    server.dcm_timeout = 5
    QRServer.stored = []
    with server:
        remote = asceprovider.RemoteAEConfig('ARCHIVE', '127.0.0.1', server.local_ae.port)
        assert pynetdicom2.verify('SCRIPT', remote).is_success
        assert pynetdicom2.store('SCRIPT', remote, str(ct)).is_success
        assert pynetdicom2.store('SCRIPT', remote, pydicom.dcmread(ct)).is_success
        query = Dataset()
        query.QueryRetrieveLevel = 'STUDY'
        query.StudyInstanceUID = ''
        found = list(pynetdicom2.find('SCRIPT', remote, query))
    assert [ds.StudyInstanceUID for ds in found] == ['1.2.3.1', '1.2.3.2']
    assert len(QRServer.stored) == 2
    assert QRServer.stored[0].PixelData == pydicom.dcmread(ct).PixelData


def test_old_module_names_are_aliases_of_the_new():
    from pynetdicom2 import ae, dimse
    assert applicationentity.AE is ae.AE and applicationentity.ClientAE is ae.ClientAE
    assert dimsemessages.CStoreRQMessage is dimse.CStoreRQMessage
    assert asceprovider.PContextDef is pynetdicom2.PContextDef
    assert sopclass.VERIFICATION_SOP_CLASS == '1.2.840.10008.1.1'
    assert pynetdicom2.__version__ and pynetdicom2.__version_info__


def test_store_helper_sends_a_compressed_file_in_its_own_syntax(tmp_path):
    from pydicom.uid import RLELossless

    rle = make_ct_file(tmp_path / 'rle.dcm', transfer_syntax=RLELossless)
    server = QRServer('ARCHIVE', 0, bind_address='127.0.0.1',
                      supported_ts=[pynetdicom2.uids.EXPLICIT_VR_LITTLE_ENDIAN, RLELossless])
    server.add_scp(sopclass.storage_scp)
    QRServer.stored = []
    with server:
        remote = dict(aet='ARCHIVE', address='127.0.0.1', port=server.local_ae.port)
        assert pynetdicom2.store('SCRIPT', remote, str(rle)).is_success
    assert QRServer.stored[0].file_meta.TransferSyntaxUID == RLELossless
    assert QRServer.stored[0].PixelData == pydicom.dcmread(rle).PixelData
