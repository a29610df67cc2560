"""The interoperability harness itself: real DCMTK and pynetdicom 3 peers talk to each other.

If these fail, the interop tests of pynetdicom2 cannot be trusted; none of them
involves pynetdicom2.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from tests import peers
from tests.peers import (
    dcmtk, describe, free_port, make_ct_file, run_pynetdicom_scu, run_tool, start_dcmtk_scp,
    start_pynetdicom_peer, wait_listening,
)


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


# ---------------------------------------------------------------- the helpers
def test_wait_listening_sees_a_listener_and_times_out_without_one():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=str(port)):
            wait_listening(port, timeout=0.3)  # bound, not listening yet
        assert time.monotonic() - started < 2
        sock.listen()
        wait_listening(port, timeout=2)


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_run_tool_kills_a_hung_command_and_fails_with_its_output():
    argv = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="(?s)did not finish.*started"):
        run_tool(argv, timeout=1)
    assert time.monotonic() - started < 10
    assert peers.CHILDREN == []


def test_stop_leaked_children_kills_what_a_test_left_running():
    proc = peers._spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    leaked = peers.stop_leaked_children()
    assert len(leaked) == 1 and "time.sleep(60)" in leaked[0]
    assert proc.poll() is not None
    assert peers.CHILDREN == []


def test_missing_dcmtk_tool_fails_on_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        dcmtk("no-such-dcmtk-tool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        dcmtk("no-such-dcmtk-tool")


def test_dcmtk_scp_dying_early_reports_its_output():
    with pytest.raises(RuntimeError, match="(?s)exited.*--no-such-option"):
        with start_dcmtk_scp("storescp", ["--no-such-option"]):
            pass  # pragma: no cover - never listens
    assert peers.CHILDREN == []


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, RLELossless])
def test_make_ct_file_is_valid_for_dcmtk(tmp_path, syntax):
    path = make_ct_file(tmp_path / "ct.dcm", sop_instance_uid="1.2.3.4", rows=8, cols=4,
                        transfer_syntax=syntax)
    ds = dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.SOPInstanceUID == "1.2.3.4" and (ds.Rows, ds.Columns) == (8, 4)
    dump = run_tool([dcmtk("dcmdump"), "-q", str(path)])
    assert dump.returncode == 0 and dump.stderr == "", describe(dump)
    # The pixel values, read without numpy (the test extra has none): RLE is decompressed
    # by DCMTK's dcmdrle into Explicit VR Little Endian, which also proves DCMTK reads it.
    byteorder = ">" if syntax == ExplicitVRBigEndian else "<"
    if syntax == RLELossless:
        plain = tmp_path / "plain.dcm"
        result = run_tool([dcmtk("dcmdrle"), str(path), str(plain)])
        assert result.returncode == 0, describe(result)
        ds = dcmread(plain)
    # PS3.5 8.2: 16-bit OW pixel data, one value per pixel in the syntax's byte order.
    assert list(struct.unpack(f"{byteorder}32H", ds.PixelData)) == list(range(32))


# ---------------------------------------------------------------- DCMTK -> pynetdicom
def test_echoscu_echoes_the_pynetdicom_peer():
    with start_pynetdicom_peer([]) as (_, port):
        result = run_tool([dcmtk("echoscu"), "-aec", "PYNETDICOM", "127.0.0.1", str(port)])
    assert result.returncode == 0, describe(result)


def test_require_called_aet_rejects_a_wrong_called_title():
    with start_pynetdicom_peer(["--require-called-aet"]) as (_, port):
        right = run_tool([dcmtk("echoscu"), "-aec", "PYNETDICOM", "127.0.0.1", str(port)])
        wrong = run_tool([dcmtk("echoscu"), "-aec", "WRONG", "127.0.0.1", str(port)])
    assert right.returncode == 0, describe(right)
    assert wrong.returncode != 0, describe(wrong)
    output = wrong.stdout + wrong.stderr
    assert "Association Rejected" in output and "Called AE Title Not Recognized" in output


def test_abort_and_release_on_echo_reach_echoscu():
    argv = [dcmtk("echoscu"), "-v", "--repeat", "2", "127.0.0.1"]
    with start_pynetdicom_peer(["--abort-on-echo"]) as (_, port):
        aborted = run_tool(argv + [str(port)])
    with start_pynetdicom_peer(["--release-on-echo"]) as (_, port):
        released = run_tool(argv + [str(port)])
    assert "Peer Aborted Association" in aborted.stdout + aborted.stderr, describe(aborted)
    released_output = released.stdout + released.stderr
    assert "Received Echo Response (Success)" in released_output, describe(released)
    assert "Peer Requested Release" in released_output, describe(released)


def test_storescu_stores_into_the_peer_storage_dir(tmp_path):
    sent = make_ct_file(tmp_path / "sent.dcm")
    store_dir = tmp_path / "received"
    store_dir.mkdir()
    with start_pynetdicom_peer(["--storage-dir", str(store_dir)]) as (_, port):
        result = run_tool([dcmtk("storescu"), "127.0.0.1", str(port), str(sent)])
    assert result.returncode == 0, describe(result)
    original = dcmread(sent)
    received = dcmread(store_dir / f"{original.SOPInstanceUID}.dcm")
    assert received.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert received.PixelData == original.PixelData


def test_store_status_and_user_identity_log(tmp_path):
    sent = make_ct_file(tmp_path / "sent.dcm")
    id_log = tmp_path / "identity.jsonl"
    args = ["--store-status", "0xA700", "--user-identity-log", str(id_log)]
    with start_pynetdicom_peer(args) as (_, port):
        result = run_tool([dcmtk("storescu"), "-v", "-usr", "alice", "-pwd", "secret",
                           "127.0.0.1", str(port), str(sent)])
    # 0xA700 is "Refused: Out of Resources" (PS3.4 B.2.3)
    assert "Refused: OutOfResources" in result.stdout + result.stderr, describe(result)
    assert json_lines(id_log.read_text()) == [
        {"type": 2, "primary": "alice", "secondary": "secret"}]


def test_findscu_gets_the_requested_number_of_matches(tmp_path):
    with start_pynetdicom_peer(["--find-responses", "3"]) as (_, port):
        result = run_tool([dcmtk("findscu"), "-S", "-k", "QueryRetrieveLevel=STUDY",
                           "-k", "PatientName=", "-X", "-od", str(tmp_path),
                           "127.0.0.1", str(port)])
    assert result.returncode == 0, describe(result)
    files = sorted(tmp_path.glob("rsp*.dcm"))
    matches = [dcmread(f) for f in files]
    assert [(str(m.PatientName), m.PatientID) for m in matches] == [
        ("PATIENT^0", "0"), ("PATIENT^1", "1"), ("PATIENT^2", "2")]
    assert all(m.QueryRetrieveLevel == "STUDY" for m in matches)


# ---------------------------------------------------------------- pynetdicom -> DCMTK
def test_peer_scu_echoes_storescp():
    with start_dcmtk_scp("storescp", ["-aet", "STORESCP"]) as (_, port):
        result = run_pynetdicom_scu(["--scu", "echo", "--port", str(port),
                                     "--called-aet", "STORESCP"])
    assert result.returncode == 0, describe(result)
    assert json_lines(result.stdout) == [{"status": 0}]


def test_peer_scu_stores_into_storescp_output_dir(tmp_path):
    sent = make_ct_file(tmp_path / "sent.dcm")
    out_dir = tmp_path / "od"
    out_dir.mkdir()
    with start_dcmtk_scp("storescp", ["-od", str(out_dir)]) as (_, port):
        result = run_pynetdicom_scu(["--scu", "store", "--port", str(port),
                                     "--file", str(sent)])
    assert result.returncode == 0, describe(result)
    assert json_lines(result.stdout) == [{"status": 0}]
    received = [dcmread(f) for f in out_dir.iterdir()]
    assert [ds.SOPInstanceUID for ds in received] == [dcmread(sent).SOPInstanceUID]
    assert received[0].PixelData == dcmread(sent).PixelData


def test_peer_scu_reports_rejection_details():
    with start_pynetdicom_peer(["--require-calling-aet", "ALLOWED"]) as (_, port):
        common = ["--scu", "echo", "--port", str(port)]
        allowed = run_pynetdicom_scu(common + ["--ae-title", "ALLOWED"])
        refused = run_pynetdicom_scu(common)
    assert allowed.returncode == 0, describe(allowed)
    assert refused.returncode == 2, describe(refused)
    # PS3.8 9.3.4: rejected-permanent (1), by the service user (1), calling AE title
    # not recognized (3)
    [line] = json_lines(refused.stdout)
    assert (line["association"], line["result"], line["source"], line["reason"]) == (
        "rejected", 1, 1, 3)


def test_peer_scu_finds_against_the_peer_scp():
    with start_pynetdicom_peer(["--find-responses", "2"]) as (_, port):
        result = run_pynetdicom_scu(["--scu", "find", "--port", str(port),
                                     "--find-model", "patient", "--query-key", "PatientName="])
    assert result.returncode == 0, describe(result)
    assert json_lines(result.stdout) == [
        {"status": 0xFF00, "PatientName": "PATIENT^0", "PatientID": "0"},
        {"status": 0xFF00, "PatientName": "PATIENT^1", "PatientID": "1"},
        {"status": 0}]
