"""The pipeline's alerts: raised by cause, closed when the cause clears or a person
acknowledges it (the model: ``appliance.core.alerts``).

A mixin of ``Pipeline`` (``appliance.pipeline.pipeline``): it needs ``alerts`` (an
``Alerts``), ``specs``, ``devices``, ``store``, ``state_dir``, ``publish`` and ``_acks``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from appliance.core.alerts import DEVICE_STATE_CONDITIONS, Alert, device_condition, severity_for, slug
from appliance.store.journal import Journal

log = logging.getLogger("appliance.pipeline.pipeline")


class Alerting:
    def alert(self, source: str, message: str, letter_id: str | None = None, *, key: str | None = None,
              device: str | None = None, severity: str | None = None) -> Alert:
        """Raise the alert for one cause (``appliance.core.alerts``).  Without ``key`` the cause
        is the device's condition read from the message, else the source and letter, else
        the source and the message's words.  A condition that clears by itself must be
        raised with an explicit key and cleared with ``clear_alert``."""
        if device is None and source in self.specs:
            device = source
        if key is None:
            if device is not None:
                condition, sev = device_condition(message)
                key = (f"letter:{letter_id}:{device}-{condition}" if letter_id
                       else f"device:{device}:{condition}")
                severity = severity or sev
            elif letter_id:
                key = f"letter:{letter_id}:{source}"
            else:
                key = f"{source}:{slug(message)}"
        severity = severity or severity_for(key.rsplit(":", 1)[-1])
        a, tell = self.alerts.raise_(key, source, message, time.time(), severity=severity,
                                     letter_id=letter_id, device=device)
        if a.count == 1:
            log.warning("%s: %s%s", source, message, f" ({letter_id})" if letter_id else "",
                        extra={"letter_id": letter_id, "device": device})  # journald fields
        if tell:
            self.publish("alert", a.as_dict())
        return a

    def clear_alert(self, key: str, by: str = "cleared") -> Alert | None:
        """Its condition no longer holds (or ``by`` a person acknowledged it)."""
        a = self.alerts.close(key, time.time(), by)
        if a is not None:
            self.publish("alert", a.as_dict())
        return a

    def clear_alerts(self, test) -> None:
        for a in self.alerts.close_where(test, time.time()):
            self.publish("alert", a.as_dict())

    def acknowledge(self, key: str, who: str) -> Alert | None:
        """A person closes an alert: recorded in the letter's timeline and the ack journal."""
        a = self.clear_alert(key, by=who)
        if a is None:
            return None
        if a.letter_id and self.store.get(a.letter_id) is not None:
            self.store.update(a.letter_id, event=f"alert acknowledged by {who}: {a.message}")
        try:
            if self._acks is None:
                self._acks = Journal(self.state_dir / "audit" / "alerts" / "acks.jsonl", sync="each")
            self._acks.append({"t": round(a.closed_at, 3), "key": key, "who": who, "letter_id": a.letter_id,
                               "device": a.device, "message": a.message, "count": a.count,
                               "opened": round(a.opened, 3)})
        except OSError as e:  # the audit must never stop the floor
            log.warning("alert acknowledgement not written: %s", e)
        return a

    def _device_ready(self, device: str) -> None:
        """A device is back to work: every condition that held while it was not is over."""
        self.clear_alerts(lambda a: a.device == device and a.key.startswith(f"device:{device}:")
                          and DEVICE_STATE_CONDITIONS.match(a.key.split(":", 2)[2]) is not None)

    def _check_device_alerts(self) -> None:
        """Close device alerts whose condition is over: a device ready again, stock refilled
        above what the low/out-of alert said."""
        for a in list(self.alerts.open.values()):
            if a.device not in self.devices or not a.key.startswith(f"device:{a.device}:"):
                continue
            condition = a.key.split(":", 2)[2]
            counters = self.devices[a.device].health().counters
            if condition.startswith("out-of-") or condition.endswith("-low"):
                item = condition[len("out-of-"):] if condition.startswith("out-of-") else condition[:-4]
                level = next((v for k, v in counters.items() if k.lower() == f"stock_{item}"), None)
                said = [int(n) for n in re.findall(r"(\d+) left", a.message)] or [0]
                if level is not None and level > said[-1]:
                    self.clear_alert(a.key)

    async def _alert_watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._check_device_alerts()
