"""pduitems: the items inside the PDUs, importable from pdu as before the split.

The items' layouts and decode errors are tested in test_pdu.py through ``pdu``; here,
that both modules give the same objects and that the items log where they did.
"""

from __future__ import annotations

import io
import logging

from pynetdicom2 import pdu, pduitems


def test_every_item_name_is_the_same_object_in_pdu():
    for name in pduitems.__all__:
        assert getattr(pdu, name) is getattr(pduitems, name), name
        assert name in pdu.__all__, name


def test_a_rejected_context_with_a_broken_transfer_syntax_logs_under_pdu(caplog):
    # PS3.8 9.3.3.2: context 1, result 3 (abstract syntax not supported), and a
    # Transfer Syntax Sub-Item holding 'abc', not a UID: not significant, ignored.
    raw = bytes.fromhex('21 00 000b 01 00 03 00 40 00 0003') + b'abc'
    with caplog.at_level(logging.DEBUG, logger='pynetdicom2.pdu'):
        item = pduitems.PresentationContextItemAC.decode(io.BytesIO(raw))
    assert (item.context_id, item.result_reason, item.ts_sub_item) == (1, 3, None)
    assert [r.name for r in caplog.records
            if 'ignored the transfer syntax' in r.getMessage()] == ['pynetdicom2.pdu']
