"""The CRTP codec (hardware/links/crtp.py) against cflib, the client Crazyflie users run: its own
packet class and its commander's packing, byte for byte."""

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.links import crtp
from hardware.links.crtp import FullState, Generic, Packet, Port, Rpyt, Setpoint

cflib_commander = pytest.importorskip("cflib.crazyflie.commander", reason="cflib (the crazyflie extra) is absent")
from cflib.crtp.crtpstack import CRTPPacket  # noqa: E402
from cflib.utils.encoding import compress_quaternion as cflib_compress  # noqa: E402


class _Platform:
    def get_protocol_version(self) -> int:
        return 10  # a current firmware: the generic commander's current type numbers


class _Link:
    """What cflib's Commander needs of a Crazyflie: somewhere to send packets."""

    platform = _Platform()

    def __init__(self):
        self.sent: list[CRTPPacket] = []

    def send_packet(self, pk: CRTPPacket) -> None:
        self.sent.append(pk)


def _cflib(send) -> Packet:
    link = _Link()
    send(cflib_commander.Commander(link))
    (pk,) = link.sent
    return crtp.decode(bytes((pk.header,)) + bytes(pk.data))


@pytest.mark.parametrize("port", list(Port))
@pytest.mark.parametrize("channel", range(4))
def test_the_header_is_cflibs(port, channel):
    pk = CRTPPacket()
    pk.port, pk.channel = port, channel
    raw = crtp.encode(Packet(port, channel, b"\x01"))
    assert raw[0] == pk.header
    assert crtp.decode(raw) == Packet(port, channel, b"\x01")


def test_cflibs_rpyt_set_point_decodes_as_the_firmware_reads_it_and_packs_alike():
    packet = _cflib(lambda c: c.send_setpoint(5.0, -3.0, 20.0, 42000))
    assert packet.port == Port.COMMANDER and crtp.unpack_setpoint(packet) == Rpyt(5.0, -3.0, 20.0, 42000)
    assert crtp.pack_rpyt(Rpyt(5.0, -3.0, 20.0, 42000)) == packet


@pytest.mark.parametrize(
    "kind, send, values",
    [
        (Setpoint.POSITION, lambda c: c.send_position_setpoint(0.5, -0.25, 1.0, 30.0), (0.5, -0.25, 1.0, 30.0)),
        (Setpoint.HOVER, lambda c: c.send_hover_setpoint(0.25, 0.5, -10.0, 0.75), (0.25, 0.5, -10.0, 0.75)),
        (Setpoint.VELOCITY_WORLD, lambda c: c.send_velocity_world_setpoint(0.5, 0, -0.5, 5.0), (0.5, 0, -0.5, 5.0)),
    ],
)
def test_cflibs_generic_set_points_decode_and_pack_alike(kind, send, values):
    packet = _cflib(send)
    assert crtp.unpack_setpoint(packet) == Generic(kind, values)
    assert crtp.pack_generic(Generic(kind, values)) == packet


def test_cflibs_stop_and_full_state_set_points():
    assert crtp.unpack_setpoint(_cflib(lambda c: c.send_stop_setpoint())) == Generic(Setpoint.STOP)
    q_xyzw = np.array([0.1, -0.2, 0.3, 0.9]) / np.linalg.norm([0.1, -0.2, 0.3, 0.9])
    # cflib calls the rates deg/s; the firmware reads the wire's value as mrad/s: rad/s here.
    packet = _cflib(
        lambda c: c.send_full_state_setpoint([0.5, -1.25, 1.0], [0.1, 0.2, -0.3], [0, 0, 9.81], q_xyzw, 0.5, -1.0, 2.0)
    )
    got = crtp.unpack_setpoint(packet)
    assert isinstance(got, FullState)
    np.testing.assert_allclose(got.position, [0.5, -1.25, 1.0], atol=1e-3)
    np.testing.assert_allclose(got.velocity, [0.1, 0.2, -0.3], atol=1e-3)
    np.testing.assert_allclose(got.acceleration, [0, 0, 9.81], atol=1e-3)
    np.testing.assert_allclose(got.rates, [0.5, -1.0, 2.0], atol=1e-3)
    np.testing.assert_allclose(got.quaternion, [q_xyzw[3], *q_xyzw[:3]], atol=2e-3)
    sent = FullState((0.5, -1.25, 1.0), (0.1, 0.2, -0.3), (0, 0, 9.81), tuple(got.quaternion), (0.5, -1.0, 2.0))
    assert crtp.pack_full_state(sent) == Packet(Port.COMMANDER_GENERIC, 0, packet.data)


def test_the_compressed_quaternion_is_cflibs_and_comes_back_within_its_resolution():
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(500, 4)):
        q /= np.linalg.norm(q)
        w, x, y, z = q
        packed = crtp.compress_quaternion((w, x, y, z))
        assert packed == cflib_compress([x, y, z, w])
        back = np.array(crtp.decompress_quaternion(packed))
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 2e-3  # q and -q: one rotation


def test_what_is_not_a_set_point_is_refused_in_one_line():
    with pytest.raises(crtp.CrtpError, match="1 to 31 bytes, got 0"):
        crtp.decode(b"")
    with pytest.raises(crtp.CrtpError, match="1 to 31 bytes, got 32"):
        crtp.decode(bytes(32))
    with pytest.raises(crtp.CrtpError, match="an RPYT set-point is 14 bytes, got 13"):
        crtp.unpack_setpoint(Packet(Port.COMMANDER, 0, bytes(13)))
    with pytest.raises(crtp.CrtpError, match="unknown generic set-point type 99"):
        crtp.unpack_setpoint(Packet(Port.COMMANDER_GENERIC, 0, b"\x63"))
    with pytest.raises(crtp.CrtpError, match="non-finite"):
        crtp.unpack_setpoint(Packet(Port.COMMANDER_GENERIC, 0, struct.pack("<Bffff", 7, 0, 0, math.nan, 0)))
    with pytest.raises(crtp.CrtpError, match="carries no set-point"):
        crtp.unpack_setpoint(Packet(Port.LOGGING, 2, b"\x00"))
    with pytest.raises(ValueError, match="thrust must be 0-65535"):
        crtp.pack_rpyt(Rpyt(0, 0, 0, 70000))
    with pytest.raises(ValueError, match="does not fit the wire's int16"):
        crtp.pack_full_state(FullState((40.0, 0, 0), (0, 0, 0), (0, 0, 0), (1, 0, 0, 0), (0, 0, 0)))
    with pytest.raises(ValueError, match="at most 30 bytes"):
        crtp.encode(Packet(Port.COMMANDER, 0, bytes(31)))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_a_datagram_is_a_set_point_of_its_exact_size_or_a_crtp_error(raw):
    try:
        setpoint = crtp.unpack_setpoint(crtp.decode(raw))
    except crtp.CrtpError:
        return
    sizes = {Rpyt: crtp.RPYT.size, FullState: crtp.FULL_STATE.size}
    expected = sizes.get(type(setpoint)) or (1 if setpoint.kind == Setpoint.STOP else crtp.FOUR_FLOATS.size)
    assert len(raw) - 1 == expected
