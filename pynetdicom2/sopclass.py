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
