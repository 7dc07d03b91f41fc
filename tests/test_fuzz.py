"""Fuzzing what reads untrusted bytes: the serial host's frame handling, the CDR decoders, the MCAP
reader and the trajectory CSV reader. Each may refuse what it is given, with its own error type;
none may raise anything else, and none may hand on a reading that is not what the link carried.
`S2R_FUZZ_EXAMPLES=30000 pytest tests/test_fuzz.py` fuzzes longer."""

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.apps.log import RunLog, read_log
from hardware.backends.serial_device import SerialDevice
from hardware.device import DeviceError
from hardware.links import cdr, protocol
from hardware.links import ros2_msgs as m
from hardware.links.protocol import Type
from sim.robots import get_robot
from sim.tasks.realaigym import TrajectoryError, load_trajectory_csv

SPEC = get_robot("pendubot").spec(get_robot("pendubot").load_params("model_1.1"))
CAPS = protocol.Capabilities(
    "pendubot",
    500,
    tuple(protocol.ChannelInfo(c.name, c.unit, c.low, c.high) for c in SPEC.state),
    tuple(protocol.ChannelInfo(c.name, c.unit, c.low, c.high) for c in SPEC.command),
)
EXAMPLES = int(os.environ.get("S2R_FUZZ_EXAMPLES", "1500"))
"""Inputs per fuzz test (the MCAP reader's, which takes longer each, a fifth); more for a long run."""
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _state(seq: int, values) -> bytes:
    message = protocol.StateMessage(seq * 2000, 0, 0, True, tuple(values))
    return protocol.encode_frame(Type.STATE, seq, protocol.pack_state(message))


frames = st.one_of(
    st.binary(max_size=64),  # noise
    st.builds(  # well-framed STATEs with any sequence number and values
        _state, st.integers(0, 0xFFFF), st.lists(st.floats(allow_nan=True, width=32), min_size=4, max_size=4)
    ),
    st.builds(  # any type with any payload, CRC intact
        lambda kind, seq, payload, version: protocol.encode_frame(kind, seq, payload, version),
        st.integers(0, 255),
        st.integers(0, 0xFFFF),
        st.binary(max_size=80),
        st.sampled_from([1, 1, 1, 2]),
    ),
)


@pytest.fixture
def host():
    """A SerialDevice reading from a pipe, configured and armed as after a handshake."""
    device = SerialDevice("fuzz")
    read, write = os.pipe()
    device._fd = read
    device.capabilities = CAPS
    device._armed = True
    yield device, write
    os.close(read)
    os.close(write)


@FUZZ
@given(stream=st.lists(frames, max_size=40))
def test_the_serial_host_survives_any_stream(host, stream, red_team):
    device, pipe = host
    red_team.update(bad_inputs=1)
    seq_before = device._seq
    for chunk in stream:
        os.write(pipe, chunk)
        try:
            device._pump()
        except DeviceError:
            device._decoder = protocol.FrameDecoder()  # what reconfiguring does
            continue
        except Exception:
            red_team.update(uncaught_exceptions=1)
            raise
        if device._latest is not None:
            assert device._latest.values.shape == (4,)
            assert device._seq >= seq_before, "the host's sequence never goes back"
            seq_before = device._seq


@FUZZ
@given(data=st.binary(max_size=300))
def test_cdr_decoders_refuse_bad_bytes_with_a_malformed_marker(data, red_team):
    red_team.update(bad_inputs=2)
    for kind in (m.JointState, m.Float64MultiArray):
        decoded = kind.deserialize(cdr.ENCAPSULATION + data)
        assert isinstance(decoded, (kind, m.Malformed))


@functools.cache
def log_bytes() -> bytes:
    """A log of 400 ticks, position = 0.1 tick."""
    from test_log import PENDUBOT_SPEC, record

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "run.mcap"
        log = RunLog(path, PENDUBOT_SPEC, {"run": {"robot": "pendubot"}})
        for k in range(400):
            log.on_tick(record(k))
        log.close()
        return path.read_bytes()


@settings(max_examples=EXAMPLES // 5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=8), cut=st.floats(0, 1))
def test_the_log_reader_never_changes_what_it_reads_from_a_damaged_file(tmp_path, flips, cut, red_team):
    whole = log_bytes()
    data = bytearray(whole[: max(8, int(len(whole) * (0.5 + cut / 2)))])
    for offset, bit in flips:
        data[offset % len(data)] ^= 1 << bit
    path = tmp_path / "damaged.mcap"
    path.write_bytes(bytes(data))
    red_team.update(bad_inputs=1)
    contents = read_log(path)
    states = contents.messages.get("/joint_states", [])
    ticks = [m.position[0] / 0.1 for _, m in states]
    # What reads back is what was written, in order: a damaged part is skipped, never altered.
    assert np.allclose(ticks, np.round(ticks)) and list(np.round(ticks)) == sorted(set(np.round(ticks)))
    assert all(list(m.name) == ["shoulder", "elbow"] and m.position[1] == -0.2 for _, m in states)
    if len(states) < 400 and contents.complete:
        assert contents.damage, "a complete file that lost messages says so"


@FUZZ
@given(text=st.text(alphabet=st.sampled_from('0123456789.,-e\n\r"time_posvelaucn1\ufeff'), max_size=400))
def test_the_csv_reader_refuses_what_it_cannot_read(tmp_path, text, red_team):
    path = tmp_path / "trajectory.csv"
    path.write_text(text)
    red_team.update(bad_inputs=1)
    try:
        trajectory = load_trajectory_csv(path)
    except TrajectoryError:
        return
    assert np.isfinite(trajectory.X).all() and (np.diff(trajectory.T) > 0).all()
