"""Transfer-syntax negotiation: what we propose (compressed and native syntaxes of a
storage class apart, at most 128 contexts) and what our acceptor chooses, per SOP class
(the proposer's first choice for storage classes, ours for the others,
``ts_preferences`` per class or per service).

Everything is observed on the wire: the A-ASSOCIATE-RQ our acceptor received and the
A-ASSOCIATE-AC our requester got back, and the files a C-STORE left on disk.
"""

from __future__ import annotations

import pathlib
import sys

import pydicom
import pytest

from pynetdicom2 import ae as ae_module
from pynetdicom2 import asceprovider, sopclass, uids
from pynetdicom2.asceprovider import AssociationRequester, PContextDefList
from pynetdicom2.exceptions import NetDICOMError
from pynetdicom2.services import suboperations
from tests.test_transcode import PYDICOM_3, data_set_bytes, dcmcjpeg, need_codec

CT = uids.CT_IMAGE_STORAGE
MR = uids.MR_IMAGE_STORAGE
FIND = uids.STUDY_ROOT_FIND_SOP_CLASS
ECHO = uids.VERIFICATION_SOP_CLASS
ELE = uids.EXPLICIT_VR_LITTLE_ENDIAN
ILE = uids.IMPLICIT_VR_LITTLE_ENDIAN
EBE = uids.EXPLICIT_VR_BIG_ENDIAN
DEFLATED = uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
JPEG = uids.JPEG_BASELINE_PROCESS_1
RLE = uids.RLE_LOSSLESS
J2K = uids.JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY
TIMEOUT = 10


