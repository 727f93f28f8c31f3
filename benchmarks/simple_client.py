"""A simple concurrent Supplier API client, written the obvious way: the yardstick for the
appliance's ingest (``benchmarks/ingest_bench.py``).

List ``GET /letters?limit=2500``; take the listed letters 32 at a time and, for each at
once, ``GET /letters/{id}/data`` (303), GET the pre-signed URL, SHA-256 the bytes against
the listed hash and count the pages with pypdf (on the event loop, as such a script would);
then one ``POST /letters`` with the 32 ACCEPTED / REJECTED statuses.  Every API call takes a
token from one bucket (``--rate`` per second, a burst of rate/30 like the appliance's); a
429 waits its Retry-After and tries again.  No durability, no isolation, no retries beyond
429: nothing the appliance has to guarantee.

The deployed server (and the sandbox by default) hides a listed letter for 300 s, so the
client lists with the largest limit and lists again only when it has handled what it got;
``--expect N`` keeps it listing (every 0.2 s while empty) until N letters are decided.

Two HTTP libraries: ``httpx`` (AsyncClient) and ``aiohttp`` (if installed).  Prints one JSON
line: letters/s, the process's own CPU ms per letter, API calls by kind.  Usage:
    python benchmarks/simple_client.py URL [--lib httpx|aiohttp] [--expect N] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import logging
import time
import uuid
from collections import Counter

from pypdf import PdfReader

JSON_API = "application/vnd.api+json"
BATCH = 32
LIST_LIMIT = 2500
logging.getLogger("pypdf").setLevel(logging.ERROR)  # a corrupt letter is expected, not news


class Bucket:
    """Token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int | None = None):
        self.rate, self.burst = rate, burst or max(1, int(rate / 30))
        self.tokens, self.at = float(self.burst), time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
                self.at = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class Http:
    """The four calls the client makes, over httpx or aiohttp: (status, headers, body)."""

    def __init__(self, lib: str, base_url: str):
        self.lib, self.base = lib, base_url.rstrip("/")

    async def __aenter__(self) -> "Http":
        if self.lib == "httpx":
            import httpx

            self.session = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64))
        else:
            import aiohttp

            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                                 connector=aiohttp.TCPConnector(limit=64))
        return self

    async def __aexit__(self, *exc) -> None:
        await (self.session.aclose() if self.lib == "httpx" else self.session.close())

    async def request(self, method: str, url: str, headers: dict, body: bytes | None = None):
        if self.lib == "httpx":
            r = await self.session.request(method, url, headers=headers, content=body)
            return r.status_code, r.headers, r.content
        import yarl

        async with self.session.request(method, yarl.URL(url, encoded=True), headers=headers,
                                        data=body, allow_redirects=False) as r:
            return r.status, r.headers, await r.read()


class SimpleClient:
    def __init__(self, http: Http, rate: float):
        self.http, self.bucket = http, Bucket(rate)
        self.calls: Counter = Counter()

    async def api(self, kind: str, method: str, path: str, body: dict | None = None):
        """One API call through the bucket; a 429 waits its Retry-After and goes again."""
        while True:
            await self.bucket.take()
            headers = {"X-Request-ID": str(uuid.uuid4()), "Accept": JSON_API}
            raw = None
            if body is not None:
                headers["Content-Type"] = JSON_API
                raw = json.dumps(body).encode()
            self.calls[kind] += 1
            status, resp_headers, content = await self.http.request(method, self.http.base + path,
                                                                    headers, raw)
            if status != 429:
                return status, resp_headers, content
            self.calls["429"] += 1
            await asyncio.sleep(float(resp_headers.get("retry-after") or 1))

    async def check(self, item: dict) -> tuple[dict, int]:
        """Download one letter and decide it: (status item for the POST, pages)."""
        lid = item["id"]
        status, headers, _ = await self.api("data", "GET", f"/letters/{lid}/data")
        if status != 303:
            raise RuntimeError(f"GET /letters/{lid}/data answered {status}")
        self.calls["presigned"] += 1
        status, _, pdf = await self.http.request("GET", headers["location"], {})
        if status != 200:
            raise RuntimeError(f"pre-signed GET for {lid} answered {status}")
        pages = 0
        if hashlib.sha256(pdf).hexdigest() == item["attributes"]["sha256Hash"]:
            try:
                pages = len(PdfReader(io.BytesIO(pdf)).pages)
            except Exception:
                pages = 0
        attrs = ({"status": "ACCEPTED"} if pages else
                 {"status": "REJECTED", "reasonCode": "BAD_PDF", "reasonText": "hash or PDF unreadable"})
        return {"type": "Letter", "id": lid, "attributes": attrs}, pages

    async def run(self, expect: int | None, timeout: float) -> dict:
        decided: set[str] = set()
        accepted = pages = 0
        t0 = time.perf_counter()
        while expect is None or len(decided) < expect:
            if time.perf_counter() - t0 > timeout:
                break
            status, _, content = await self.api("list", "GET", f"/letters?limit={LIST_LIMIT}")
            listed = [i for i in json.loads(content)["data"] if i["id"] not in decided] if status == 200 else []
            if not listed:
                if expect is None:
                    break
                await asyncio.sleep(0.2)  # nothing visible yet: list again shortly
                continue
            for at in range(0, len(listed), BATCH):
                results = await asyncio.gather(*(self.check(i) for i in listed[at:at + BATCH]))
                status, _, _ = await self.api("post_letters", "POST", "/letters",
                                              {"data": [r for r, _ in results]})
                if status != 202:
                    raise RuntimeError(f"POST /letters answered {status}")
                for r, n in results:
                    decided.add(r["id"])
                    accepted += r["attributes"]["status"] == "ACCEPTED"
                    pages += n
        wall = time.perf_counter() - t0
        n = len(decided)
        api_calls = sum(v for k, v in self.calls.items() if k not in ("presigned", "429"))
        return {"letters": n, "accepted": accepted, "pages": pages, "seconds": round(wall, 3),
                "letters_per_s": round(n / wall, 1) if wall else None, "api_calls": dict(self.calls),
                "api_calls_per_letter": round(api_calls / n, 3) if n else None}


async def measure(url: str, lib: str = "httpx", rate: float = 300.0, expect: int | None = None,
                  timeout: float = 600.0) -> dict:
    """One run; adds the process's CPU ms per letter over the run (all its threads)."""
    async with Http(lib, url) as http:
        cpu0 = time.process_time()
        out = await SimpleClient(http, rate).run(expect, timeout)
        cpu = time.process_time() - cpu0
    out["cpu_ms_per_letter"] = round(1000 * cpu / out["letters"], 2) if out["letters"] else None
    return {"lib": lib, **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--lib", choices=("httpx", "aiohttp"), default="httpx")
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--expect", type=int, default=None,
                    help="keep listing until this many letters are decided (default: stop at an empty list)")
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(measure(a.url, a.lib, a.rate, a.expect, a.timeout))))


if __name__ == "__main__":
    main()
