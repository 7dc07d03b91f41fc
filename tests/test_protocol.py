"""The s2r serial protocol: framing, CRC, messages, and a decoder that survives any byte stream."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.links import protocol
from hardware.links.protocol import Capabilities, ChannelInfo, FaultCode, FrameDecoder, StateMessage, Type, encode_frame

CAPS = Capabilities(
    "pendubot",
    500,
    (ChannelInfo("shoulder.position", "rad", -9.42, 9.42), ChannelInfo("shoulder.velocity", "rad/s", -20, 20)),
    (ChannelInfo("shoulder.effort", "N m", -6.0, 6.0),),
)


def test_crc_is_ccitt_false():
    assert protocol.crc16(b"123456789") == 0x29B1  # the catalogue's check value


@given(st.binary(max_size=1200))
def test_cobs_round_trip_has_no_zero_bytes(data):
    encoded = protocol.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert protocol.cobs_decode(encoded) == data


def test_cobs_matches_the_published_examples():
    assert protocol.cobs_encode(b"\x00") == b"\x01\x01"
    assert protocol.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert protocol.cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"


def test_frame_layout_is_the_documented_one():
    frame = encode_frame(Type.COMMAND, 0x1234, protocol.pack_values([1.5]))
    assert frame[-1] == 0 and 0 not in frame[:-1]
    body = protocol.cobs_decode(frame[:-1])
    assert body[:4] == bytes([protocol.VERSION, Type.COMMAND, 0x34, 0x12])  # little-endian seq
    assert struct.unpack("<f", body[4:8]) == (1.5,)
    assert struct.unpack("<H", body[-2:])[0] == protocol.crc16(body[:-2])


def test_every_message_round_trips():
    assert protocol.unpack_capabilities(protocol.pack_capabilities(CAPS)) == CAPS
    msg = StateMessage(123456, 77, 250, True, (0.5, -1.25))
    assert protocol.unpack_state(protocol.pack_state(msg), 2) == msg
    assert protocol.unpack_values(protocol.pack_values([0.25, -6.0]), 2) == (0.25, -6.0)
    assert protocol.unpack_fault(protocol.pack_fault(FaultCode.RESET, "brown-out")) == (FaultCode.RESET, "brown-out")
    decoder = FrameDecoder()
    (frame,) = decoder.feed(encode_frame(Type.STATE, 65535, protocol.pack_state(msg)))
    assert (frame.version, frame.type, frame.seq) == (protocol.VERSION, Type.STATE, 65535)


def test_malformed_payloads_are_clear_errors():
    with pytest.raises(protocol.ProtocolError, match="STATE payload of 3 bytes"):
        protocol.unpack_state(b"abc", 2)
    with pytest.raises(protocol.ProtocolError, match="CAPABILITIES for 2 state and 1 command channels"):
        protocol.unpack_capabilities(protocol.pack_capabilities(CAPS)[:-1])
    with pytest.raises(ValueError, match="longer than 24"):
        protocol.pack_capabilities(Capabilities("x", 1, (ChannelInfo("a" * 25, "rad", 0, 1),), ()))


def _frames(n: int) -> list[bytes]:
    return [encode_frame(Type.STATE, i, protocol.pack_values([float(i), -float(i)])) for i in range(n)]


@given(st.lists(st.integers(0, 200), max_size=12))
def test_frames_split_anywhere_decode_in_order(cuts):
    stream = b"".join(_frames(20))
    decoder = FrameDecoder()
    out = []
    points = sorted({min(c * 7, len(stream)) for c in cuts} | {0, len(stream)})
    for a, b in zip(points, points[1:], strict=False):
        out += decoder.feed(stream[a:b])
    assert [f.seq for f in out] == list(range(20))
    assert decoder.crc_errors == decoder.malformed == 0


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=6000))
def test_random_bytes_never_raise_and_never_yield_a_bad_frame(data):
    decoder = FrameDecoder()
    for frame in decoder.feed(data):
        # A frame that came out passed its CRC: re-encoding it reproduces a frame that decodes to itself.
        assert FrameDecoder().feed(encode_frame(frame.type, frame.seq, frame.payload, frame.version)) == [frame]
    # Whatever came before, the decoder is back in sync after the next delimiter.
    assert decoder.feed(b"\x00" + _frames(1)[0]) != []


damage = st.tuples(st.sampled_from(["flip", "replace", "insert", "delete", "duplicate", "truncate"]), st.integers(0))


@settings(max_examples=300, derandomize=True)
@given(st.lists(damage, max_size=6))
def test_damaged_streams_lose_only_damaged_frames_and_resync(damages):
    frames = _frames(30)
    stream = bytearray(b"".join(frames))
    for kind, where in damages:
        i = where % len(stream)
        if kind == "flip":
            stream[i] ^= 1 << (where % 8)
        elif kind == "replace":
            stream[i] = (stream[i] + 1 + where % 255) % 256
        elif kind == "insert":
            stream[i:i] = bytes([where % 256])
        elif kind == "delete":
            del stream[i]
        elif kind == "duplicate":
            stream[i:i] = stream[i : i + 1 + where % 40]
        else:
            del stream[i : i + 1 + where % 40]
    decoder = FrameDecoder()
    out = decoder.feed(bytes(stream))
    sent = {protocol.cobs_decode(f[:-1]) for f in frames}
    for frame in out:  # nothing invented: every frame out is one that was sent
        body = protocol.HEADER.pack(frame.version, frame.type, frame.seq) + frame.payload
        assert body + protocol.CRC.pack(protocol.crc16(body)) in sent
    # Each damage touches at most a few frames; the rest come through.
    assert len(out) >= 30 - 3 * len(damages) - sum(1 for k, _ in damages if k in ("duplicate", "truncate")) * 8
    # If the damage ate the last delimiter, the next frame is lost too; the one after always comes through.
    assert [f.seq for f in decoder.feed(b"".join(_frames(2)))][-1] == 1


def test_a_run_without_delimiters_is_dropped_and_counted():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x01" * (protocol.MAX_FRAME + 100)) == []
    assert decoder.malformed == 1
    (frame,) = decoder.feed(b"\x01\x00" + _frames(1)[0])  # the rest of the garbage, then a good frame
    assert frame.seq == 0
