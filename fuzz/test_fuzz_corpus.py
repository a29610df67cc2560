"""Replay the corpus: every input of ``fuzz/corpus/`` through its target, with its verdict.

The corpus holds inputs worth keeping: the lies a hostile peer tells (lengths, types,
titles, command sets) and whole sessions. Each replays on every run, so a fixed bug
stays fixed; a new finding becomes a new file (see fuzz/README.rst).
"""

from __future__ import annotations

import io

import pytest

from fuzz.harness import serve_stream
from fuzz.strategies import ITEM_DECODERS, load_corpus
from pynetdicom2 import dimse, pdu
from pynetdicom2 import userdataitems as udi
from pynetdicom2.exceptions import DIMSEProcessingError, PDUProcessingError

pytestmark = pytest.mark.filterwarnings('ignore:.*for VR UI:UserWarning')

# The PDU corpus files that are valid; every other one is refused.
VALID_PDUS = {
    'associate-rq-echo.hex': pdu.AAssociateRqPDU,
    'associate-ac.hex': pdu.AAssociateAcPDU,
    'reject-values-out-of-range.hex': pdu.AAssociateRjPDU,  # values are the user's to judge
    'pdata-empty.hex': pdu.PDataTfPDU,  # no PDV: nothing to deliver, nothing to refuse
}

# The decoder each item file lies to.
ITEM_TARGETS = {
    'common-extended-related-lies.hex': udi.SOPClassCommonExtendedNegotiationSubItem.decode,
    'pdv-item-huge.hex': pdu.PresentationDataValueItem.decode,
    'presentation-context-rq-no-ts.hex': pdu.PresentationContextItemRQ.decode,
    'role-selection-uid-length-lies.hex': udi.ScpScuRoleSelectionSubItem.decode,
    'uid-with-letters.hex': pdu.AbstractSyntaxSubItem.decode,
    'user-identity-lengths-lie.hex': udi.UserIdentityNegotiationSubItem.decode,
    'user-info-nested-lie.hex': pdu.UserInformationItem.decode,
}

VALID_COMMANDS = {
    'echo-rq.hex': dimse.CEchoRQMessage,
    # The command set's extent comes from its fragments (PS3.8 E.1); a lying group
    # length is not used to read anything, so the message is understood.
    'group-length-lies.hex': dimse.CEchoRQMessage,
}

# What a storage AE sends back for each session: (PDU class, A-ABORT source, reason).
AC, DATA, RP = pdu.AAssociateAcPDU, pdu.PDataTfPDU, pdu.AReleaseRpPDU
STREAM_ANSWERS = {
    'rq-echo-release.hex': [AC, DATA, RP],
    'rq-echo-unknown-context.hex': [AC, (2, 0)],
    'rq-data-before-command.hex': [AC, (2, 0)],
    'rq-release-mid-dataset.hex': [AC, RP],
    'rq-abort-mid-dataset.hex': [AC],
    'two-associate-rqs.hex': [AC, (2, 2)],            # Evt6 in Sta6: AA-8, unexpected PDU
    'rq-then-ac.hex': [AC, (2, 2)],                   # Evt3 in Sta6: AA-8
    'rq-command-not-last-then-command.hex': [AC, (2, 0)],
}


def corpus(kind):
    items = sorted(load_corpus(kind).items())
    assert items, f'fuzz/corpus/{kind}/ is empty'
    return pytest.mark.parametrize('name, raw', items, ids=[name for name, _ in items])


@corpus('pdu')
def test_pdu_corpus(name, raw):
    expected = VALID_PDUS.get(name)
    if expected is None:
        with pytest.raises(PDUProcessingError):
            pdu.decode_pdu(raw)
    else:
        value = pdu.decode_pdu(raw)
        assert type(value) is expected
        assert pdu.decode_pdu(value.encode()) == value
    for cls in pdu.PDU_TYPES.values():
        try:
            cls.decode(raw)
        except PDUProcessingError:
            pass
    if raw[:1] == b'\x04':
        try:
            list(pdu.iter_pdvs(raw[6:]))
        except PDUProcessingError:
            pass


@corpus('item')
def test_item_corpus(name, raw):
    with pytest.raises(PDUProcessingError):
        ITEM_TARGETS[name](io.BytesIO(raw))
    for decoder in ITEM_DECODERS:
        try:
            decoder(io.BytesIO(raw))
        except PDUProcessingError:
            pass


@corpus('command')
def test_command_corpus(name, raw):
    expected = VALID_COMMANDS.get(name)
    if expected is None:
        with pytest.raises(DIMSEProcessingError):
            dimse.decode_message(raw)
    else:
        assert type(dimse.decode_message(raw)) is expected


@corpus('stream')
def test_stream_corpus(name, raw, tmp_path):
    served = serve_stream(raw, True, str(tmp_path))
    seen = [(p.source, p.reason_diag) if isinstance(p, pdu.AAbortPDU) else type(p)
            for p in served.pdus]
    assert seen == STREAM_ANSWERS[name]
    assert served.files == []
    if DATA in seen:
        assert [(type(m), m.status) for m in served.messages] == [(dimse.CEchoRSPMessage, 0)]


def test_every_corpus_file_has_a_verdict():
    assert set(load_corpus('stream')) == set(STREAM_ANSWERS)
    assert set(load_corpus('item')) == set(ITEM_TARGETS)
    assert set(VALID_PDUS) <= set(load_corpus('pdu'))
    assert set(VALID_COMMANDS) <= set(load_corpus('command'))
