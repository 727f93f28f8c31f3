"""The daemon's end of the control socket (protocol and commands: ``protocol``)."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import time
from collections import deque
from pathlib import Path

from appliance.control.protocol import EVENT_QUEUE, MAX_LINE, brief, dumps
from appliance.core.errors import UserError
from appliance.core.status import FINAL

log = logging.getLogger("appliance.control.server")


class Throughput:
    """Letters reaching a final status, bucketed per minute (from letter events)."""

    def __init__(self, minutes: int = 10, clock=time.time):
        self.minutes = minutes
        self.clock = clock
        self.buckets: deque[list[int]] = deque(maxlen=minutes)  # [minute, count]

    def add(self) -> None:
        minute = int(self.clock() // 60)
        if self.buckets and self.buckets[-1][0] == minute:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([minute, 1])

    def per_minute(self) -> list[int]:
        now = int(self.clock() // 60)
        by_minute = dict((m, n) for m, n in self.buckets)
        return [by_minute.get(m, 0) for m in range(now - self.minutes + 1, now + 1)]


class ControlServer:
    """Serves the protocol above for one pipeline; ``start()`` / ``stop()``."""

    def __init__(self, pipeline, path: str | os.PathLike, *, group: str | None = None, operator=None,
                 max_clients: int = 32, mi=None):
        from appliance.pipeline.operator import Operator  # the pipeline side only; clients never import this

        self.p = pipeline
        self.path = Path(path)
        self.group = group
        self.op = operator or Operator(pipeline)
        self.throughput = Throughput()
        self.mi = mi  # the MiService of a daemon that records MI (None: MI commands refused)
        self._server: asyncio.AbstractServer | None = None
        self._subscribers: dict[asyncio.StreamWriter, asyncio.Queue] = {}
        self._conn_tasks: set[asyncio.Task] = set()
        self.max_clients = max_clients
        self.refused = 0  # connections turned away because max_clients were connected

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _someone_listening(self.path):
                raise UserError(f"another daemon already serves {self.path}; stop it or use --socket")
            self.path.unlink()  # stale socket from a crash
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o660)
        if self.group:
            try:
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            except KeyError:
                log.warning("control socket group %r does not exist; left as is", self.group)
            except PermissionError:
                log.warning("cannot chgrp control socket to %r", self.group)
        self.p.listeners.append(self._on_change)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.p.listeners.remove(self._on_change)
        if self._server:
            self._server.close()
        for w in list(self._subscribers):
            w.close()
        for t in list(self._conn_tasks):
            t.cancel()
        await asyncio.gather(*self._conn_tasks, return_exceptions=True)
        if self._server:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- events -----------------------------------------------------------------------

    def _on_change(self, kind: str, data: dict) -> None:
        """Called synchronously by the pipeline: only queue, never wait."""
        if kind == "letter" and data.get("status") in FINAL and data.get("stage") in ("done", None):
            self.throughput.add()
        line = dumps({"event": kind, "data": data})
        for writer, q in list(self._subscribers.items()):
            try:
                q.put_nowait(line)
            except asyncio.QueueFull:
                log.warning("console too slow; disconnecting it")
                self._subscribers.pop(writer, None)
                writer.close()

    async def _pump(self, writer: asyncio.StreamWriter, q: asyncio.Queue) -> None:
        try:
            while True:
                writer.write(await q.get())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.pop(writer, None)

    # --- requests ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conn_tasks) >= self.max_clients:
            # Each connection holds a file descriptor; a flood of them must not take the
            # descriptors intake and the devices need.  Say why in one line and hang up.
            self.refused += 1
            if self.refused == 1 or self.refused % 100 == 0:
                log.warning("control socket: %d clients connected, refusing more (%d refused)",
                            self.max_clients, self.refused)
            with contextlib.suppress(Exception):
                writer.write(dumps({"id": None, "ok": False,
                                     "error": f"too many consoles connected ({self.max_clients}); "
                                              "close one and try again"}))
                writer.close()
            return
        task = asyncio.current_task()
        self._conn_tasks.add(task)
        pump = None
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(dumps({"id": None, "ok": False, "error": "request line too long"}))
                    break
                if not raw:
                    break
                reply = await self._answer(raw)
                writer.write(dumps(reply))
                await writer.drain()
                if reply.get("result") == {"subscribed": True} and pump is None:
                    q: asyncio.Queue = asyncio.Queue(maxsize=EVENT_QUEUE)
                    self._subscribers[writer] = q
                    pump = asyncio.create_task(self._pump(writer, q))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.pop(writer, None)
            if pump:
                pump.cancel()
            writer.close()
            self._conn_tasks.discard(task)

    async def _answer(self, raw: bytes) -> dict:
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            return {"id": None, "ok": False, "error": "request is not a JSON object on one line"}
        rid, cmd, args = req.get("id"), req.get("cmd"), req.get("args") or {}
        handler = getattr(self, f"cmd_{cmd}", None) if isinstance(cmd, str) else None
        if handler is None or not isinstance(args, dict):
            return {"id": rid, "ok": False, "error": f"unknown command {cmd!r}; see appliance.control.server docs"}
        try:
            return {"id": rid, "ok": True, "result": await handler(**args)}
        except TypeError as e:
            return {"id": rid, "ok": False, "error": f"bad arguments for {cmd}: {e}"}
        except UserError as e:
            return {"id": rid, "ok": False, "error": str(e)}
        except Exception as e:  # a console must never take the daemon down
            log.exception("control command %s failed", cmd)
            return {"id": rid, "ok": False, "error": f"internal error in {cmd}: {e}"}

    # --- commands ---------------------------------------------------------------------

    async def cmd_status(self) -> dict:
        snap = self.p.snapshot()
        snap["throughput"] = self.throughput.per_minute()
        # inserter -> envelope ids in its feeders (None: takes any), for consoles and scripts
        stock = self.p.envelope_stock
        snap["envelopes"] = {name: stock.listing(name) for name in stock.loaded}
        snap["time"] = time.time()
        return snap

    async def cmd_letters(self, q: str = "", group: str | None = None, specification: str | None = None,
                          status: str | None = None, device: str | None = None, stage: str | None = None,
                          min_age: float | None = None, refused: bool = False, limit: int = 100,
                          offset: int = 0) -> dict:
        store = self.p.store
        q = (q or "").strip()
        now = time.time()
        hot = [
            r for r in store.letters(status=status or None, stage=stage or None)
            if (not q or q in r["id"])
            and (not group or group in (r.get("group_id") or ""))
            and (not specification or specification in (r.get("specification_id") or ""))
            and (not device or device == r.get("device") or device == r.get("printer"))
            and (min_age is None or now - (r.get("created") or now) >= min_age)
            and (not refused or r.get("refused"))
        ]
        hot.sort(key=lambda r: r.get("updated") or 0, reverse=True)
        limit, offset = max(0, min(int(limit), 5000)), max(0, int(offset))
        page = [brief(r) for r in hot[offset:offset + limit]]
        archived_total = 0
        if not (group or specification or device or stage or min_age or refused):
            # archived letters follow the hot ones (a letter is never both: see Store.archived_page)
            archived_total, rows = store.archived_page(
                q=q, status=status or None, start=max(0, offset - len(hot)), limit=limit - len(page))
            page += [{"id": i, "status": st, "stage": "archived", "specification_id": spec}
                     for i, st, spec in rows]
        return {"total": len(hot) + archived_total, "letters": page}

    async def cmd_letter(self, id: str) -> dict:
        rec = self.p.store.get(id)
        if rec is None:
            raise UserError(f"letter {id} is not known to this appliance; check the id")
        rec["outbox"] = self.p.store.outbox_of(id)
        rec.update(self.p.deadline_detail(rec))  # dispatch-by in local time, and why at risk
        return rec

    async def cmd_pause(self, device: str) -> str:
        return await self.op.pause(device)

    async def cmd_resume(self, device: str) -> str:
        return await self.op.resume(device)

    async def cmd_drain(self, device: str) -> str:
        return await self.op.drain(device)

    async def cmd_envelopes(self, inserter: str, action: str = "list", envelope: str = "",
                            who: str = "operator") -> dict:
        """The envelope ids loaded at an inserter; ``add`` / ``remove`` one."""
        return await self.op.envelopes(inserter, action, envelope, who)

    async def cmd_reprint(self, id: str) -> str:
        return await self.op.reprint(id)

    async def cmd_retry(self, id: str) -> str:
        return await self.op.retry(id)

    async def cmd_handled(self, id: str, note: str = "") -> str:
        return await self.op.handled(id, note)

    async def cmd_cancel(self, id: str, reason: str | None = None) -> str:
        return await self.op.cancel(id, reason or "Cancelled by operator")

    async def cmd_fail(self, id: str, reason: str | None = None, code: str | None = None) -> str:
        return await self.op.fail(id, reason, code)

    async def cmd_failure_reasons(self) -> dict:
        return dict(getattr(self.p.profile, "failure_reasons", {}) or {})

    async def cmd_bulk_status(self, rows: list) -> dict:
        from appliance.core.returns import row_from_dict

        if not isinstance(rows, list) or len(rows) > 100_000:
            raise UserError("rows must be a list of at most 100000 {letter_id, status, ...}")
        good, results, failed = [], [], []
        for d in rows:
            if isinstance(d, dict) and str(d.get("status") or "").upper() == "FAILED":
                failed.append(d)  # FAILED by a person: the same agreed-code rule as 'fail'
                continue
            try:
                good.append(row_from_dict(d if isinstance(d, dict) else {}))
            except ValueError as e:
                line = d.get("line") if isinstance(d, dict) else None
                results.append({"line": line, "letter_id": d.get("letter_id") if isinstance(d, dict) else None,
                                "ok": False, "message": f"line {line}: {e}"})
        results += await self.op.bulk(good)
        for d in failed:
            out = {"line": d.get("line"), "letter_id": d.get("letter_id"), "status": "FAILED", "ok": False}
            try:
                out["message"], out["ok"] = await self.op.fail(
                    str(d.get("letter_id") or ""), d.get("reason_text"), d.get("reason_code")), True
            except UserError as e:
                out["message"] = f"line {d.get('line')}: {e}"
            results.append(out)
        return {"results": sorted(results, key=lambda r: r.get("line") or 0)}

    def _mi(self):
        if self.mi is None:
            raise UserError("this daemon does not record MI (it runs under 'appliance run'); "
                            "use 'appliance mi ... --config PATH' with the daemon stopped")
        return self.mi

    async def cmd_mi_report(self, date: str = "yesterday") -> dict:
        return self._mi().report(date)

    async def cmd_mi_submit(self, date: str = "yesterday", partial: bool = False,
                            allow_default_names: bool = False) -> dict:
        return await self._mi().submit(date, partial=partial, allow_default_names=allow_default_names)

    async def cmd_mi_resolve(self, key: str, mi_id: str | None = None, not_sent: bool = False) -> str:
        return await self._mi().resolve(key, mi_id=mi_id, not_sent=not_sent)

    async def cmd_return(self, id: str, reason: str) -> str:
        return await self.op.returned(id, reason)

    async def cmd_resolve(self, id: str, outcome: str, code: str | None = None) -> str:
        return await self.op.resolve(id, outcome, code)

    async def cmd_audit(self, device: str | None = None, limit: int = 200) -> dict:
        return {"rows": self.p.audit.rows(device or None, max(1, min(int(limit), 5000)))}

    async def cmd_alerts(self, closed: bool = False) -> dict:
        book = self.p.alerts
        return {"open": [a.as_dict() for a in book.open_alerts()],
                "closed": [a.as_dict() for a in book.closed_alerts()] if closed else []}

    async def cmd_ack(self, key: str, who: str = "") -> str:
        if not isinstance(key, str) or not isinstance(who, str):
            raise UserError("ack needs key and who as text")
        return await self.op.ack(key, who)

    async def cmd_subscribe(self) -> dict:
        return {"subscribed": True}


def _someone_listening(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


