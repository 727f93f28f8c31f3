"""Task functions for pool tests: real work in real worker processes (imported there by
name, as pebble pickles a task's function by reference)."""

import time


def spin(job: dict) -> dict:
    from appliance.intake.worker import _cpu_budget

    _cpu_budget(job["cpu_seconds"])
    while True:  # until the kernel's SIGXCPU
        pass


def hog(job: dict) -> dict:
    try:
        blocks = [bytearray(64 << 20) for _ in range(64)]  # 4 GB, far over the limit
        return {"ok": True, "got": len(blocks)}
    except MemoryError:
        return {"ok": False, "memory": True}


def sleep(job: dict) -> dict:
    time.sleep(job.get("seconds", 60))
    return {"ok": True}


def echo(job: dict) -> dict:
    return {"ok": True, "job": job.get("value")}
