#!/usr/bin/env python3
"""A pynetdicom 3 requester that proposes extended negotiation and role selection and
prints, as one JSON line, what the acceptor's A-ASSOCIATE-AC answered.

Usage: negotiation_pynetdicom.py PORT CALLED_AET. It proposes Study Root FIND with SOP
Class Extended Negotiation (relational queries asked: byte 0 = 1), SOP Class Common
Extended Negotiation for CT, and role selection: Verification SCU+SCP, CT SCP only.
"""

from __future__ import annotations

import json
import sys

from pynetdicom import AE
from pynetdicom.pdu_primitives import (
    SCP_SCU_RoleSelectionNegotiation, SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
)
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification

FIND = StudyRootQueryRetrieveInformationModelFind


def role(uid, scu, scp):
    item = SCP_SCU_RoleSelectionNegotiation()
    item.sop_class_uid = uid
    item.scu_role = scu
    item.scp_role = scp
    return item


def main() -> int:
    port, called = int(sys.argv[1]), sys.argv[2]
    ae = AE(ae_title='PYNETDICOM_SCU')
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for uid in (FIND, Verification, CTImageStorage):
        ae.add_requested_context(uid)
    relational = SOPClassExtendedNegotiation()
    relational.sop_class_uid = FIND
    relational.service_class_application_information = b'\x01'
    common = SOPClassCommonExtendedNegotiation()
    common.sop_class_uid = CTImageStorage
    common.service_class_uid = '1.2.840.10008.4.2'
    ext_neg = [relational, role(Verification, True, True), role(CTImageStorage, False, True),
               common]
    assoc = ae.associate('127.0.0.1', port, ae_title=called, ext_neg=ext_neg)
    if not assoc.is_established:
        print(json.dumps({'established': False}))
        return 1
    answer = {
        'established': True,
        'extended': {str(uid): info.hex() if info is not None else None
                     for uid, info in assoc.acceptor.sop_class_extended.items()},
        'roles': {str(uid): [bool(item.scu_role), bool(item.scp_role)]
                  for uid, item in assoc.acceptor.role_selection.items()},
        'contexts': {str(cx.abstract_syntax): [bool(cx.as_scu), bool(cx.as_scp)]
                     for cx in assoc.accepted_contexts},
    }
    assoc.release()
    print(json.dumps(answer))
    return 0


if __name__ == '__main__':
    sys.exit(main())
