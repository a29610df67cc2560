"""P-DATA fragmentation (PS3.8 9.3.5 and Annex E): DIMSE messages in P-DATA-TF PDUs.

Outbound, a message's command set and data set are cut into fragments, one PDV per
P-DATA-TF PDU, for the peer's maximum length; inbound, a received P-DATA-TF is split
into its presentation data values. Bytes in, bytes out: no sockets, no messages.
"""

from __future__ import annotations

import struct

from pynetdicom2 import pdu

__all__ = ['PDataFragments']

_PDV_LENGTH = struct.Struct('>L')


class PDataFragments:
    """The presentation data values of one received P-DATA-TF, already validated.

    Iterating yields ``(context_id, message_control_header, fragment)`` one at a time,
    the fragment a view into the receive buffer, valid until the next read. PDVs are
    not gathered in a list: a PDU of thousands of tiny PDVs must not cost memory.
    """

    __slots__ = ('body', '_single')

    def __init__(self, body: memoryview) -> None:
        self.body = body
        self._single = None
        if len(body) >= 6 and _PDV_LENGTH.unpack_from(body)[0] == len(body) - 4:
            # One PDV filling the PDU, as most peers send: nothing else to check.
            self._single = (body[4], body[5], body[6:])
            return
        for _ in pdu.iter_pdvs(body):    # validate the whole PDU before anything is used
            pass

    def __iter__(self):
        if self._single is not None:
            return iter((self._single,))
        return pdu.iter_pdvs(self.body)
