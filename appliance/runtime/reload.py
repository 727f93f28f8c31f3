"""``systemctl reload appliance`` (SIGHUP): the running daemon re-reads its floor profile.

New printers, inserters and frankers are started and take work at once; removed ones are
stopped, and a changed one is restarted with its new settings, but only while no letter is
at it: a device with work on it is kept as it was (one log line and an alert say so; drain
it and reload again).  A profile that does not load changes nothing.  Everything else the
profile says (events, failure reasons, reprint, marks, routing rules) takes effect at once,
except ``[mi]`` and ``[verify]`` which need a restart (MI's day and intake's checks were set
up from them).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field

import drivers
from appliance.config.profile import DeviceSpec, Profile
from appliance.pipeline.pipeline import Pipeline
from appliance.pipeline.printing import SUBMIT_STAGES

log = logging.getLogger("appliance")


@dataclass
class Plan:
    """What a reload does, decided before anything is touched."""
    add: list[DeviceSpec] = field(default_factory=list)  # new, or changed and idle (restarted)
    drop: list[str] = field(default_factory=list)  # removed or changed, idle: stopped
    kept: dict[str, int] = field(default_factory=dict)  # removed/changed but busy: name -> letters at it
    profile: Profile | None = None  # the profile in force afterwards


def busy(pipe: Pipeline) -> dict[str, int]:
    """Device name -> letters at it now (handed over, or about to be)."""
    at = Counter(rec["device"] for rec in pipe.store.in_flight()
                 if rec["stage"] in SUBMIT_STAGES and rec.get("device"))
    for name, n in pipe.load.items():
        at[name] = max(at[name], n)
    return {name: n for name, n in at.items() if n > 0}


def plan(old: Profile, new: Profile, at_work: dict[str, int]) -> Plan:
    """Which devices to start and stop; busy devices keep their old spec (pure)."""
    before = {d.name: d for d in old.devices()}
    after = {d.name: d for d in new.devices()}
    p = Plan()
    effective: dict[str, list[DeviceSpec]] = {"printer": [], "inserter": [], "franker": []}
    for name, spec in after.items():
        was = before.get(name)
        if was == spec:
            effective[spec.family].append(spec)
        elif was is not None and at_work.get(name):
            p.kept[name] = at_work[name]
            effective[was.family].append(was)
        else:
            if was is not None:
                p.drop.append(name)
            p.add.append(spec)
            effective[spec.family].append(spec)
    for name, was in before.items():
        if name in after:
            continue
        if at_work.get(name):
            p.kept[name] = at_work[name]
            effective[was.family].append(was)
        else:
            p.drop.append(name)
    p.profile = dataclasses.replace(new, printers=tuple(effective["printer"]),
                                    inserters=tuple(effective["inserter"]),
                                    frankers=tuple(effective["franker"]))
    return p


async def reload_profile(pipe: Pipeline, new: Profile) -> tuple[str, bool]:
    """Apply ``new`` to the running pipeline; returns one line saying what changed, and
    whether a change was refused (a busy device kept as it was).  A new device whose driver
    refuses its settings raises (a ConfigError) before anything has changed."""
    old = pipe.profile
    p = plan(old, new, busy(pipe))
    built = {}
    for spec in p.add:  # build every new driver first: one that refuses its settings changes nothing
        cls = drivers.driver_class(spec.family, spec.driver)
        built[spec.name] = cls(spec.name, spec.settings, pipe.events.put_nowait, state_dir=pipe.state_dir,
                               supervisor=pipe.supervisor)
    # From here to the first await the floor changes at once: routing never sees half of it.
    stopping = [pipe.devices.pop(name) for name in p.drop if name in pipe.devices]
    for name in p.drop:
        pipe.device_state.pop(name, None)
        pipe.load.pop(name, None)
    pipe.profile = p.profile
    pipe.specs = {d.name: d for d in p.profile.devices()}
    pipe.audit.inserters = {s.name for s in p.profile.inserters}
    for name, n in sorted(p.kept.items()):
        why = (f"{name} has {n} letter(s) at it, so the profile's change to it was not applied; "
               f"drain it (appliance drain {name}) and reload again once they are done")
        pipe.alert(name, f"reload: {why}")  # logged there too
    for drv in stopping:
        await drv.stop()
    for name, drv in built.items():
        pipe.devices[name] = drv
        try:
            await drv.start()
        except Exception as e:  # as at start: the floor goes on without it, and says so
            log.exception("starting %s after reload", name)
            pipe.alert(name, f"could not start after reload: {e}")
        pipe.device_state[name] = drv.health().state
    if (old.mi, old.verify) != (new.mi, new.verify):
        log.warning("reload: [mi] and [verify] changes take effect at the next restart")
    dropped = set(p.drop) - set(built)
    changes = ([f"added {n}" for n in built if n not in p.drop]
               + [f"restarted {n}" for n in built if n in p.drop]
               + [f"removed {n}" for n in sorted(dropped)] + [f"kept {n} (busy)" for n in sorted(p.kept)])
    await pipe.retry_held()  # letters waiting for a printer or finisher the new floor has
    await pipe.retry_waiting()
    return f"profile {p.profile.name} reloaded: {', '.join(changes) or 'no device changed'}", bool(p.kept)
