"""Content-Encoding decoded under a size cap.  Pure (zlib only).

httpx and http.client inflate a compressed chunk in one call, so a few kilobytes of gzip
can become gigabytes before any size check sees them (a two-layer gzip bomb on the letter
list once cost the daemon a MemoryError).  Here every layer is inflated in steps of at
most ``room + 1`` bytes, so an over-size body is noticed after ``room`` bytes.
"""

from __future__ import annotations

import zlib

from appliance.core.errors import Overflow, UnsupportedEncoding


def decoders_for(header: str) -> list:
    """One decompressor per layer of a Content-Encoding header, in the order to apply them."""
    out = []
    for coding in reversed([c.strip().lower() for c in header.split(",") if c.strip()]):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            out.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
        elif coding == "deflate":
            out.append(zlib.decompressobj())
        else:
            raise UnsupportedEncoding(f"Content-Encoding {coding[:20]!r} is not one this appliance decodes")
    return out


def decode_bounded(decoders: list, data: bytes, room: int) -> list[bytes]:
    """``data`` through every layer; Overflow once more than ``room`` bytes come out of the
    last one (or of any layer before it), zlib.error for a body that does not decode."""
    chunks = [data]
    for d in decoders:
        out: list[bytes] = []
        size = 0
        for chunk in chunks:
            buf = chunk
            while buf:
                piece = d.decompress(buf, room + 1)
                size += len(piece)
                if size > room:
                    raise Overflow(f"decoded body over {room} bytes")
                out.append(piece)
                buf = d.unconsumed_tail
        chunks = out
    return chunks
