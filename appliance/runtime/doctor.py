"""``appliance doctor``: is this floor ready to print?  One line per problem, with the fix.

The doctor looks for what stops a first start: the state folder (creatable and writable by
the user the service runs as), its lock, the private key, the API (reachable, a token, the
clock), free disk for the spool.  Each device family contributes checks through a
``doctor_checks(profile, config)`` function, found through the driver registry
(``drivers.doctor_checks``), so the doctor knows no device details itself.
"""

from __future__ import annotations

import asyncio
import email.utils
import fcntl
import grp
import os
import pwd
import shutil
import socket
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import drivers
from appliance.core.checks import Check
from appliance.core.errors import ApiError, UserError

#: Unit files whose ``User=`` names the service user (the packaged one first).
UNIT_FILES = ("/etc/systemd/system/appliance.service", "/lib/systemd/system/appliance.service",
              "/usr/lib/systemd/system/appliance.service")
#: The token endpoint refuses an assertion whose ``exp`` is over 300 s ahead of its clock
#: (the appliance signs for exactly 300 s), or already past: a clock ahead by seconds, or
#: behind by five minutes, gets no token.
AHEAD_FAIL, AHEAD_WARN = 5.0, 2.0
BEHIND_FAIL, BEHIND_WARN = 300.0, 30.0


@dataclass(frozen=True)
class Warn(Check):
    """Not a problem yet, but worth a look (printed as ``warn``, not counted)."""

    warning = True  # a class attribute: any Check with it is a warning (drivers have their own)


@dataclass(frozen=True)
class RunAs:
    """Whom the folders and files are judged for."""

    name: str
    uid: int
    gids: frozenset[int]
    source: str  # "--user", "appliance.service", "you"


def service_user(unit_files=UNIT_FILES) -> str | None:
    """``User=`` of the installed appliance.service, if one is installed and readable."""
    for path in unit_files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        users = [line.split("=", 1)[1].strip() for line in text.splitlines()
                 if line.strip().startswith("User=")]
        return users[-1] if users else None
    return None


def run_as(user: str | None = None) -> RunAs:
    """The user to judge for: ``--user``, else (when run as root) the service's User=, else
    whoever runs the doctor.  UserError for a user that does not exist."""
    source = "--user"
    if user is None and os.geteuid() == 0:
        user, source = service_user(), "appliance.service"
    if user is None:
        pw = pwd.getpwuid(os.geteuid())
        return RunAs(pw.pw_name, pw.pw_uid, frozenset(os.getgroups()) | {os.getegid()}, "you")
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise UserError(f"user {user!r} ({source}) does not exist; create it "
                        f"(useradd --system {user}) or give --user NAME") from None
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    return RunAs(pw.pw_name, pw.pw_uid, frozenset(gids), source)


def _may(st: os.stat_result, who: RunAs, bits: int) -> bool:
    """Would ``who`` get ``bits`` (of r=4, w=2, x=1) on this inode (mode bits; no ACLs)?"""
    if who.uid == 0:
        return (bits & 1) == 0 or bool(st.st_mode & 0o111) or stat.S_ISDIR(st.st_mode)
    if st.st_uid == who.uid:
        shift = 6
    elif st.st_gid in who.gids:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & bits == bits


def _reachable(path: Path, who: RunAs) -> Path | None:
    """The first folder on the way to ``path`` that ``who`` cannot enter, or None."""
    for parent in reversed(path.parents):
        try:
            st = parent.stat()
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None  # a file in the way: folder_check says so
        if not _may(st, who, 1):
            return parent
    return None