class RecordingStorageAE(ae_module.StorageAE):
    """A StorageAE keeping the presentation contexts of the requests it received."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_scp(sopclass.qr_find_scp)
        self.proposed = []

    def on_association_request(self, asce, assoc):
        self.proposed.append([(item.context_id, item.abs_sub_item.name,
                               [ts.name for ts in item.ts_sub_items])
                              for item in assoc.presentation_context_items])


def server(store_dir, supported_ts=None):
    srv = RecordingStorageAE(store_dir, 'STORE_SCP', 0, supported_ts=supported_ts,
                             bind_address='127.0.0.1')
    srv.dcm_timeout = TIMEOUT
    return srv


def remote(srv):
    return {'aet': 'STORE_SCP', 'address': '127.0.0.1', 'port': srv.local_ae.port}


def propose(srv, contexts):
    """Propose ``[(sop class, [syntaxes]), ...]`` as given; the answer per context:
    ``{context id: (result, accepted syntax or None)}``."""
    scu = ae_module.ClientAE('NEGOTIATE')
    scu.dcm_timeout = TIMEOUT
    wanted = {2 * n + 1: PContextDefList(2 * n + 1, sop_class, syntaxes)
              for n, (sop_class, syntaxes) in enumerate(contexts)}
    assoc = AssociationRequester(scu, scu.max_pdu_length, remote(srv), wanted)
    assoc.request()
    try:
        return {item.context_id: (item.result_reason,
                                  item.ts_sub_item.name if item.ts_sub_item else None)
                for item in assoc.ac.presentation_context_items}
    finally:
        assoc.release()


def every_syntax():
    return list(uids.ALL_TS)


# -- the acceptor chooses per SOP class ------------------------------------------------------

def test_storage_classes_keep_the_proposers_first_choice_others_our_order(tmp_path):
    with server(tmp_path, every_syntax()) as srv:
        answer = propose(srv, [(CT, [ILE, ELE]), (CT, [JPEG, ELE]), (FIND, [ILE, ELE]),
                               (ECHO, [JPEG, ILE, ELE])])
    # CT is stored as it arrives: the sender's first choice, so nothing is converted;
    # C-FIND and C-ECHO: our order (explicit VR little endian first).
    assert answer == {1: (0, ILE), 3: (0, JPEG), 5: (0, ELE), 7: (0, ELE)}


def test_the_proposers_first_choice_is_taken_only_among_ours(tmp_path):
    with server(tmp_path) as srv:          # default: the three uncompressed syntaxes
        answer = propose(srv, [(CT, [JPEG, RLE, EBE, ELE]), (CT, [JPEG, J2K])])
    assert answer == {1: (0, EBE), 3: (4, None)}   # result 4: no syntax in common


def test_prefer_proposed_ts_for_storage_false_uses_our_order(tmp_path):
    with server(tmp_path, [ELE, JPEG, ILE]) as srv:
        srv.prefer_proposed_ts_for_storage = False
        answer = propose(srv, [(CT, [ILE, JPEG, ELE])])
    assert answer == {1: (0, ELE)}


def test_ts_preferences_per_sop_class_is_our_order_for_that_class(tmp_path):
    with server(tmp_path, every_syntax()) as srv:
        srv.ts_preferences[CT] = [RLE, ELE]
        answer = propose(srv, [(CT, [ELE, ILE, RLE]), (CT, [JPEG]), (MR, [ILE, ELE])])
    # CT: only RLE and ELE, RLE preferred; MR still takes the proposer's first.
    assert answer == {1: (0, RLE), 3: (4, None), 5: (0, ILE)}


def test_ts_preferences_per_service_covers_every_class_it_serves(tmp_path):
    with server(tmp_path, every_syntax()) as srv:
        srv.ts_preferences[sopclass.storage_scp] = [ILE]
        answer = propose(srv, [(CT, [ELE, ILE]), (MR, [JPEG, ELE]), (FIND, [ILE, ELE])])
        assert srv.transfer_syntaxes_for(CT) == (ILE,)
        assert srv.transfer_syntaxes_for(FIND)[0] == ELE
    assert answer == {1: (0, ILE), 3: (4, None), 5: (0, ELE)}


def test_supported_ts_frozenset_of_098_still_decides_what_is_accepted(tmp_path):
    with server(tmp_path) as srv:
        srv.supported_ts = frozenset([ILE])
        answer = propose(srv, [(CT, [ELE, ILE]), (ECHO, [ELE])])
    assert answer == {1: (0, ILE), 3: (4, None)}


# -- what we propose -----------------------------------------------------------------------

def test_a_storage_class_with_mixed_syntaxes_is_proposed_twice(tmp_path):
    scu = ae_module.ClientAE('SCU', supported_ts=[ELE, ILE, JPEG, RLE])
    scu.add_scu(sopclass.storage_scu, [CT]).add_scu(sopclass.verification_scu)
    assert {i: (c.sop_class, list(c.supported_ts)) for i, c in
            scu.contexts_to_propose().items()} == {
        1: (CT, [ELE, ILE]), 3: (CT, [JPEG, RLE]), 5: (ECHO, [ELE, ILE, JPEG, RLE])}
    # context_def_list itself keeps one context per class (0.9.8).
    assert [(c.id, c.sop_class) for c in scu.context_def_list.values()] == [(1, CT), (3, ECHO)]
    with server(tmp_path / 'store', every_syntax()) as srv:
        scu.dcm_timeout = TIMEOUT
        with scu.request_association(remote(srv)) as assoc:
            accepted = {c.id: c.supported_ts for c in assoc.accepted_contexts.values()}
    assert srv.proposed == [[(1, CT, [ELE, ILE]), (3, CT, [JPEG, RLE]),
                             (5, ECHO, [ELE, ILE, JPEG, RLE])]]
    assert accepted == {1: ELE, 3: JPEG, 5: ELE}


@pytest.mark.unit
def test_native_only_contexts_are_proposed_as_registered():
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [CT, MR])
    contexts = scu.contexts_to_propose()
    assert contexts == scu.context_def_list
    assert [list(c.supported_ts) for c in contexts.values()] == [list(ae_module.default_ts)] * 2


@pytest.mark.unit
def test_ts_preferences_decide_what_is_proposed_for_their_class():
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, [CT, MR])
    scu.ts_preferences[MR] = [JPEG, ILE]
    assert [(c.sop_class, list(c.supported_ts)) for c in scu.contexts_to_propose().values()] \
        == [(CT, list(ae_module.default_ts)), (MR, [JPEG]), (MR, [ILE])]


@pytest.mark.unit
def test_split_contexts_stop_at_128_the_later_classes_share_one():
    classes = list(uids.STORAGE_SOP_CLASSES)[:100]
    scu = ae_module.ClientAE('SCU', supported_ts=[ELE, JPEG])
    scu.add_scu(sopclass.storage_scu, classes)
    contexts = scu.contexts_to_propose()
    assert len(contexts) == 128 and list(contexts) == list(range(1, 256, 2))
    syntaxes = [(c.sop_class, list(c.supported_ts)) for c in contexts.values()]
    assert syntaxes[:4] == [(classes[0], [ELE]), (classes[0], [JPEG]),
                            (classes[1], [ELE]), (classes[1], [JPEG])]
    assert syntaxes[55] == (classes[27], [JPEG])          # 28 classes split ...
    assert syntaxes[56:] == [(uid, [ELE, JPEG]) for uid in classes[28:]]  # ... 72 do not


@pytest.mark.unit
def test_more_than_128_classes_still_raise_the_clear_error():
    classes = list(uids.STORAGE_SOP_CLASSES)[:129]
    scu = ae_module.ClientAE('SCU').add_scu(sopclass.storage_scu, classes)
    with pytest.raises(NetDICOMError, match='at most 128'):
        scu.contexts_to_propose(sop_classes=classes)
    with pytest.raises(NetDICOMError, match='at most 128'):
        asceprovider.number_contexts((uid, [[ELE]]) for uid in classes)


@pytest.mark.unit
def test_syntax_groups_keep_each_kinds_order():
    assert asceprovider.syntax_groups([JPEG, ELE, RLE, DEFLATED, JPEG]) == [
        [JPEG, RLE], [ELE, DEFLATED]]
    assert asceprovider.syntax_groups([ILE, ELE]) == [[ILE, ELE]]


# -- end to end: a JPEG file from our SCU -----------------------------------------------------

@pytest.fixture
def jpeg_file(tmp_path):
    from tests.peers import make_ct_file
    return dcmcjpeg(make_ct_file(tmp_path / 'ct.dcm'), tmp_path / 'jpeg.dcm')


def store_jpeg(store_dir, jpeg_file, server_ts):
    scu = ae_module.ClientAE('SCU', supported_ts=[ELE, ILE, JPEG])
    scu.add_scu(sopclass.storage_scu, [CT])
    scu.dcm_timeout = TIMEOUT
    with server(store_dir, server_ts) as srv:
        with scu.request_association(remote(srv)) as assoc:
            accepted = sorted(c.supported_ts for c in assoc.accepted_contexts.values())
            status = assoc.get_scu(CT)(str(jpeg_file), 1)
    assert int(status) == 0
    [stored] = pathlib.Path(store_dir).glob('*.dcm')
    return accepted, stored


def test_a_jpeg_goes_as_it_is_to_a_peer_taking_jpeg(tmp_path, jpeg_file):
    accepted, stored = store_jpeg(tmp_path / 'store', jpeg_file, every_syntax())
    assert accepted == [ELE, JPEG]
    original, got = pydicom.dcmread(jpeg_file), pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == JPEG
    assert got.PixelData == original.PixelData        # the bytes as they were


def test_a_jpeg_is_decompressed_for_a_peer_taking_only_native_data(tmp_path, jpeg_file):
    need_codec(JPEG)
    accepted, stored = store_jpeg(tmp_path / 'store', jpeg_file, None)
    assert accepted == [ELE]                          # the JPEG context: result 4
    got = pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == ELE
    assert got.PixelData == pydicom.dcmread(jpeg_file).pixel_array.tobytes()


# -- the C-MOVE sub-association -----------------------------------------------------------

def test_move_sub_association_proposes_a_compressed_syntax_apart(tmp_path, jpeg_file):
    from tests.peers import make_ct_file
    plain = make_ct_file(tmp_path / 'plain.dcm')
    implicit = make_ct_file(tmp_path / 'implicit.dcm', transfer_syntax=ILE)
    instances = [suboperations.describe(str(p)) for p in (jpeg_file, plain, implicit)]
    contexts = suboperations.move_contexts(instances)
    assert [(c.id, c.sop_class, list(c.supported_ts)) for c in contexts.values()] == [
        (1, CT, [JPEG]), (3, CT, [ELE, ILE, EBE, DEFLATED]), (5, CT, [ILE, ELE, EBE, DEFLATED])]


# -- the tools' switches (DCMTK 3.6.7's meanings) -------------------------------------------

@pytest.mark.unit
def test_switches_name_dcmtks_syntaxes():
    from pynetdicom2.apps import syntaxes
    local = [ELE, EBE] if sys.byteorder == 'little' else [EBE, ELE]
    assert syntaxes.syntaxes_for('=') == local + [ILE]
    assert syntaxes.syntaxes_for('e') == [ELE, EBE, ILE]
    assert syntaxes.syntaxes_for('b') == [EBE, ELE, ILE]
    assert syntaxes.syntaxes_for('i') == [ILE]
    assert syntaxes.syntaxes_for('d') == [DEFLATED] + local + [ILE]
    assert syntaxes.syntaxes_for('r') == [RLE] + local + [ILE]
    assert syntaxes.syntaxes_for('s')[0] == \
        uids.JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION_PROCESS_14_SELECTION_VALUE_1
    assert syntaxes.syntaxes_for('y')[0] == JPEG
    assert syntaxes.syntaxes_for('v')[0] == J2K
    assert syntaxes.syntaxes_for('t')[0] == uids.JPEG_LS_LOSSLESS_IMAGE_COMPRESSION


@pytest.mark.unit
def test_tools_take_the_switches_of_their_dcmtk_namesakes():
    from pynetdicom2.apps import findscu, getscu, movescu, qrscp, storescp, storescu
    parse = {'storescu': lambda *a: storescu.build_parser().parse_args([*a, 'h', '1', 'f']),
             'findscu': lambda *a: findscu.build_parser().parse_args([*a, 'h', '1']),
             'getscu': lambda *a: getscu.build_parser().parse_args([*a, 'h', '1']),
             'movescu': lambda *a: movescu.build_parser().parse_args([*a, 'h', '1']),
             'storescp': lambda *a: storescp.build_parser().parse_args([*a, '1']),
             'qrscp': lambda *a: qrscp.build_parser().parse_args([*a, '1'])}
    assert parse['storescu']('-xr').propose == 'r'
    assert parse['storescu']('--propose-jpeg8').propose == 'y'
    assert parse['findscu']('-xd').propose == 'd'
    assert parse['getscu']('-xi', '+xs').propose == 'i'
    assert parse['getscu']('-xi', '+xs').accept == 's'
    assert parse['movescu']('-xb', '+xa').accept == 'a'
    assert parse['storescp']('+x=').accept == '='
    assert parse['qrscp']('--implicit').accept == 'i'
    for tool, switch in (('findscu', '-xr'), ('storescp', '-xe'), ('storescu', '+xe')):
        with pytest.raises(SystemExit):
            parse[tool](switch)


@pytest.mark.unit
def test_storescu_plan_puts_a_compressed_file_beside_the_uncompressed_context():
    from pynetdicom2.apps import storescu
    files = [storescu.Instance('j', CT, '1.9.1', JPEG, 10),
             storescu.Instance('r', CT, '1.9.2', RLE, 10),
             storescu.Instance('m', MR, '1.9.3', ILE, 10)]
    [(default, sent)] = storescu.plan_associations(files)
    assert [(c.sop_class, list(c.supported_ts)) for c in default.values()] == [
        (CT, [ELE, ILE]), (CT, [JPEG]), (CT, [RLE]), (MR, [ILE, ELE])]
    assert [f.path for f in sent] == ['j', 'r', 'm']
    [(rle, _)] = storescu.plan_associations(files, preferred=[RLE, ELE, EBE, ILE])
    # -xr, as DCMTK's storescu: RLE alone, then the uncompressed syntaxes.
    assert [(c.sop_class, list(c.supported_ts)) for c in rle.values()] == [
        (CT, [RLE]), (CT, [ELE, EBE, ILE]), (CT, [JPEG]), (MR, [RLE]), (MR, [ELE, EBE, ILE])]
    [(implicit, _)] = storescu.plan_associations(files, preferred=[ILE])
    assert [(c.sop_class, list(c.supported_ts)) for c in implicit.values()] == [
        (CT, [ILE]), (CT, [JPEG]), (CT, [RLE]), (MR, [ILE])]


# -- our tools end to end (subprocesses) ------------------------------------------------------

def stored(directory, uid):
    [path] = pathlib.Path(directory).rglob(f'{uid}.dcm')
    return path


def test_storescp_keeps_what_storescu_sends_and_plus_x_options_choose(tmp_path, jpeg_file):
    from tests.peers import describe, make_ct_file
    from tests.test_apps import our_server, run_app
    need_codec(JPEG)
    implicit = make_ct_file(tmp_path / 'implicit.dcm', transfer_syntax=ILE)
    jpeg_uid = pydicom.dcmread(jpeg_file).SOPInstanceUID
    implicit_uid = pydicom.dcmread(implicit).SOPInstanceUID
    with our_server('storescp', '-od', tmp_path / 'default') as (_, port):
        sent = run_app('storescu', '127.0.0.1', port, jpeg_file, implicit)
    assert sent.returncode == 0, describe(sent)
    # The default keeps the sender's first choice: both files arrive as they were.
    assert data_set_bytes(stored(tmp_path / 'default', jpeg_uid)) == data_set_bytes(jpeg_file)
    assert data_set_bytes(stored(tmp_path / 'default', implicit_uid)) == \
        data_set_bytes(implicit)
    with our_server('storescp', '+xe', '-od', tmp_path / 'little') as (_, port):
        sent = run_app('storescu', '127.0.0.1', port, jpeg_file, implicit)
    assert sent.returncode == 0, describe(sent)
    # +xe: uncompressed only, explicit VR little endian first (our order decides).
    for uid in (jpeg_uid, implicit_uid):
        assert pydicom.dcmread(stored(tmp_path / 'little', uid)).file_meta.TransferSyntaxUID \
            == ELE
    got = pydicom.dcmread(stored(tmp_path / 'little', jpeg_uid))
    assert got.PixelData == pydicom.dcmread(jpeg_file).pixel_array.tobytes()
    with our_server('storescp', '-od', tmp_path / 'implicit') as (_, port):
        sent = run_app('storescu', '-xi', '127.0.0.1', port, jpeg_file)
    assert sent.returncode == 0, describe(sent)
    # -xi proposes implicit VR only beside the file's own syntax, which storescp takes.
    assert data_set_bytes(stored(tmp_path / 'implicit', jpeg_uid)) == data_set_bytes(jpeg_file)


def test_getscu_retrieves_a_jpeg_from_qrscp_as_it_is_stored(tmp_path, jpeg_file):
    from tests.peers import describe, process_output
    from tests.test_apps import our_server, run_app
    ds = pydicom.dcmread(jpeg_file)
    keys = ['-k', 'QueryRetrieveLevel=STUDY', '-k', f'StudyInstanceUID={ds.StudyInstanceUID}']
    with our_server('qrscp', '--storage', tmp_path / 'pacs', '-aet', 'ARCHIVE') as (archive,
                                                                                  port):
        sent = run_app('storescu', '-aec', 'ARCHIVE', '127.0.0.1', port, jpeg_file)
        assert sent.returncode == 0, describe(sent)
        got = run_app('getscu', '-S', '-aec', 'ARCHIVE', '-od', tmp_path / 'got', *keys,
                      '127.0.0.1', port)
        assert got.returncode == 0, describe(got)
        plain = run_app('getscu', '-S', '+x=', '-aec', 'ARCHIVE', '-od', tmp_path / 'plain',
                        *keys, '127.0.0.1', port)
        if not PYDICOM_3:
            # pydicom 2 cannot decompress (transcode.py): the sub-operation fails, the
            # archive's log says why.
            assert plain.returncode == 1, describe(plain)
            assert '(0xB000) Warning' in plain.stdout
            assert 'received 0 instance(s)' in plain.stdout
            assert 'converting compressed pixel data needs pydicom 3' in \
                process_output(archive)
        else:
            assert plain.returncode == 0, describe(plain)
    archived = stored(tmp_path / 'pacs', ds.SOPInstanceUID)
    assert data_set_bytes(archived) == data_set_bytes(jpeg_file)
    # getscu's default: the archive sends the stored bytes, nothing converted.
    assert data_set_bytes(stored(tmp_path / 'got', ds.SOPInstanceUID)) == \
        data_set_bytes(jpeg_file)
    # +x=: uncompressed only; the archive decompresses for it.
    need_codec(JPEG)
    decompressed = pydicom.dcmread(stored(tmp_path / 'plain', ds.SOPInstanceUID))
    assert decompressed.file_meta.TransferSyntaxUID == ELE
    assert decompressed.PixelData == ds.pixel_array.tobytes()
