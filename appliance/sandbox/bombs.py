"""Compression bombs for the sandbox's hostile modes, built in milliseconds.

Compressing a gigabyte takes seconds and would stall the sandbox's event loop (and every
request waiting on it); a deflate stream of identical blocks can instead be made by
compressing one block once, after a full flush, and repeating it.
"""

from __future__ import annotations

import functools
import struct
import zlib

BLOCK = 1 << 20


@functools.lru_cache(maxsize=4)
def gzip_of_repeats(byte: bytes = b"\0", megabytes: int = 256) -> bytes:
    """A valid gzip member inflating to ``megabytes`` MiB of ``byte``."""
    block = byte * BLOCK
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)  # self-contained: can be repeated
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(block, crc)
    end = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty final block
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (megabytes * BLOCK) & 0xFFFFFFFF)
    return header + body * megabytes + end + trailer
