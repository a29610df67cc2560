"""Readable renderings of the upper layer's PDUs, for the logs.

An A-ASSOCIATE-RQ/AC/RJ as a block of named fields (UIDs by name, never a passcode),
the accepted contexts and the largest PDV we may send, as DCMTK's tools print them with
``-v``/``-d``; and the ``TRACE`` level the upper layer logs every PDU at. No I/O: text in,
text out. DIMSE messages are rendered a layer up, in ``dimsedumps``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional

from pydicom.uid import UID

from pynetdicom2 import pdu, userdataitems
from pynetdicom2.exceptions import AssociationRejectedError

__all__ = ['TRACE', 'uid_name', 'block', 'associate_rq', 'associate_ac', 'associate_rj',
           'accepted_contexts', 'max_send_pdv']

#: Below DEBUG: every PDU's repr and every state-machine transition (``-ll trace``).
TRACE = 5
logging.addLevelName(TRACE, 'TRACE')

_RULE = '=' * 20

# Presentation context results, PS3.8 9.3.3.2.
_CONTEXT_RESULTS = {0: 'Accepted', 1: 'Rejected by the user',
                    2: 'Rejected (no reason)', 3: 'Rejected: abstract syntax not supported',
                    4: 'Rejected: transfer syntaxes not supported'}

# User Identity Type, PS3.7 D.3.3.7.1.
_IDENTITY_TYPES = {1: 'username', 2: 'username and passcode', 3: 'Kerberos service ticket',
                   4: 'SAML assertion', 5: 'JSON Web Token'}


def uid_name(uid: Optional[str]) -> str:
    """``'Verification SOP Class (1.2.840.10008.1.1)'``, or the bare UID when unknown."""
    if not uid:
        return '(none)'
    name = UID(uid).name
    return uid if name == uid else f'{name} ({uid})'


def _sub_items(assoc_pdu, cls) -> list:
    user_info = assoc_pdu.user_information
    return [item for item in (user_info.user_data if user_info else []) if isinstance(item, cls)]


def _first(assoc_pdu, cls, attribute: str) -> Any:
    found = _sub_items(assoc_pdu, cls)
    return getattr(found[0], attribute) if found else None


def block(title: str, lines: Iterable[str]) -> str:
    """``title``'s lines between BEGIN and END rules, as DCMTK frames its dumps."""
    return '\n'.join([f'{_RULE} BEGIN {title} {_RULE}', *lines, f'{_RULE} END {title} {_RULE}'])


def _common(assoc_pdu, sent: bool) -> List[str]:
    whose = 'Our' if sent else 'Their'
    fields = [
        (f'{whose} Implementation Class UID', _first(
            assoc_pdu, userdataitems.ImplementationClassUIDSubItem, 'implementation_class_uid')),
        (f'{whose} Implementation Version Name', _first(
            assoc_pdu, userdataitems.ImplementationVersionNameSubItem,
            'implementation_version_name')),
        ('Application Context Name', uid_name(assoc_pdu.application_context_name)),
        ('Calling AE Title', assoc_pdu.calling_ae_title),
        ('Called AE Title', assoc_pdu.called_ae_title),
        (f'{whose} Max PDU Receive Size', _first(
            assoc_pdu, userdataitems.MaximumLengthSubItem, 'maximum_length_received')),
    ]
    return [f'{label + ":":<36}{"(none)" if value is None else value}'
            for label, value in fields]


def _roles(assoc_pdu) -> Dict[str, Any]:
    return {item.sop_class_uid: item
            for item in _sub_items(assoc_pdu, userdataitems.ScpScuRoleSelectionSubItem)}


def _role_text(item) -> str:
    return f'SCU role {item.scu_role}, SCP role {item.scp_role}'


def associate_rq(rq: pdu.AAssociateRqPDU, sent: bool) -> str:
    """An A-ASSOCIATE-RQ as a block: implementation, AE titles, application context,
    maximum PDU, each proposed context (abstract syntax and transfer syntaxes by name,
    role selection) and the user identity's type, never its passcode."""
    roles = _roles(rq)
    lines = _common(rq, sent)
    lines.append('Presentation Contexts:')
    for item in rq.presentation_context_items:
        sop_class = item.abs_sub_item.name if item.abs_sub_item else None
        lines.append(f'  Context ID {item.context_id} (Proposed)')
        lines.append(f'    Abstract Syntax: {uid_name(sop_class)}')
        if sop_class in roles:
            lines.append(f'    Proposed Role:   {_role_text(roles[sop_class])}')
        lines.append('    Proposed Transfer Syntax(es):')
        lines.extend(f'      {uid_name(ts.name)}' for ts in item.ts_sub_items)
    identities = _sub_items(rq, userdataitems.UserIdentityNegotiationSubItem)
    if identities:
        identity = identities[0]
        kind = _IDENTITY_TYPES.get(identity.user_identity_type,
                                   f'type {identity.user_identity_type}')
        # The passcode (and a ticket, assertion or token) is a secret: only its kind.
        asked = ', positive response requested' if identity.positive_response_req else ''
        lines.append(f'User Identity: {kind}{asked}')
    else:
        lines.append('User Identity: none')
    return block('A-ASSOCIATE-RQ', lines)


def associate_ac(ac: pdu.AAssociateAcPDU, rq: Optional[pdu.AAssociateRqPDU],
                 sent: bool) -> str:
    """An A-ASSOCIATE-AC as a block; ``rq`` names each context's abstract syntax (the
    AC does not carry it, PS3.8 9.3.3.2)."""
    proposed = {item.context_id: item for item in (rq.presentation_context_items if rq else [])}
    roles = _roles(ac)
    lines = _common(ac, sent)
    lines.append('Presentation Contexts:')
    for item in ac.presentation_context_items:
        asked = proposed.get(item.context_id)
        sop_class = asked.abs_sub_item.name if asked is not None and asked.abs_sub_item else None
        result = _CONTEXT_RESULTS.get(item.result_reason, f'result {item.result_reason}')
        lines.append(f'  Context ID {item.context_id} ({result})')
        if sop_class:
            lines.append(f'    Abstract Syntax: {uid_name(sop_class)}')
        if sop_class in roles:
            lines.append(f'    Accepted Role:   {_role_text(roles[sop_class])}')
        if item.result_reason == 0 and item.ts_sub_item is not None:
            lines.append(f'    Accepted Transfer Syntax: {uid_name(item.ts_sub_item.name)}')
    responses = _sub_items(ac, userdataitems.UserIdentityNegotiationSubItemAc)
    lines.append('User Identity Response: ' + ('present' if responses else 'none'))
    return block('A-ASSOCIATE-AC', lines)


def associate_rj(rj: pdu.AAssociateRjPDU) -> str:
    """An A-ASSOCIATE-RJ: its three values with their meanings."""
    error = AssociationRejectedError(rj.result, rj.source, rj.reason_diag)
    return block('A-ASSOCIATE-RJ', [f'Reason: {error.describe()}'])


def accepted_contexts(contexts: Dict[int, Any]) -> List[str]:
    """One line per accepted context: ID, SOP class and transfer syntax by name."""
    return [f'  Context {pc_id}: {uid_name(ctx.sop_class)}, {uid_name(ctx.supported_ts)}'
            for pc_id, ctx in sorted(contexts.items())]


def max_send_pdv(peer_max_pdu_length: int) -> str:
    """The largest PDV value we may send: the peer's maximum PDU length less the PDV
    item's length, context ID and control header (PS3.8 9.3.5.1), or 'unlimited'."""
    return str(peer_max_pdu_length - 6) if peer_max_pdu_length else 'unlimited'


