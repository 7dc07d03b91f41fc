"""The MSP codec (hardware/links/msp.py): frames as Betaflight and INAV put them on the wire."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.links import msp
from hardware.links.msp import Command, Decoder, Direction, Message


def test_crc8_dvb_s2_has_its_check_value():
    assert msp.crc8_dvb_s2(b"123456789") == 0xBC


def test_a_v1_attitude_request_is_the_bytes_every_msp_tool_sends():
    assert msp.encode(Message(Command.ATTITUDE)) == b"$M<\x00\x6c\x6c"


def test_a_v2_frame_carries_flags_a_16_bit_command_and_a_crc8():
    frame = msp.encode(Message(0x1F01, b"\x01\x02", Direction.REPLY, version=2, flags=0))
    assert frame[:3] == b"$X>" and frame[3:8] == b"\x00\x01\x1f\x02\x00" and frame[8:10] == b"\x01\x02"
    assert frame[10] == msp.crc8_dvb_s2(frame[3:10])


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("direction", list(Direction))
def test_frames_round_trip_through_the_decoder_in_any_chunks(version, direction):
    messages = [Message(c, bytes(range(n)), direction, version) for c, n in ((108, 0), (102, 18), (200, 16), (1, 254))]
    stream = b"".join(msp.encode(m) for m in messages)
    decoder = Decoder()
    got = []
    for i in range(0, len(stream), 7):
        got += decoder.feed(stream[i : i + 7])
    assert got == messages and decoder.frames == 4


def test_what_a_version_cannot_carry_is_refused():
    with pytest.raises(ValueError, match="MSP v1 carries"):
        msp.encode(Message(0x1F01))
    with pytest.raises(ValueError, match="MSP v1 carries"):
        msp.encode(Message(Command.SET_RAW_RC, bytes(255)))
    with pytest.raises(ValueError, match="versions 1 and 2"):
        msp.encode(Message(1, version=3))


def test_garbage_and_bad_checksums_are_dropped_counted_and_the_next_frame_is_found():
    good = msp.encode(Message(Command.ATTITUDE, msp.pack_attitude(1.5, -2.0, 90), Direction.REPLY))
    bad = bytearray(good)
    bad[-1] ^= 0x01
    decoder = Decoder()
    assert decoder.feed(b"\x00\xff$$M" + bytes(bad) + b"$Q>" + good) == [msp.Decoder().feed(good)[0]]
    assert decoder.checksum_errors == 1 and decoder.malformed >= 2


def test_a_frame_inside_a_corrupt_one_is_not_lost():
    # A header that announces more bytes than follow swallows the next frame until its check fails;
    # decoding then resumes right after that header's '$' and finds the frame.
    good = msp.encode(Message(Command.RC, msp.pack_rc((1500,) * 8), Direction.REPLY))
    decoder = Decoder()
    assert decoder.feed(b"$M>\x20\x69" + good + bytes(40)) == Decoder().feed(good)
    assert decoder.checksum_errors == 1


def test_a_request_longer_than_the_boards_receive_buffer_is_dropped():
    board = Decoder(max_payload=msp.FIRMWARE_RECEIVE_BUFFER)
    fits = msp.encode(Message(Command.SET_RAW_RC, bytes(192), version=2))
    too_long = msp.encode(Message(Command.SET_RAW_RC, bytes(193), version=2))
    assert len(board.feed(too_long + fits)) == 1 and board.oversized == 1


def test_payloads_decode_to_units_and_refuse_the_wrong_size():
    assert msp.unpack_attitude(msp.pack_attitude(-12.3, 45.6, 359.4)) == (-12.3, 45.6, 359.0)
    assert msp.unpack_attitude(msp.pack_attitude(0, 0, -90))[2] == 270.0
    assert msp.unpack_raw_imu(msp.pack_raw_imu(tuple(range(-4, 5)))) == tuple(range(-4, 5))
    assert msp.unpack_rc(msp.pack_rc((1000, 1500, 2000))) == (1000, 1500, 2000)
    with pytest.raises(msp.MspError, match="ATTITUDE payload of 5 bytes; 6 expected"):
        msp.unpack_attitude(bytes(5))
    with pytest.raises(msp.MspError, match="RAW_IMU"):
        msp.unpack_raw_imu(bytes(17))
    with pytest.raises(msp.MspError, match="whole number"):
        msp.unpack_rc(bytes(3))
    with pytest.raises(ValueError, match="within 1000-2000 us, got \\[2500\\]"):
        msp.pack_rc((1500, 2500))


frames = st.builds(
    lambda version, command, payload, direction: msp.encode(
        Message(command if version == 2 else command % 255, payload, direction, version)
    ),
    st.sampled_from([1, 2]),
    st.integers(0, 0xFFFF),
    st.binary(max_size=64),
    st.sampled_from(list(Direction)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(frames, st.binary(max_size=40)), max_size=8), st.data())
def test_fuzz_the_decoder_never_raises_and_accepts_only_well_formed_frames(parts, data):
    stream = bytearray(b"".join(parts))
    for _ in range(data.draw(st.integers(0, 4))):  # flip some bytes anywhere
        if stream:
            i = data.draw(st.integers(0, len(stream) - 1))
            stream[i] ^= data.draw(st.integers(1, 255))
    stream = bytes(stream)
    decoder = Decoder()
    cut = data.draw(st.integers(0, len(stream)))
    messages = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
    for m in messages:
        assert msp.encode(m) in stream  # every accepted frame is one that is on the wire, whole