def folder_check(subject: str, setting: str, path: Path, who: RunAs) -> Check:
    """Can ``who`` create (if missing) and write ``path`` as a folder?"""
    fix_owner = f"chown {who.name} {path} (or run systemd-tmpfiles --create)"
    blocked = _reachable(path, who)
    if blocked is not None:
        return Check(False, subject, f"{path}: {who.name} cannot enter {blocked}; "
                                     f"give it search permission (chmod o+x {blocked}) or move {setting}")
    try:
        st = path.stat()
    except FileNotFoundError:
        existing = next((p for p in path.parents if p.exists()), Path("/"))
        if not existing.is_dir():
            return Check(False, subject, f"{path}: cannot be created, {existing} is a file; "
                                         f"remove that file or set {setting} elsewhere")
        if not _may(existing.stat(), who, 3):
            return Check(False, subject, f"{path}: missing and {who.name} cannot create it ({existing} is "
                                         f"not writable by {who.name}); mkdir -p {path} && {fix_owner}")
        return Check(True, subject, f"{path}: missing, {who.name} can create it")
    except NotADirectoryError:
        existing = next(p for p in path.parents if p.exists())
        return Check(False, subject, f"{path}: cannot be created, {existing} is a file; "
                                     f"remove that file or set {setting} elsewhere")
    except OSError as e:
        return Check(False, subject, f"{path}: cannot be looked at ({e.strerror}); fix {setting}")
    if not stat.S_ISDIR(st.st_mode):
        return Check(False, subject, f"{path}: is a file, not a folder; move it away or set {setting} "
                                     "elsewhere")
    if not _may(st, who, 3):
        return Check(False, subject, f"{path}: not writable by {who.name}; {fix_owner}")
    return Check(True, subject, f"{path}: writable by {who.name}")


