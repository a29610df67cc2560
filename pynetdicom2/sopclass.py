"""DIMSE services: the callables an AE runs as SCU or SCP for its SOP classes.

A service is a callable with the attributes ``sop_classes`` (UIDs it serves) and
``store_in_file`` (whether incoming data sets stream into a file). As SCP it is called
``service(asce, ctx, msg)`` with a received request; as SCU, ``get_scu`` binds
``asce`` and ``ctx`` and the user supplies the rest. The services live in
``pynetdicom2.services``, one module per service class; this module gathers them.
"""

from pynetdicom2.uids import *  # noqa: F401,F403  (0.9.7 scripts read sopclass.<UID NAME>)
from pynetdicom2.services.common import (  # noqa: F401
    MessageDispatcher, MessageDispatcherSCP, MessageDispatcherSCU, receive_response,
    response_to, sop_classes, store_in_file)
from pynetdicom2.services.verification import verification_scp, verification_scu  # noqa: F401
from pynetdicom2.services.storage import storage_scp, storage_scu  # noqa: F401
from pynetdicom2.services.queryretrieve import (  # noqa: F401
    FIND_SOP_CLASSES, GET_SOP_CLASSES, MOVE_SOP_CLASSES, modality_work_list_scp,
    modality_work_list_scu, qr_find_scp, qr_find_scu, qr_get_scp, qr_get_scu, qr_move_scp,
    qr_move_scu)
from pynetdicom2.services.commitment import StorageCommitment, storage_commitment_scu  # noqa: F401
from pynetdicom2.services.nservices import (  # noqa: F401
    ModalityPerformedProcedureStepSCP, ModalityPerformedProcedureStepSCU, NServiceSCP,
    NServiceSCU, mpps_create_scu, mpps_scp, mpps_scu, mpps_set_scu, n_action_scu,
    n_create_scu, n_delete_scu, n_event_report_scu, n_get_scu, n_service_scp, n_set_scu)
