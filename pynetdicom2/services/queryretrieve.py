"""Query/Retrieve (PS3.4 Annex C) and Modality Worklist (PS3.4 Annex K) services.

C-FIND, C-MOVE and C-GET as SCU and SCP. Each SCU call is a generator of the
responses (closing it early sends C-CANCEL-RQ); each SCP asks the AE's
``on_receive_find`` / ``on_receive_move`` / ``on_receive_get`` hook and runs the
C-STORE sub-operations of a retrieve.

This module gathers them under the import path 0.9.x scripts use; they live in
``pynetdicom2.services.find`` (C-FIND, worklist), ``pynetdicom2.services.retrieve``
(C-MOVE, C-GET) and ``pynetdicom2.services.identifiers`` (the identifier codec).
"""

from pynetdicom2.services.find import (  # noqa: F401
    FIND_SOP_CLASSES, modality_work_list_scp, modality_work_list_scu, qr_find_scp,
    qr_find_scu)
from pynetdicom2.services.identifiers import decode_identifier, encode_identifier  # noqa: F401
from pynetdicom2.services.retrieve import (  # noqa: F401
    GET_SOP_CLASSES, MOVE_SOP_CLASSES, qr_get_scp, qr_get_scu, qr_move_scp, qr_move_scu)

__all__ = [
    'FIND_SOP_CLASSES', 'MOVE_SOP_CLASSES', 'GET_SOP_CLASSES',
    'qr_find_scu', 'qr_find_scp', 'modality_work_list_scu', 'modality_work_list_scp',
    'qr_move_scu', 'qr_move_scp', 'qr_get_scu', 'qr_get_scp',
    'encode_identifier', 'decode_identifier',
]