def lock_holder(path: Path) -> str:
    """Who holds a lock on ``path`` (from /proc/locks): "PID 123 (appliance run ...)" or ""."""
    try:
        st = path.stat()
        with open("/proc/locks", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        if len(parts) > 5 and parts[5] == want and parts[4].isdigit():
            pid = parts[4]
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                cmd = ""
            return f"PID {pid}" + (f" ({cmd[:80]})" if cmd else "")
    return ""


def lock_check(state_dir: Path, who: RunAs) -> Check | None:
    """Could the daemon take ``store.lock``?  Never creates it (a root-owned lock file would
    itself stop the service user)."""
    path = state_dir / "store.lock"
    try:
        st = path.stat()
    except OSError:
        return None  # missing (made at start) or the folder check already said why
    if not _may(st, who, 6):
        return Check(False, "store lock", f"{path}: not writable by {who.name}; chown {who.name} {path}")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return Check(False, "store lock", f"{path}: cannot be opened ({e.strerror}); chown {who.name} {path}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock_holder(path) or "another process"
        return Check(False, "store lock", f"{path}: held by {holder}; the appliance already runs on "
                                          "this state folder: stop it (systemctl stop appliance) first")
    finally:
        os.close(fd)
    return Check(True, "store lock", f"{path}: free")


def key_check(config, who: RunAs) -> Check:
    from appliance.api.auth import load_private_key

    path = config.api.private_key
    try:
        load_private_key(path)
    except UserError as e:
        return Check(False, "private key", str(e))
    if not _may(path.stat(), who, 4):
        return Check(False, "private key", f"{path}: not readable by {who.name}; chown {who.name} {path} "
                                           "(keep it chmod 600)")
    return Check(True, "private key", f"{path}: RSA, mode 600")


def free_disk_check(config) -> Check:
    path = config.spool_dir
    where = next((p for p in (path, *path.parents) if p.is_dir()), Path("/"))
    free = shutil.disk_usage(where).free
    pdf = config.api.max_pdf_bytes
    text = f"{free / 2**30:.1f} GiB free for the spool at {where}"
    if free < 10 * pdf:
        return Check(False, "disk", f"{text}: under 10 PDFs of [api] max_pdf_mb; free space or move "
                                    "[paths] spool_dir")
    if free < 100 * pdf:
        return Warn(True, "disk", f"{text}: under 100 PDFs of [api] max_pdf_mb")
    return Check(True, "disk", text)


def resolve_check(setting: str, url: str) -> Check | None:
    host = urlparse(url).hostname or ""
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as e:
        return Check(False, "API", f"{setting} host {host!r} does not resolve ({e.args[-1]}); "
                                   f"fix {setting} or the machine's DNS")
    return None


def clock_check(date_header: str | None, local: float) -> Check:
    """Skew of this machine's clock against the API's ``Date`` (sent at ``local``)."""
    if not date_header:
        return Warn(True, "clock", "the API sent no Date header; clock not checked (keep NTP on: "
                                   "timedatectl set-ntp true)")
    try:
        server = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Warn(True, "clock", f"the API's Date header {date_header[:40]!r} is not a date; clock not checked")
    skew = local - server  # the header has whole seconds: up to 1 s of it is rounding
    fix = "sync it (timedatectl set-ntp true, or chrony)"
    if skew >= AHEAD_FAIL + 1 or -skew >= BEHIND_FAIL:
        way = "ahead of" if skew > 0 else "behind"
        return Check(False, "clock", f"{abs(skew):.0f} s {way} the API's clock: the token endpoint refuses "
                                     f"the signed assertions; {fix}")
    if skew >= AHEAD_WARN + 1 or -skew >= BEHIND_WARN:
        way = "ahead of" if skew > 0 else "behind"
        return Warn(True, "clock", f"{abs(skew):.0f} s {way} the API's clock; {fix}")
    return Check(True, "clock", f"within {max(abs(skew), 1):.0f} s of the API's clock")


async def _ask_api(api) -> tuple[Check, str | None, float]:
    """GET /_status through the real client (a token first when auth = "jwt"), one attempt."""
    from appliance.api.client import SupplierClient

    api = replace(api, max_retries=0, timeout=min(api.timeout, 10.0))
    async with SupplierClient(api) as client:
        started = time.time()
        try:
            await client.status()
        except UserError as e:  # ApiUnavailable, TokenError, a key problem
            return Check(False, "API", str(e)), None, started
        except ApiError as e:
            return Check(False, "API", f"{api.base_url}: {e}; check [api] base_url"), client.server_date, started
        said = f", token from {api.token_url}" if api.auth == "jwt" else ""
        return Check(True, "API", f"{api.base_url} answers{said}"), client.server_date, \
            (started + time.time()) / 2


def api_checks(config) -> list[Check]:
    api = config.api
    urls = [("[api] base_url", api.base_url)]
    if api.auth == "jwt":
        urls.append(("[api] token_url", api.token_url))
    unresolved = [c for c in (resolve_check(k, u) for k, u in urls) if c is not None]
    if unresolved:
        return unresolved
    if api.auth == "jwt":
        try:
            from appliance.api.auth import load_private_key
            load_private_key(api.private_key)
        except UserError:
            return [Warn(True, "API", "not asked: no usable private key yet (see above)")]
    check, date, local = asyncio.run(_ask_api(api))
    return [check] + ([clock_check(date, local)] if check.ok else [])


def config_checks(config, who: RunAs) -> list[Check]:
    out = [folder_check("state folder", "[paths] state_dir", config.state_dir, who)]
    if config.spool_dir != config.state_dir / "spool":
        out.append(folder_check("spool folder", "[paths] spool_dir", config.spool_dir, who))
    if out[0].ok and (lock := lock_check(config.state_dir, who)) is not None:
        out.append(lock)
    if config.api.auth == "jwt":
        out.append(key_check(config, who))
    out += api_checks(config)
    out.append(free_disk_check(config))
    return out


def run_checks(profile, config=None, user: str | None = None) -> list[Check]:
    results = [Check(True, "profile", f"{profile.source}: {len(profile.printers)} printer(s), "
                                      f"{len(profile.inserters)} inserter(s), {len(profile.frankers)} franker(s)")]
    if config is not None:
        who = run_as(user)
        results.append(Check(True, "user", f"judged for {who.name} ({who.source})"))
        results += config_checks(config, who)
    for driver in sorted({d.driver for d in profile.devices()}):
        try:
            checks = drivers.doctor_checks(driver)
            if checks is not None:
                results += checks(profile, config)
        except ImportError as e:
            results.append(Check(False, f"{driver} driver", f"cannot load ({e}); run ./setup.sh"))
    return results
