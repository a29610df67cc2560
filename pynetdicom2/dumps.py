"""The log renderings under their first name: an alias of ``pdudumps`` (the upper
layer's PDUs, used by the DUL) and ``dimsedumps`` (DIMSE messages, used by the
association layer), kept so that ``pynetdicom2.dumps`` imports as before."""

from pynetdicom2.dimsedumps import command, identifier, log_message, message_line
from pynetdicom2.pdudumps import (
    TRACE, accepted_contexts, associate_ac, associate_rj, associate_rq, max_send_pdv,
    uid_name)

__all__ = ['TRACE', 'associate_rq', 'associate_ac', 'associate_rj', 'command',
           'message_line', 'identifier', 'accepted_contexts', 'max_send_pdv', 'log_message',
           'uid_name']
