"""Sandbox throughput with keep-alive clients; prints one JSON line of figures.

The server runs in its own process (``appliance sandbox --port 0``) so client and server
do not share a GIL; the client is a raw asyncio HTTP/1.1 loop so it measures the server,
not a client library.  Usage: python benchmarks/sandbox_throughput.py [--seconds 5]
[--connections 8] [--letters 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time


async def _request(reader, writer, method: str, path: str, body: bytes = b"") -> int:
    head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nX-Request-ID: bench\r\n"
            f"Content-Length: {len(body)}\r\n")
    if body:
        head += "Content-Type: application/vnd.api+json\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    status = int(raw[9:12])
    length = int(re.search(rb"(?i)content-length: *(\d+)", raw).group(1))
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, ids: list[str], offset: int, deadline: float,
                  stats: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    while time.perf_counter() < deadline:
        i += 1
        letter = ids[i % len(ids)]
        if i % 10 == 0:
            status = await _request(reader, writer, "GET", "/letters?limit=10")
        elif i % 10 == 5:
            body = json.dumps({"data": {"type": "Letter", "id": letter,
                                        "attributes": {"status": "ACCEPTED"}}}).encode()
            status = await _request(reader, writer, "PATCH", f"/letters/{letter}", body)
        else:
            status = await _request(reader, writer, "GET", f"/letters/{letter}")
        stats["requests"] += 1
        if status >= 400:
            stats["errors"] += 1
    writer.close()


async def _bench(host: str, port: int, seconds: float, connections: int) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /letters HTTP/1.1\r\nHost: bench\r\nX-Request-ID: bench\r\n\r\n")
    raw = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", raw).group(1))
    ids = [d["id"] for d in json.loads(await reader.readexactly(length))["data"]]
    writer.close()
    stats = {"requests": 0, "errors": 0}
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_worker(host, port, ids, k * 7, deadline, stats)
                           for k in range(connections)))
    elapsed = time.perf_counter() - start
    return {"benchmark": "sandbox_throughput", "connections": connections,
            "seconds": round(elapsed, 2), "requests": stats["requests"],
            "errors": stats["errors"], "requests_per_s": round(stats["requests"] / elapsed),
            "mix": "80% GET /letters/{id}, 10% GET /letters?limit=10, 10% PATCH"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--letters", type=int, default=2000)
    args = ap.parse_args()
    setup_start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "sandbox", "--port", "0",
         "--letters", str(args.letters), "--bad-ratio", "0.1",
         "--tps-limit", "0", "--visibility-timeout", "0"],  # the server's raw speed
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        startup = time.perf_counter() - setup_start
        m = re.search(r"http://([\d.]+):(\d+)", line)
        if not m:
            print(json.dumps({"benchmark": "sandbox_throughput", "error": line.strip()}))
            return 1
        figures = asyncio.run(_bench(m.group(1), int(m.group(2)), args.seconds,
                                     args.connections))
        figures["letters"] = args.letters
        figures["startup_s"] = round(startup, 3)
        print(json.dumps(figures))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
