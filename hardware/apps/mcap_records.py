"""Reading MCAP records from a file that may be truncated or damaged, and saying which.

The MCAP format (https://mcap.dev/spec): magic, then records framed as
opcode u8 | length u64 | content; messages, schemas and channels live inside
Chunk records, each with the CRC-32 of its uncompressed content; DataEnd holds
the CRC-32 of everything before it. `scan` checks both: a chunk whose CRC
fails is reported and skipped, and when a damaged length leaves the framing
lost, reading resumes at the next chunk whose CRC holds, so one bad byte costs
one chunk, not the rest of the file. A file cut short (a killed writer) is
not damage: it simply has no DataEnd.
"""

from __future__ import annotations

import dataclasses
import io
import mmap
import struct
import zlib
from typing import Any

from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Message, Metadata, Schema
from mcap.stream_reader import get_chunk_data_stream

MAGIC = b"\x89MCAP0\r\n"
_FRAME = struct.Struct("<BQ")
_CHUNK_HEAD = struct.Struct("<QQQI")  # start time, end time, uncompressed size, uncompressed CRC
MAX_CHUNK_BYTES = 1 << 30
"""Largest chunk a reader accepts; a larger length is damage."""
_KNOWN = {int(o) for o in Opcode}


@dataclasses.dataclass
class Scan:
    """What a file holds: records in file order (Schema, Channel, Message, Metadata), whether it
    reached its DataEnd, and one line per damaged part."""

    records: list[Any] = dataclasses.field(default_factory=list)
    complete: bool = False
    damage: list[str] = dataclasses.field(default_factory=list)
    summary: list[Any] = dataclasses.field(default_factory=list)
    """Schema and Channel records of the summary section (after DataEnd), if the file has one."""


def scan(data: bytes | mmap.mmap) -> Scan:
    """Every record of the MCAP file `data` (bytes, or the file mapped in memory) that is intact."""
    result = Scan()
    if data[: len(MAGIC)] != MAGIC:
        if data:
            result.damage.append("not an MCAP file: its first 8 bytes are not the MCAP magic")
        return result
    pos = len(MAGIC)
    damaged_chunks = 0
    while pos + _FRAME.size <= len(data):
        opcode, length = _FRAME.unpack_from(data, pos)
        start, end = pos + _FRAME.size, pos + _FRAME.size + length
        if opcode not in _KNOWN or end > len(data):
            resume = _next_chunk(data, pos + 1)
            if resume is None:
                if opcode in _KNOWN:  # the last record runs past the end: cut short, not damaged
                    break
                result.damage.append(f"bytes {pos}-{len(data)}: not MCAP records (damaged framing), skipped")
                break
            result.damage.append(f"bytes {pos}-{resume}: damaged record framing, skipped to the next intact chunk")
            damaged_chunks += 1
            pos = resume
            continue
        content = data[start:end]
        if opcode == Opcode.CHUNK:
            records, problem = _chunk_records(content)
            if problem:
                damaged_chunks += 1
                result.damage.append(f"chunk at byte {pos}: {problem}; its messages are skipped")
            result.records += records
        elif opcode in (Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE):  # a file written without chunks
            read = {Opcode.SCHEMA: Schema.read, Opcode.CHANNEL: Channel.read}.get(opcode)
            try:
                stream = ReadDataStream(io.BytesIO(content))
                result.records.append(read(stream) if read else Message.read(stream, length))
            except Exception as exc:
                result.damage.append(f"record at byte {pos}: unreadable ({type(exc).__name__}), skipped")
        elif opcode == Opcode.METADATA:
            try:
                result.records.append(_exactly(Metadata.read, content))
            except Exception as exc:  # whatever the record reader makes of damaged bytes
                result.damage.append(f"metadata record at byte {pos}: unreadable ({type(exc).__name__}), skipped")
        elif opcode == Opcode.DATA_END:
            result.complete = True
            (crc,) = struct.unpack_from("<I", content) if len(content) >= 4 else (0,)
            if crc and crc != _crc32(data, pos) and not damaged_chunks:
                result.damage.append(
                    "the data section's CRC does not match: something outside the chunks (metadata, indexes) is damaged"
                )
            result.summary, problem = _summary(data)
            if problem:
                result.damage.append(problem)
            break
        pos = end
    return result


