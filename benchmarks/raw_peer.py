#!/usr/bin/env python3
"""Raw-socket reference: plain Python moving the same bytes as a C-STORE run.

``recv`` listens (prints ``PORT <n>``) and, per connection, reads instances framed as
an 8-byte length then the bytes, with ``recv_into`` a reusable buffer of ``--chunk``
bytes; it drops them (``--mode ignore``) or writes each to a file in ``--dir``, then
answers a 4-byte acknowledgement (one round trip per instance, like C-STORE-RSP).
``send FILE...`` sends each whole file (``readinto`` + ``sendall`` in ``--chunk``
pieces) over one connection and waits for each acknowledgement. No DICOM at all: the
ceiling a Python DICOM stack could reach on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

_LENGTH = struct.Struct('>Q')
_ACK = b'ACK!'


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def recv_exact(sock: socket.socket, view: memoryview) -> bool:
    while len(view):
        n = sock.recv_into(view)
        if n == 0:
            return False
        view = view[n:]
    return True


def serve_connection(conn: socket.socket, args: argparse.Namespace, counter: list) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = memoryview(bytearray(args.chunk))
    head = memoryview(bytearray(_LENGTH.size))
    with conn:
        while recv_exact(conn, head):
            remaining = _LENGTH.unpack(head)[0]
            out = None
            if args.mode == 'write':
                counter[0] += 1
                out = open(os.path.join(args.dir, f'{os.getpid()}-{counter[0]}.raw'), 'wb')
            try:
                while remaining:
                    n = conn.recv_into(buf[:min(remaining, len(buf))])
                    if n == 0:
                        return
                    if out is not None:
                        out.write(buf[:n])
                    remaining -= n
            finally:
                if out is not None:
                    out.close()
            conn.sendall(_ACK)


def run_recv(args: argparse.Namespace) -> int:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    done = threading.Event()

    def stop(*_):
        done.set()
        server.close()

    signal.signal(signal.SIGTERM, stop)
    print(f'PORT {server.getsockname()[1]}', flush=True)
    counter = [0]
    while not done.is_set():
        try:
            conn, _ = server.accept()
        except OSError:
            break
        serve_connection(conn, args, counter)
    return 0


def run_send(args: argparse.Namespace) -> int:
    files = list(args.items)
    if args.file_list:
        with open(args.file_list) as f:
            files += [line.strip() for line in f if line.strip()]
    buf = memoryview(bytearray(args.chunk))
    ack = memoryview(bytearray(len(_ACK)))
    t0 = os.times()
    start = time.perf_counter()
    ok = 0
    with socket.create_connection((args.host, args.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for path in files:
            with open(path, 'rb', buffering=0) as f:
                sock.sendall(_LENGTH.pack(os.fstat(f.fileno()).st_size))
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    sock.sendall(buf[:n])
            if recv_exact(sock, ack) and bytes(ack) == _ACK:
                ok += 1
    t1 = os.times()
    print(json.dumps({'ok': ok, 'failed': len(files) - ok, 'wall': time.perf_counter() - start,
                      'cpu': t1.user + t1.system - t0.user - t0.system,
                      'rss': peak_rss_mib()}), flush=True)
    return 0 if ok == len(files) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('role', choices=['recv', 'send'])
    p.add_argument('items', nargs='*')
    p.add_argument('--mode', choices=['ignore', 'write'], default='ignore')
    p.add_argument('--dir')
    p.add_argument('--chunk', type=int, default=16384)
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--file-list')
    args = p.parse_intermixed_args()
    return run_recv(args) if args.role == 'recv' else run_send(args)


if __name__ == '__main__':
    sys.exit(main())
