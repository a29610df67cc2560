#!/usr/bin/env python3
"""Micro-benchmarks of the codecs, to catch regressions: plain ``timeit``, one table.

PDU encode/decode (A-ASSOCIATE-RQ with 10 presentation contexts, P-DATA-TF with one
16 KiB PDV), command-set encode/decode (``dimsecodec.encode_command_set``,
``dimse.decode_message``) and fragmentation (``iter_pdu_batches``, the path the
association sends by, of a 16 MiB data set at 16 KiB and 1 MiB PDUs) and its inverse,
reassembly (``MessageAssembler``). Run ``python3 -m benchmarks.micro [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import timeit
from typing import Callable, List, Tuple

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pynetdicom2 import dimse, dimsecodec, pdu, reassembly, uids, userdataitems  # noqa: E402

CT = '1.2.840.10008.5.1.4.1.1.2'
SYNTAXES = [uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN,
            uids.EXPLICIT_VR_BIG_ENDIAN]


def associate_rq() -> pdu.AAssociateRqPDU:
    contexts = [pdu.PresentationContextItemRQ(
        2 * i + 1, pdu.AbstractSyntaxSubItem(f'{CT}.{i}' if i else CT),
        [pdu.TransferSyntaxSubItem(ts) for ts in SYNTAXES]) for i in range(10)]
    user = pdu.UserInformationItem([
        userdataitems.MaximumLengthSubItem(16384),
        userdataitems.ImplementationClassUIDSubItem('1.2.826.0.1.3680043.9.1'),
        userdataitems.ImplementationVersionNameSubItem('BENCH'),
    ])
    return pdu.AAssociateRqPDU('ANY-SCP', 'BENCH', [
        pdu.ApplicationContextItem('1.2.840.10008.3.1.1.1'), *contexts, user])


def store_rq(data_set=None) -> dimse.CStoreRQMessage:
    rq = dimse.CStoreRQMessage()
    rq.message_id = 7
    rq.affected_sop_class_uid = CT
    rq.affected_sop_instance_uid = '1.2.826.0.1.3680043.8.498.12345678901234567890'
    rq.priority = dimse.PRIORITY_MEDIUM
    rq.move_originator_aet = 'MOVER'
    rq.move_originator_message_id = 3
    rq.data_set = data_set if data_set is not None else b'\0' * 2
    return rq


def cases() -> List[Tuple[str, str, Callable[[], object], int]]:
    """(name, unit, callable, bytes per call or 0)."""
    rq_pdu = associate_rq()
    rq_raw = rq_pdu.encode()
    pdv = pdu.PresentationDataValueItem(1, b'\x00' + bytes(16384))
    pdata = pdu.PDataTfPDU([pdv])
    pdata_raw = pdata.encode()
    msg = store_rq()
    command = dimsecodec.encode_command_set(msg.command_set)
    big = bytes(16 * 1024 * 1024)

    def fragment_bytes(size: int) -> Callable[[], int]:
        def run() -> int:
            m = store_rq(big)
            return sum(len(b) for batch in m.iter_pdu_batches(1, size) for b in batch)
        return run

    def fragment_file(size: int) -> Callable[[], int]:
        stream = io.BytesIO(big)

        def run() -> int:
            stream.seek(0)
            m = store_rq(stream)
            return sum(len(b) for batch in m.iter_pdu_batches(1, size) for b in batch)
        return run

    def reassemble(size: int) -> Callable[[], int]:
        # The receive path: command fragment, then the data fragments into a file sink.
        frags = [(0x03, memoryview(command))]
        view = memoryview(big)
        frags += [(0x02 if pos + size >= len(big) else 0x00, view[pos:pos + size])
                  for pos in range(0, len(big), size)]
        sink = _NullSink()

        def run() -> int:
            assembler = reassembly.MessageAssembler(lambda m: sink)
            for control, frag in frags:
                done = assembler.feed(1, control, frag)
            return done is not None
        return run

    return [
        ('A-ASSOCIATE-RQ encode (10 contexts)', 'call', rq_pdu.encode, 0),
        ('A-ASSOCIATE-RQ decode (10 contexts)', 'call',
         lambda: pdu.decode_pdu(rq_raw), 0),
        ('P-DATA-TF encode (one 16 KiB PDV)', 'call', pdata.encode, 0),
        ('P-DATA-TF decode (one 16 KiB PDV)', 'call', lambda: pdu.decode_pdu(pdata_raw), 0),
        ('P-DATA-TF iter_pdvs (one 16 KiB PDV)', 'call',
         lambda: list(pdu.iter_pdvs(memoryview(pdata_raw)[6:])), 0),
        ('C-STORE-RQ command set encode', 'call',
         lambda: dimsecodec.encode_command_set(msg.command_set), 0),
        ('C-STORE-RQ command set decode (decode_message)', 'call',
         lambda: dimse.decode_message(command), 0),
        ('iter_pdu_batches 16 MiB bytes, 16 KiB PDU', 'MiB/s', fragment_bytes(16384), len(big)),
        ('iter_pdu_batches 16 MiB bytes, 1 MiB PDU', 'MiB/s', fragment_bytes(1 << 20), len(big)),
        ('iter_pdu_batches 16 MiB file, 16 KiB PDU', 'MiB/s', fragment_file(16384), len(big)),
        ('iter_pdu_batches 16 MiB file, 1 MiB PDU', 'MiB/s', fragment_file(1 << 20), len(big)),
        ('MessageAssembler 16 MiB in 16 KiB fragments', 'MiB/s', reassemble(16384 - 6),
         len(big)),
        ('MessageAssembler 16 MiB in 1 MiB fragments', 'MiB/s', reassemble((1 << 20) - 6),
         len(big)),
    ]


class _NullSink:
    def write(self, data) -> int:
        return len(data)


def measure(func: Callable[[], object], budget: float) -> float:
    """Best seconds per call over 5 rounds of about ``budget / 5`` seconds each."""
    timer = timeit.Timer(func)
    number, elapsed = timer.autorange()
    per_round = max(1, int(number * (budget / 5) / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=5, number=per_round)) / per_round


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--quick', action='store_true', help='about 0.1 s per case')
    args = p.parse_args(argv)
    budget = 0.1 if args.quick else 1.0
    print('| micro-benchmark | per call | rate |')
    print('|---|---|---|')
    for name, unit, func, size in cases():
        seconds = measure(func, budget)
        if unit == 'MiB/s':
            rate = f'{size / seconds / (1 << 20):,.0f} MiB/s'
        else:
            rate = f'{1 / seconds:,.0f} /s'
        shown = f'{seconds * 1e6:,.1f} µs' if seconds < 1e-2 else f'{seconds * 1e3:,.1f} ms'
        print(f'| {name} | {shown} | {rate} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
