"""A serial port's file descriptor, read and written as both serial devices do (the s2r protocol's
and MSP's): pyserial opens and configures the port; the bytes go straight through its descriptor."""

from __future__ import annotations

import os
import select

import serial


def read_available(fd: int) -> bytes:
    """Everything that has arrived, b"" if nothing; OSError when the port is gone. With pyserial's
    timeout=0 an empty port and an unplugged one both read b"": only select tells them apart."""
    if not select.select([fd], [], [], 0)[0]:
        return b""
    data = os.read(fd, 65536)
    if not data:
        raise OSError("the port reports data but returns none: unplugged")
    return data


def write_frame(fd: int, port: serial.Serial, frame: bytes) -> None:
    """Write `frame` straight to the descriptor (pyserial's write costs more than the frame takes to
    send); when the driver's buffer is full, the rest through pyserial, up to its write timeout.
    Raises OSError or serial.SerialException when the port is gone."""
    try:
        written = os.write(fd, frame)
        if written < len(frame):
            port.write(frame[written:])
    except BlockingIOError:
        port.write(frame)
