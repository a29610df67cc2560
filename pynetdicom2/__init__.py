"""pynetdicom2: a pure-Python, synchronous DICOM networking library on pydicom.

The names most scripts need are importable from here; the modules hold the rest:
``ae`` (application entities), ``sopclass`` (services), ``asceprovider``
(associations), ``dimse``, ``pdu``, ``statuses``, ``uids``, ``exceptions``.
"""

import logging

from pynetdicom2._version import __version__, __version_info__
from pynetdicom2.ae import AE, ClientAE, ClientStorageAE, StorageAE
from pynetdicom2.asceprovider import AssociationAcceptor, AssociationRequester
from pynetdicom2.commands import CMoveResponse, c_find, find, get, move, storage, store, verify
from pynetdicom2.fsm import PContextDef
from pynetdicom2.sopclass import (
    StorageCommitment, modality_work_list_scp, modality_work_list_scu, qr_find_scp, qr_find_scu,
    qr_get_scp, qr_get_scu, qr_move_scp, qr_move_scu, storage_commitment_scu, storage_scp,
    storage_scu, verification_scp, verification_scu)
from pynetdicom2.statuses import PROCESSING_FAILURE, SUCCESS, Status

# A library stays silent unless the application configures logging (Python's
# logging HOWTO, "Configuring Logging for a Library").
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    '__version__', '__version_info__',
    'AE', 'ClientAE', 'ClientStorageAE', 'StorageAE',
    'AssociationAcceptor', 'AssociationRequester', 'PContextDef',
    'CMoveResponse', 'c_find', 'find', 'get', 'move', 'storage', 'store', 'verify',
    'verification_scu', 'verification_scp', 'storage_scu', 'storage_scp',
    'qr_find_scu', 'qr_find_scp', 'qr_move_scu', 'qr_move_scp', 'qr_get_scu', 'qr_get_scp',
    'modality_work_list_scu', 'modality_work_list_scp', 'StorageCommitment',
    'storage_commitment_scu',
    'Status', 'SUCCESS', 'PROCESSING_FAILURE',
]
