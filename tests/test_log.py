"""MCAP run logs: ROS 2 CDR that rosbags decodes, metadata inside, overflow counted, SIGKILL survivable,
and deploy logs that `s2r score` scores like the deploy did."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.stream_reader import StreamReader
from rosbags.typesys import Stores, get_typestore

from hardware.apps.log import RunLog, read_log
from hardware.device import State
from hardware.loop import TickRecord
from hardware.safety import Fault
from s2r.cli import main
from sim.robots import get_robot

PENDUBOT_SPEC = get_robot("pendubot").spec(get_robot("pendubot").load_params("model_1.0"))


def record(k: int, fault: Fault | None = None) -> TickRecord:
    state = State(k * 2_000_000, k, np.array([0.1 * k, -0.2, 1.0, 2.0]))
    return TickRecord(
        k, k * 2_000_000, k * 2_000_000, 50_000, state, np.array([0.5]), np.array([3.0, 0.0]), 0, [], fault
    )


def test_round_trip_with_ros2_cdr_and_metadata(tmp_path):
    path = tmp_path / "run.mcap"
    log = RunLog(path, PENDUBOT_SPEC, {"run": {"robot": "pendubot", "rate_hz": 500.0}})
    for k in range(100):
        log.on_tick(record(k, Fault(k, "test fault") if k == 50 else None))
    log.close({"loop": {"ticks": 100}})
    messages, metadata, complete, _ = read_log(path)
    assert complete
    assert {t: len(m) for t, m in messages.items() if t != "/diagnostics"} == {
        "/joint_states": 100,
        "/state": 100,
        "/policy/action": 100,
        "/command": 100,
    }
    js = messages["/joint_states"][10][1]
    assert (
        list(js.name) == ["shoulder", "elbow"]
        and js.position[0] == pytest.approx(1.0)
        and list(js.effort) == [3.0, 0.0]
    )
    assert list(messages["/state"][10][1].data) == [1.0, -0.2, 1.0, 2.0]  # the whole reading, spec order
    faults = [s for _, m in messages["/diagnostics"] for s in m.status if s.level == 2]
    assert len(faults) == 1 and faults[0].message == "test fault"
    assert metadata["run"]["robot"] == "pendubot" and json.loads(metadata["summary"]["dropped_ticks"]) == 0
    # The bytes are the CDR a ROS 2 reader expects: rosbags' Humble typestore decodes them.
    store = get_typestore(Stores.ROS2_HUMBLE)
    with path.open("rb") as f:
        records = list(StreamReader(f).records)
    channels = {r.id: r for r in records if type(r).__name__ == "Channel"}
    schemas = {r.id: r.name for r in records if type(r).__name__ == "Schema"}
    decoded = 0
    for r in records:
        if type(r).__name__ == "Message":
            msg = store.deserialize_cdr(r.data, schemas[channels[r.channel_id].schema_id])
            decoded += 1
    assert decoded == 400 + len(messages["/diagnostics"])
    assert type(msg).__name__ in (
        "sensor_msgs__msg__JointState",
        "std_msgs__msg__Float64MultiArray",
        "diagnostic_msgs__msg__DiagnosticArray",
    )


def test_overflow_is_counted_and_reported(tmp_path):
    log = RunLog(tmp_path / "run.mcap", PENDUBOT_SPEC, {}, queue_size=1)
    for k in range(2000):  # far faster than the writer encodes
        log.on_tick(record(k))
    log.close()
    assert log.dropped > 0 and log.written + log.dropped == 2000
    metadata = read_log(tmp_path / "run.mcap").metadata
    assert json.loads(metadata["summary"]["dropped_ticks"]) == log.dropped


def test_blocking_log_keeps_every_tick_of_a_loop_faster_than_the_writer(tmp_path):
    log = RunLog(tmp_path / "run.mcap", PENDUBOT_SPEC, {}, queue_size=1, block=True)
    for k in range(2000):
        log.on_tick(record(k))
    log.close()
    assert log.dropped == 0 and log.written == 2000
    messages, _, complete, _ = read_log(tmp_path / "run.mcap")
    assert complete and len(messages["/joint_states"]) == 2000


def test_blocking_log_drops_instead_of_hanging_when_the_writer_dies(tmp_path):
    log = RunLog(tmp_path / "run.mcap", PENDUBOT_SPEC, {}, queue_size=1, block=True)
    log._process.kill()
    log._process.join(timeout=10)
    failures = [log.on_tick(record(k)) for k in range(50)]
    log.close()
    assert log.dropped == 50 and all("the log writer died" in f for f in failures)
    assert log.written == 0 and log.failure


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_log import PENDUBOT_SPEC, record
    from hardware.apps.log import RunLog
    log = RunLog({path!r}, PENDUBOT_SPEC, {{"run": {{"robot": "pendubot"}}}})
    k = 0
    while True:
        log.on_tick(record(k))
        k += 1
        if k == 3000:
            print("ready", flush=True)
        time.sleep(0.0002)
    """
)


