"""What the fuzz targets feed the library: inputs, mutators, the corpus and the budget.

Inputs are of three kinds: wire objects built at random with our own encoders (valid
by construction), the same with a few random edits aimed at the places a hostile peer
would lie (length fields, type bytes, truncation), and plain random bytes. The corpus
in ``fuzz/corpus/`` seeds the mutators and is replayed by ``test_fuzz_corpus.py``.
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import Callable, Dict, List, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pynetdicom2 import dimse, dimsecodec, pdu, uids
from pynetdicom2 import userdataitems as udi

CORPUS_DIR = pathlib.Path(__file__).resolve().parent / 'corpus'

# -- the budget ----------------------------------------------------------------------

#: Environment variable: run every target with this many examples (a long local run).
EXAMPLES_VARIABLE = 'PYNETDICOM2_FUZZ_EXAMPLES'

# CI draws the same examples every run (derandomize), like tests/conftest.py's profile.
settings.register_profile(
    'pynetdicom2-fuzz-ci', deadline=None, print_blob=True,
    derandomize=bool(os.environ.get('CI')),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
settings.register_profile('pynetdicom2-fuzz-long', settings.get_profile('pynetdicom2-fuzz-ci'))


def examples_override() -> int:
    """The example count asked for through ``PYNETDICOM2_FUZZ_EXAMPLES``, or 0."""
    value = os.environ.get(EXAMPLES_VARIABLE, '').strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f'{EXAMPLES_VARIABLE} must be a positive integer, not {value!r}')
    return int(value)


def budget(ci_examples: int, **kwargs) -> settings:
    """Hypothesis settings for one target: ``ci_examples`` on CI, more when asked.

    The CI counts are chosen so that every target together takes about a minute on
    two cores; ``PYNETDICOM2_FUZZ_EXAMPLES=N`` gives every target N examples (and
    selects the ``pynetdicom2-fuzz-long`` profile).
    """
    override = examples_override()
    profile = settings.get_profile('pynetdicom2-fuzz-long' if override
                                   else 'pynetdicom2-fuzz-ci')
    return settings(profile, max_examples=override or ci_examples, **kwargs)


# -- valid values --------------------------------------------------------------------

KNOWN_UIDS = [uids.VERIFICATION_SOP_CLASS, uids.CT_IMAGE_STORAGE,
              uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.EXPLICIT_VR_LITTLE_ENDIAN,
              uids.EXPLICIT_VR_BIG_ENDIAN, '1.2.840.10008.3.1.1.1',
              uids.STUDY_ROOT_FIND_SOP_CLASS, uids.JPEG_BASELINE_PROCESS_1]
UIDS = st.one_of(st.sampled_from(KNOWN_UIDS),
                 st.from_regex(re.compile(r'[12](\.(0|[1-9][0-9]{0,8})){1,6}'), fullmatch=True))
AE_TITLES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                  blacklist_characters='\\'), min_size=1, max_size=16)
SHORT_BYTES = st.binary(max_size=24)


def sub_items() -> st.SearchStrategy:
    """Any user information sub-item, with valid values."""
    return st.one_of(
        st.builds(udi.MaximumLengthSubItem, st.integers(0, 0xFFFFFFFF)),
        st.builds(udi.ImplementationClassUIDSubItem, UIDS),
        st.builds(udi.AsynchronousOperationsWindowSubItem,
                  st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
        st.builds(udi.ScpScuRoleSelectionSubItem, UIDS, st.integers(0, 1), st.integers(0, 1)),
        st.builds(udi.ImplementationVersionNameSubItem, AE_TITLES),
        st.builds(udi.SOPClassExtendedNegotiationSubItem, UIDS, SHORT_BYTES),
        st.builds(udi.SOPClassCommonExtendedNegotiationSubItem, UIDS, UIDS,
                  st.lists(UIDS, max_size=3)),
        st.builds(udi.UserIdentityNegotiationSubItem, SHORT_BYTES, SHORT_BYTES,
                  st.just(2), st.integers(0, 1)),
        st.builds(udi.UserIdentityNegotiationSubItem, SHORT_BYTES, st.just(b''),
                  st.integers(1, 5), st.integers(0, 1)),
        st.builds(udi.UserIdentityNegotiationSubItemAc, SHORT_BYTES),
        st.builds(udi.GenericUserDataSubItem,
                  st.integers(0, 0xFF).filter(lambda t: t not in udi.SUB_ITEM_TYPES),
                  SHORT_BYTES),
    )


def context_ids() -> st.SearchStrategy:
    return st.integers(0, 127).map(lambda n: 2 * n + 1)


def rq_contexts() -> st.SearchStrategy:
    return st.builds(pdu.PresentationContextItemRQ, context_ids(),
                     st.builds(pdu.AbstractSyntaxSubItem, UIDS),
                     st.lists(st.builds(pdu.TransferSyntaxSubItem, UIDS), min_size=1,
                              max_size=3))


def ac_contexts() -> st.SearchStrategy:
    return st.builds(pdu.PresentationContextItemAC, context_ids(), st.integers(0, 4),
                     st.one_of(st.none(), st.builds(pdu.TransferSyntaxSubItem, UIDS)))


def user_information() -> st.SearchStrategy:
    return st.builds(pdu.UserInformationItem, st.lists(sub_items(), max_size=6))


@st.composite
def associate_pdus(draw, cls=None) -> pdu.PDU:
    """A-ASSOCIATE-RQ or -AC with random titles, contexts and user information."""
    cls = cls or draw(st.sampled_from([pdu.AAssociateRqPDU, pdu.AAssociateAcPDU]))
    contexts = rq_contexts() if cls is pdu.AAssociateRqPDU else ac_contexts()
    items = []
    if draw(st.booleans()):
        items.append(pdu.ApplicationContextItem(draw(UIDS)))
    items += draw(st.lists(contexts, max_size=4))
    if draw(st.booleans()):
        items.append(draw(user_information()))
    return cls(draw(AE_TITLES), draw(AE_TITLES), items, draw(st.sampled_from([1, 1, 2, 3])))


def pdata_pdus() -> st.SearchStrategy:
    return st.builds(pdu.PDataTfPDU, st.lists(
        st.builds(pdu.PresentationDataValueItem, context_ids(),
                  st.binary(min_size=1, max_size=40)), min_size=1, max_size=4))


def pdus() -> st.SearchStrategy:
    """Any PDU, valid by construction."""
    return st.one_of(
        associate_pdus(),
        st.builds(pdu.AAssociateRjPDU, st.integers(1, 2), st.integers(1, 3),
                  st.integers(0, 7)),
        pdata_pdus(),
        st.builds(pdu.AReleaseRqPDU), st.builds(pdu.AReleaseRpPDU),
        st.builds(pdu.AAbortPDU, st.sampled_from([0, 2]), st.integers(0, 6)),
    )


def items() -> st.SearchStrategy:
    """Any item or sub-item of an A-ASSOCIATE PDU, or a PDV item."""
    return st.one_of(
        st.builds(pdu.ApplicationContextItem, UIDS),
        st.builds(pdu.AbstractSyntaxSubItem, UIDS),
        st.builds(pdu.TransferSyntaxSubItem, UIDS),
        rq_contexts(), ac_contexts(), user_information(), sub_items(),
        st.builds(pdu.PresentationDataValueItem, context_ids(),
                  st.binary(min_size=1, max_size=40)))


# -- DIMSE messages --------------------------------------------------------------------

def _value_for(vr: str) -> st.SearchStrategy:
    if vr == 'UI':
        return UIDS
    if vr in ('US',):
        return st.integers(0, 0xFFFF)
    if vr == 'UL':
        return st.integers(0, 0xFFFFFFFF)
    if vr == 'AE':
        return AE_TITLES
    if vr == 'AT':
        return st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=3)
    if vr == 'IS':
        return st.integers(0, 999).map(str)
    return st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A), max_size=12)


_KEYWORD_VR = {keyword: vr for vr, keyword in dimsecodec.COMMAND_ELEMENTS.values()}
_PROPERTY_FOR = {
    'MessageID': 'message_id', 'MessageIDBeingRespondedTo': 'message_id_being_responded_to',
    'AffectedSOPClassUID': 'affected_sop_class_uid',
    'RequestedSOPClassUID': 'requested_sop_class_uid', 'Status': 'status',
    'Priority': 'priority', 'AffectedSOPInstanceUID': 'affected_sop_instance_uid',
    'RequestedSOPInstanceUID': 'requested_sop_instance_uid',
    'MoveDestination': 'move_destination',
    'MoveOriginatorApplicationEntityTitle': 'move_originator_aet',
    'MoveOriginatorMessageID': 'move_originator_message_id',
    'NumberOfRemainingSuboperations': 'num_of_remaining_sub_ops',
    'NumberOfCompletedSuboperations': 'num_of_completed_sub_ops',
    'NumberOfFailedSuboperations': 'num_of_failed_sub_ops',
    'NumberOfWarningSuboperations': 'num_of_warning_sub_ops',
    'EventTypeID': 'event_type_id', 'ActionTypeID': 'action_type_id',
    'ErrorComment': 'error_comment', 'ErrorID': 'error_id',
}


@st.composite
def dimse_messages(draw, with_data: bool = True) -> dimse.DIMSEMessage:
    """One of the 23 DIMSE messages with a random subset of its elements set."""
    cls = draw(st.sampled_from(sorted(set(dimse.MESSAGE_TYPE.values()),
                                      key=lambda c: c.command_field)))
    msg = cls()
    for keyword in cls.command_fields:
        prop = _PROPERTY_FOR.get(keyword)
        if prop is None or not draw(st.booleans()):
            continue
        setattr(msg, prop, draw(_value_for(_KEYWORD_VR[keyword])))
    if with_data and draw(st.booleans()):
        msg.data_set = draw(st.binary(max_size=300).map(lambda b: b[:len(b) & ~1]))
    return msg


def command_sets() -> st.SearchStrategy:
    """Encoded command sets: real messages, and random group-0000 elements."""
    raw_elements = st.lists(
        st.tuples(st.sampled_from(sorted(dimsecodec.COMMAND_ELEMENTS) + [0x0005, 0x9999]),
                  st.binary(max_size=16)), max_size=8).map(
        lambda elements: b''.join(
            (0).to_bytes(2, 'little') + tag.to_bytes(2, 'little')
            + len(value).to_bytes(4, 'little') + value for tag, value in elements))
    return st.one_of(dimse_messages(with_data=False).map(lambda m: m.encode_command_set()),
                     raw_elements)


# -- mutations -------------------------------------------------------------------------

LIES = st.one_of(st.integers(0, 16), st.sampled_from([0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                                      0x80000000, 0x10000]),
                 st.integers(0, 0xFFFFFFFF))


@st.composite
def mutate(draw, data: bytes) -> bytes:
    """``data`` with one to four edits: flips, inserts, deletes, lying lengths, cuts."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(['flip', 'insert', 'delete', 'length16', 'length32',
                                       'type', 'truncate', 'duplicate']))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if action == 'flip' and out:
            out[at] ^= draw(st.integers(1, 255))
        elif action == 'insert':
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == 'delete':
            del out[at:at + draw(st.integers(1, 8))]
        elif action in ('length16', 'length32'):
            size = 2 if action == 'length16' else 4
            out[at:at + size] = (draw(LIES) & ((1 << (8 * size)) - 1)).to_bytes(size, 'big')
        elif action == 'type' and out:
            out[at] = draw(st.sampled_from([0x00, 0x01, 0x04, 0x07, 0x08, 0x10, 0x20, 0x21,
                                            0x30, 0x40, 0x50, 0x51, 0x58, 0xFF]))
        elif action == 'duplicate':
            end = draw(st.integers(at, len(out)))
            out[end:end] = out[at:end]
        else:
            del out[at:]
    return bytes(out)