def _crc32(data: bytes | mmap.mmap, end: int, piece: int = 1 << 24) -> int:
    """CRC-32 of data[:end], a piece at a time (a long run's log need not be copied whole)."""
    crc = 0
    for start in range(0, end, piece):
        crc = zlib.crc32(data[start : min(end, start + piece)], crc)
    return crc


def _exactly(read, content: bytes):
    """A record read from `content`, which it must use up exactly (else the content is damaged)."""
    stream = ReadDataStream(io.BytesIO(content))
    record = read(stream)
    if stream.count != len(content):
        raise ValueError(f"record of {len(content)} bytes, {stream.count} read")
    return record


def _chunk_records(content: bytes) -> tuple[list[Any], str | None]:
    """The records inside one chunk, or none and why."""
    try:
        chunk = _exactly(Chunk.read, content)
        stream, size = get_chunk_data_stream(chunk, validate_crc=True)
        records = []
        while stream.count < size:
            opcode, length = stream.read1(), stream.read8()
            body = stream.read(length)
            if opcode == Opcode.SCHEMA:
                records.append(_exactly(Schema.read, body))
            elif opcode == Opcode.CHANNEL:
                records.append(_exactly(Channel.read, body))
            elif opcode == Opcode.MESSAGE:
                records.append(Message.read(ReadDataStream(io.BytesIO(body)), length))
        return records, None
    except Exception as exc:  # a CRC mismatch or what a decompressor makes of damaged bytes
        return [], f"{type(exc).__name__}: {exc}"


def _next_chunk(data: bytes, pos: int) -> int | None:
    """Offset of the next chunk record at or after `pos` whose CRC holds, or None."""
    while (pos := data.find(bytes([Opcode.CHUNK]), pos)) >= 0:
        if pos + _FRAME.size + _CHUNK_HEAD.size <= len(data):
            _, length = _FRAME.unpack_from(data, pos)
            _, _, size, crc = _CHUNK_HEAD.unpack_from(data, pos + _FRAME.size)
            end = pos + _FRAME.size + length
            if crc and size <= MAX_CHUNK_BYTES and end <= len(data):
                if _chunk_records(data[pos + _FRAME.size : end])[1] is None:
                    return pos
        pos += 1
    return None


_FOOTER = struct.Struct("<BQQQI")  # opcode, length, summary start, summary offset start, summary CRC


def _summary(data: bytes | mmap.mmap) -> tuple[list[Any], str | None]:
    """Schema and Channel records of the summary section, if the footer's CRC vouches for it; else
    none, and why."""
    at = len(data) - len(MAGIC) - _FOOTER.size
    if at < 0 or data[len(data) - len(MAGIC) :] != MAGIC:
        return [], None
    opcode, length, start, _, crc = _FOOTER.unpack_from(data, at)
    if opcode != Opcode.FOOTER or length != _FOOTER.size - _FRAME.size:
        return [], "the footer is damaged: the summary section is not used"
    if not start:
        return [], None
    if not len(MAGIC) <= start <= at or (crc and zlib.crc32(data[start : at + _FOOTER.size - 4]) != crc):
        return [], "the summary section's CRC does not match: it is not used"
    records, pos = [], start
    while pos + _FRAME.size <= at:
        opcode, length = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if end > at:
            break
        if opcode == Opcode.SCHEMA:
            records.append(_exactly(Schema.read, data[pos + _FRAME.size : end]))
        elif opcode == Opcode.CHANNEL:
            records.append(_exactly(Channel.read, data[pos + _FRAME.size : end]))
        pos = end
    return records, None