def run_and_kill(path, whole_group: bool) -> None:
    code = WRITER.format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        if whole_group:
            os.killpg(proc.pid, signal.SIGKILL)  # the writer process dies too
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def assert_in_order(messages) -> None:
    states = messages["/joint_states"]
    assert len(states) > 1000
    ticks = [m.position[0] for _, m in states]
    np.testing.assert_allclose(ticks, 0.1 * np.arange(len(ticks)))  # in order, none missing


def test_a_killed_loop_process_leaves_a_finished_log(tmp_path):
    path = tmp_path / "killed.mcap"
    run_and_kill(path, whole_group=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not read_log(path).complete:
        time.sleep(0.2)  # the writer notices within 0.2 s and finishes the file
    messages, metadata, complete, _ = read_log(path)
    assert complete and metadata["run"]["robot"] == "pendubot"
    assert "died" in metadata["summary"]["ended"]
    assert_in_order(messages)


def test_a_killed_writer_leaves_a_log_that_reads_to_its_last_chunk(tmp_path):
    path = tmp_path / "killed.mcap"
    run_and_kill(path, whole_group=True)
    messages, metadata, complete, _ = read_log(path)
    assert not complete and metadata["run"]["robot"] == "pendubot"
    assert_in_order(messages)


def _log_of(path: Path, ticks: int) -> list[tuple[int, int]]:
    """Write a log of `ticks` ticks; returns the (start, end) byte ranges of its chunks."""
    log = RunLog(path, PENDUBOT_SPEC, {"run": {"robot": "pendubot"}})
    for k in range(ticks):
        log.on_tick(record(k))
    log.close()
    with path.open("rb") as f:
        reader = StreamReader(f, emit_chunks=True)
        spans, offset = [], 8
        for r in reader.records:
            end = reader._stream.count
            if type(r).__name__ == "Chunk":
                spans.append((offset, end))
            offset = end
    return spans


def test_a_damaged_chunk_is_reported_and_skipped_and_later_chunks_still_read(tmp_path):
    path = tmp_path / "run.mcap"
    spans = _log_of(path, 600)
    assert len(spans) >= 4
    whole = read_log(path)
    assert whole.complete and whole.damage == [] and len(whole.messages["/joint_states"]) == 600
    data = bytearray(path.read_bytes())
    start, end = spans[2]
    data[(start + end) // 2] ^= 0x10  # one bit inside the third chunk's compressed data
    path.write_bytes(bytes(data))
    damaged = read_log(path)
    assert damaged.complete and len(damaged.damage) == 1 and "chunk at byte" in damaged.damage[0]
    ticks = [m.position[0] / 0.1 for _, m in damaged.messages["/joint_states"]]
    assert 0 < 600 - len(ticks) < 300, "one chunk's ticks are missing, not the rest of the file"
    assert round(ticks[-1]) == 599, "the chunks after the damaged one are read"
    original = {round(t) for t in ticks}
    assert all(round(t) in original for t in ticks), "nothing read is changed"
    assert main(["log", "info", str(path)]) == 1, "a damaged log is not a clean one"


def test_a_damaged_record_length_costs_one_chunk_not_the_rest_of_the_file(tmp_path):
    path = tmp_path / "run.mcap"
    spans = _log_of(path, 600)
    data = bytearray(path.read_bytes())
    start, _ = spans[1]
    data[start + 8] ^= 0x40  # the high byte of the second chunk's length: the framing is lost
    path.write_bytes(bytes(data))
    damaged = read_log(path)
    assert any("damaged record framing" in d for d in damaged.damage), damaged.damage
    ticks = [round(m.position[0] / 0.1) for _, m in damaged.messages["/joint_states"]]
    assert ticks[-1] == 599 and 300 < len(ticks) < 600


def test_corrupt_and_empty_files_do_not_crash_the_reader(tmp_path):
    path = tmp_path / "run.mcap"
    _log_of(path, 200)
    data = bytearray(path.read_bytes())
    data[100:164] = b"\xff" * 64  # inside the first chunk
    path.write_bytes(bytes(data))
    messages, _, _, damage = read_log(path)
    assert damage and len(messages.get("/joint_states", [])) < 200
    (tmp_path / "empty.mcap").write_bytes(b"")
    assert read_log(tmp_path / "empty.mcap") == ({}, {}, False, [])
    (tmp_path / "text.mcap").write_text("not a log")
    assert read_log(tmp_path / "text.mcap").damage == ["not an MCAP file: its first 8 bytes are not the MCAP magic"]


def test_deploy_log_scores_like_the_deploy(tmp_path, capsys):
    path = tmp_path / "deploy.mcap"
    args = ["deploy", "--policy", "baseline", "--lockstep", "--params", "model_1.1", "--json"]
    assert main([*args, "--no-imperfections", "--log", str(path)]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["robot"] == "pendubot", "the baseline's robot"
    assert deployed["metrics"]["success"] == 1.0 and deployed["log"]["dropped"] == 0
    assert main(["log", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] and info["topics"]["/joint_states"] == 5000 and not info["faults"]
    assert json.loads(info["metadata"]["robot"]["m"]) == [0.5234602302310271, 0.6255677234174437]
    csv = tmp_path / "deploy.csv"
    assert main(["log", "export", str(path), "--out", str(csv)]) == 0
    capsys.readouterr()
    assert main(["score", str(csv), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["score"]["score"] == pytest.approx(deployed["metrics"]["score"], abs=1e-12)
    assert main(["log", "info", str(path)]) == 0
    summary = capsys.readouterr().out
    assert "pendubot, 10.00 s, complete" in summary and "faults: 0" in summary and "{" not in summary


@pytest.mark.parametrize(
    "signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGTERM]], ids=["int", "term", "twice"]
)
def test_ctrl_c_puts_the_device_in_its_safe_state_and_closes_the_log(tmp_path, signals):
    path = tmp_path / "interrupted.mcap"
    cmd = [sys.executable, "-m", "s2r.cli", "deploy", "--robot", "pendubot", "--policy", "baseline", "--json"]
    cmd += ["--duration", "60", "--log", str(path)]
    # As from a non-interactive shell: SIGINT ignored on the way in.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 100_000):
        time.sleep(0.1)
    for signum in signals:  # a second one, impatient, lands on the way into the safe state
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    result = json.loads(out)
    # On a busy machine the loop may also miss deadlines into the safe state: the exit code says so.
    assert proc.returncode == (1 if result["loop"]["faults"] else 0), err
    assert result["interrupted"] is True and result["loop"]["ticks"] > 100
    messages, metadata, complete, _ = read_log(path)
    assert complete and "summary" in metadata
    assert len(messages["/joint_states"]) == result["log"]["ticks"]