def encoded(objects: st.SearchStrategy) -> st.SearchStrategy:
    """The encoding of each drawn wire object."""
    return objects.map(lambda obj: obj.encode())


def hostile(valid: st.SearchStrategy, corpus: Sequence[bytes] = (),
            max_random: int = 300) -> st.SearchStrategy:
    """Valid encodings, mutated ones (of those and of the corpus) and random bytes."""
    sources = [valid]
    if corpus:
        sources.append(st.sampled_from(list(corpus)))
    seed = st.one_of(*sources)
    return st.one_of(valid, seed.flatmap(mutate), st.binary(max_size=max_random),
                     *([st.sampled_from(list(corpus))] if corpus else []))


# -- the corpus ----------------------------------------------------------------------------

def parse_hex(text: str) -> bytes:
    """The bytes of a corpus file: hex digits, whitespace ignored, '#' starts a comment."""
    digits = ''.join(line.split('#', 1)[0] for line in text.splitlines())
    return bytes.fromhex(''.join(digits.split()))


def load_corpus(kind: str) -> Dict[str, bytes]:
    """Every input of ``fuzz/corpus/<kind>/``: ``*.hex`` (text) and ``*.bin`` (raw)."""
    found = {}
    folder = CORPUS_DIR / kind
    for path in sorted(folder.glob('*')):
        if path.suffix == '.hex':
            found[path.name] = parse_hex(path.read_text())
        elif path.suffix == '.bin':
            found[path.name] = path.read_bytes()
    return found


def corpus_values(kind: str) -> List[bytes]:
    return list(load_corpus(kind).values())


# -- decoders ------------------------------------------------------------------------------

#: Every item and sub-item decoder that reads from a stream.
ITEM_DECODERS: List[Callable] = [
    pdu.ApplicationContextItem.decode, pdu.AbstractSyntaxSubItem.decode,
    pdu.TransferSyntaxSubItem.decode, pdu.PresentationContextItemRQ.decode,
    pdu.PresentationContextItemAC.decode, pdu.UserInformationItem.decode,
    pdu.PresentationDataValueItem.decode, udi.decode_user_data_item,
    udi.GenericUserDataSubItem.decode,
    *(cls.decode for cls in udi.SUB_ITEM_TYPES.values()),
]
