"""Ask the printer itself (not CUPS) how far it got with a job.

Why: CUPS's own ``job-impressions-completed`` / ``job-media-sheets-completed`` count the
pages its filters *converted*, which for an IPP Everywhere queue is the whole document
within a fraction of a second, long before a sheet leaves the printer (measured with CUPS
2.4.2 + cups-filters 1.28: 10 of 10 impressions reported while the device was still on
its first side).  The printer's own counter is the one that follows the paper, so batch
printing reads it straight from the device behind the queue (its ``device-uri``), matching
the job by ``job-name`` (the CUPS ipp backend passes the name on).

Only enough of the IPP wire format (RFC 8010) for one Get-Jobs request is written here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

GET_JOBS = 0x000A
OPERATION_TAG, END_TAG = 0x01, 0x03
INTEGER, BOOLEAN, ENUM = 0x21, 0x22, 0x23
NAME, KEYWORD, URI, CHARSET, LANGUAGE = 0x42, 0x44, 0x45, 0x47, 0x48
_NUMBERS = (INTEGER, ENUM)
_DELIMITERS = range(0x00, 0x10)

PROGRESS_ATTRS = ["job-id", "job-name", "job-state", "job-impressions-completed", "job-media-sheets-completed"]


@dataclass(frozen=True)
class DeviceJob:
    job_id: int
    name: str
    state: int
    impressions: int
    sheets: int


def http_url(device_uri: str) -> str | None:
    """``ipp://host:port/path`` -> ``http://host:port/path``; None for a device the
    appliance cannot ask over IPP (usb://, socket://, dnssd://...)."""
    parts = urlsplit(device_uri)
    scheme = {"ipp": "http", "ipps": "https"}.get(parts.scheme)
    if not scheme or not parts.hostname:
        return None
    port = parts.port or 631
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}{parts.path or '/ipp/print'}"


def encode(op: int, request_id: int, attrs: list[tuple[int, str, object]]) -> bytes:
    """An IPP/1.1 request with operation attributes only (a list value = 1setOf)."""
    out = bytearray(struct.pack(">BBHI", 1, 1, op, request_id))
    out.append(OPERATION_TAG)
    for tag, name, value in attrs:
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            n = name.encode() if i == 0 else b""
            data = struct.pack(">i", v) if tag in _NUMBERS else str(v).encode()
            out += struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(data)) + data
    out.append(END_TAG)
    return bytes(out)


def decode(body: bytes) -> tuple[int, list[tuple[int, dict[str, list]]]]:
    """(status-code, [(group tag, {name: [values]})]); collections come out flattened,
    which is harmless for the integer and name attributes read here."""
    if len(body) < 9:
        raise ValueError("short IPP response")
    status = struct.unpack(">H", body[2:4])[0]
    groups: list[tuple[int, dict[str, list]]] = []
    pos, last = 8, None
    while pos < len(body):
        tag = body[pos]
        pos += 1
        if tag == END_TAG:
            break
        if tag in _DELIMITERS:
            groups.append((tag, {}))
            continue
        (nlen,) = struct.unpack(">H", body[pos:pos + 2])
        name = body[pos + 2:pos + 2 + nlen].decode("utf-8", "replace")
        pos += 2 + nlen
        (vlen,) = struct.unpack(">H", body[pos:pos + 2])
        raw = body[pos + 2:pos + 2 + vlen]
        pos += 2 + vlen
        if tag in _NUMBERS and vlen == 4:
            value: object = struct.unpack(">i", raw)[0]
        elif tag == BOOLEAN:
            value = bool(raw and raw[0])
        elif 0x40 <= tag <= 0x4A:
            value = raw.decode("utf-8", "replace")
        else:
            value = raw
        if not groups:
            groups.append((OPERATION_TAG, {}))
        attrs = groups[-1][1]
        if name:
            last = name
            attrs[name] = [value]
        elif last is not None and last in attrs:
            attrs[last].append(value)
    return status, groups


def jobs_of(groups: list[tuple[int, dict[str, list]]]) -> list[DeviceJob]:
    out = []
    for tag, attrs in groups:
        if tag != 0x02 or "job-id" not in attrs:
            continue
        first = {k: v[0] for k, v in attrs.items() if v}
        out.append(DeviceJob(int(first["job-id"]), str(first.get("job-name", "")),
                             int(first.get("job-state", 0) or 0),
                             int(first.get("job-impressions-completed", 0) or 0),
                             int(first.get("job-media-sheets-completed", 0) or 0)))
    return out


class DeviceProgress:
    """Reads job progress from one printer over IPP.  Every failure is ``None`` (unknown),
    never an exception: progress is a bonus, completion in CUPS remains the fallback."""

    def __init__(self, device_uri: str, timeout: float = 2.0):
        self.device_uri = device_uri
        self.url = http_url(device_uri)
        # Printers serve ipps with self-signed certificates; we only read job counters.
        self._client = httpx.AsyncClient(timeout=timeout, verify=False) if self.url else None
        self._request_id = 0
        self.last_error = ""

    async def jobs(self) -> list[DeviceJob] | None:
        if self._client is None:
            self.last_error = f"device {self.device_uri!r} is not an ipp:// or ipps:// printer"
            return None
        found: list[DeviceJob] = []
        for which in ("not-completed", "completed"):  # "all" is not universally supported
            self._request_id += 1
            body = encode(GET_JOBS, self._request_id, [
                (CHARSET, "attributes-charset", "utf-8"), (LANGUAGE, "attributes-natural-language", "en"),
                (URI, "printer-uri", self.device_uri), (KEYWORD, "which-jobs", which),
                (KEYWORD, "requested-attributes", PROGRESS_ATTRS)])
            try:
                r = await self._client.post(self.url, content=body, headers={"Content-Type": "application/ipp"})
                status, groups = decode(r.content)
            except (httpx.HTTPError, ValueError, struct.error) as e:
                self.last_error = f"{type(e).__name__}: {e}"
                return None
            if status >= 0x0100:
                self.last_error = f"Get-Jobs refused (IPP 0x{status:04x})"
                return None
            found += jobs_of(groups)
        self.last_error = ""
        return found

    async def job(self, name: str) -> DeviceJob | None:
        """The printer's newest job with this name, or None (unknown or not there)."""
        jobs = await self.jobs()
        if not jobs:
            return None
        mine = [j for j in jobs if j.name.lower() == name.lower()]
        return max(mine, key=lambda j: j.job_id) if mine else None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
