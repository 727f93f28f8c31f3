"""appliance.toml: load, validate, explain.

Every mistake becomes one ``ConfigError`` line naming the file, the key and the fix.  The
schema below is the single source of truth for keys, types and defaults (the README's
configuration reference is written from it).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from appliance.core.errors import ConfigError
from appliance.core.tables import known_keys, typed
from appliance.intake.faults import RetryPolicy
from appliance.intake.hosts import DEFAULT_PRESIGNED_HOSTS, parse_rule
from appliance.intake.settings import IntakeSettings, default_workers

#: Where the daemon and the operator commands look for appliance.toml by default.
DEFAULT_CONFIG_PATH = "/etc/appliance/appliance.toml"
PRODUCTION_BASE_URL = "https://api.service.nhs.uk/nhs-notify-supplier"
PRODUCTION_HOST = "api.service.nhs.uk"


def _is_production(url: str) -> bool:
    """Production whatever the spelling: the host decides, not the string."""
    host = (urlparse(url).hostname or "").lower().rstrip(".")
    return host == PRODUCTION_HOST
MAX_LIST_LIMIT = 2500


@dataclass(frozen=True)
class ApiConfig:
    base_url: str
    auth: str  # "jwt" (integration/production) or "none" (sandbox)
    api_key: str = ""
    private_key: Path | None = None
    kid: str = ""
    token_url: str = ""
    rate_limit: float = 300.0  # transactions per second, shared by every call
    timeout: float = 30.0  # seconds per request
    max_retries: int = 6
    max_pdf_bytes: int = 20 * 1024 * 1024
    verify_tls: bool = True
    #: Where pre-signed PDF URLs may point (``appliance.intake.hosts``).
    presigned_hosts: tuple[str, ...] = DEFAULT_PRESIGNED_HOSTS


@dataclass(frozen=True)
class MetricsSettings:
    """[metrics]: the optional Prometheus endpoint (``appliance.runtime.metrics``)."""

    listen: str = ""  # "HOST:PORT", e.g. "127.0.0.1:9464"; empty: no endpoint


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6; port 0: any free one) -> (host, port); ValueError
    names the fix."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT; write e.g. \"127.0.0.1:9464\"")
    return host, int(port)


def _listen(v: str) -> str | None:
    if not v:
        return None
    try:
        parse_listen(v)
    except ValueError as e:
        return str(e)
    return None


@dataclass(frozen=True)
class Config:
    api: ApiConfig
    poll_interval: float
    limit: int
    batch_size: int
    state_dir: Path
    spool_dir: Path
    profile: Path
    packs_dir: Path | None = None
    source: Path | None = None
    stale_after_hours: float = 24.0
    visibility_timeout: float = 300.0  # Notify's LETTER_QUEUE_VISIBILITY_TIMEOUT
    accept_margin: float = 60.0
    prove_after: float = 5.0
    spool_retention_hours: float = 0.0  # 0: delete a spooled PDF once its letter is final
    intake: IntakeSettings = IntakeSettings()
    max_clients: int = 32  # control-socket connections at once
    metrics: MetricsSettings = MetricsSettings()


def _url(v: str) -> str | None:
    u = urlparse(v)
    if u.scheme not in ("http", "https") or not u.netloc:
        return "must be an http(s) URL such as https://api.service.nhs.uk/nhs-notify-supplier"
    return None


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _not_negative(v: float) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def _limit(v: int) -> str | None:
    return None if 1 <= v <= MAX_LIST_LIMIT else f"must be between 1 and {MAX_LIST_LIMIT}"


def _auth(v: str) -> str | None:
    return None if v in ("jwt", "none") else 'must be "jwt" or "none"'


def _batch(v: int) -> str | None:
    return None if 1 <= v <= 2500 else "must be between 1 and 2500"


def _hosts(v: list) -> str | None:
    for entry in v:
        try:
            parse_rule(entry)
        except ValueError as e:
            return f"entry {entry!r}: {e}"
    return None


def _at_least(n: float) -> Check:
    return lambda v: None if v >= n else f"must be at least {n:g}"


# section -> key -> (type, default or REQUIRED, validator)
REQUIRED = object()
Check = Callable[[Any], "str | None"] | None
SCHEMA: dict[str, dict[str, tuple[type, Any, Check]]] = {
    "api": {
        "base_url": (str, REQUIRED, _url),
        "auth": (str, "jwt", _auth),
        "api_key": (str, "", None),
        "private_key": (str, "", None),
        "kid": (str, "", None),
        "token_url": (str, "", None),
        "rate_limit": (float, 300.0, _positive),
        "timeout": (float, 30.0, _positive),
        "max_retries": (int, 6, lambda v: None if v >= 0 else "must be 0 or more"),
        "max_pdf_mb": (float, 20.0, _positive),
        "verify_tls": (bool, True, None),
        "presigned_hosts": (list, list(DEFAULT_PRESIGNED_HOSTS), _hosts),
    },
    # Intake workers: processes that fetch and check PDFs, and the budgets they run under.
    "intake": {
        "workers": (int, 0, _not_negative),  # PDFs checked at once; 0: cores + 2
        "fetchers": (int, 8, _at_least(1)),  # downloads at once
        "memory_mb": (int, 512, _at_least(128)),
        "cpu_seconds": (float, 30.0, _positive),
        "task_seconds": (float, 180.0, _positive),
        "download_seconds": (float, 120.0, _positive),
        "min_rate_kbps": (float, 8.0, _not_negative),
        "max_decoded_mb": (float, 200.0, _positive),
        "coverage": (bool, True, None),  # measure ink coverage against the pack's bounds
        "coverage_dpi": (int, 36, lambda v: None if 9 <= v <= 300 else "must be 9 to 300"),
        "nice": (int, 10, lambda v: None if 0 <= v <= 19 else "must be 0 to 19"),  # workers' CPU priority
        "retry_hours": (float, 2.0, _positive),
        "retry_first_seconds": (float, 5.0, _positive),
        "retry_max_seconds": (float, 300.0, _positive),
    },
    "control": {
        "max_clients": (int, 32, _at_least(1)),
    },
    # Prometheus endpoint, off unless listen is set (e.g. "127.0.0.1:9464"); scrape /metrics.
    "metrics": {
        "listen": (str, "", _listen),
    },
    "poll": {
        "interval": (float, 5.0, _positive),
        "limit": (int, MAX_LIST_LIMIT, _limit),
        # Before printing a letter older than this, ask the API whether it is still wanted.
        "stale_after_hours": (float, 24.0, _positive),
        # Notify hides what it lists this long (seconds); a listed letter's ACCEPTED must be
        # answered 202 accept_margin seconds before that, or the letter is let go.
        "visibility_timeout": (float, 300.0, _positive),
        "accept_margin": (float, 60.0, _positive),
    },
    "outbox": {
        "batch_size": (int, 500, _batch),
        # Seconds after a 202 before a read-back may prove the update applied.
        "prove_after": (float, 5.0, _positive),
    },
    "paths": {
        "state_dir": (str, "/var/lib/appliance", None),
        "spool_dir": (str, "", None),  # default: <state_dir>/spool
        "profile": (str, REQUIRED, lambda v: None if v.strip() else "must name the hardware profile file"),
        "packs_dir": (str, "", None),
        # Keep spooled PDFs this long after a letter is final (0: delete at once).
        "spool_retention_hours": (float, 0.0, _not_negative),
    },
}


def read_toml(path: Path, what: str) -> dict:
    """Parse a TOML file, turning every failure into a one-line ConfigError."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found; create it or pass --config PATH") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read {what} (permission denied); fix its owner or mode") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}; give the path of the .toml file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the syntax") from None


def validate_sections(path: Path, data: dict, schema: dict) -> dict[str, dict[str, Any]]:
    """Check sections/keys/types against a schema; fill defaults. Returns section->key->value."""
    out: dict[str, dict[str, Any]] = {}
    for section in data:
        if section not in schema:
            raise ConfigError(
                f"{path}: unknown section [{section}]; expected one of "
                f"{', '.join('[' + s + ']' for s in schema)}"
            )
        if not isinstance(data[section], dict):
            raise ConfigError(f"{path}: {section} must be a [{section}] table")
    for section, keys in schema.items():
        given = data.get(section, {})
        where = f"{path}: [{section}]"
        known_keys(where, given, keys)
        vals = {}
        for key, (want, default, check) in keys.items():
            if key not in given:
                if default is REQUIRED:
                    raise ConfigError(f"{where} {key}: missing; add {key} = ... to [{section}]")
                vals[key] = default
                continue
            v = typed(where, key, given[key], want)
            if check and (problem := check(v)):
                raise ConfigError(f"{where} {key}: {problem}")
            vals[key] = v
        out[section] = vals
    return out


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q).resolve()


def load_config(path: str | Path) -> Config:
    """Read and validate appliance.toml.  Relative paths are relative to the file."""
    path = Path(path)
    v = validate_sections(path, read_toml(path, "configuration file"), SCHEMA)
    api, paths = v["api"], v["paths"]
    base = path.parent.resolve()

    if api["auth"] == "jwt":
        for key in ("api_key", "private_key", "kid", "token_url"):
            if not api[key]:
                raise ConfigError(
                    f'{path}: [api] {key}: required when auth = "jwt"; add it, or set auth = "none" for the sandbox'
                )
        if problem := _url(api["token_url"]):
            raise ConfigError(f"{path}: [api] token_url: {problem}")
    if not api["verify_tls"] and any(_is_production(api[k]) for k in ("base_url", "token_url")):
        raise ConfigError(
            f"{path}: [api] verify_tls: may not be false against production; remove verify_tls"
        )
    if v["poll"]["accept_margin"] >= v["poll"]["visibility_timeout"]:
        raise ConfigError(f"{path}: [poll] accept_margin ({v['poll']['accept_margin']:g} s) must be "
                          f"less than visibility_timeout ({v['poll']['visibility_timeout']:g} s)")
    private_key = _resolve(base, api["private_key"]) if api["private_key"] else None
    state_dir = _resolve(base, paths["state_dir"])
    return Config(
        api=ApiConfig(
            base_url=api["base_url"].rstrip("/"),
            auth=api["auth"],
            api_key=api["api_key"],
            private_key=private_key,
            kid=api["kid"],
            token_url=api["token_url"],
            rate_limit=api["rate_limit"],
            timeout=api["timeout"],
            max_retries=api["max_retries"],
            max_pdf_bytes=int(api["max_pdf_mb"] * 1024 * 1024),
            verify_tls=api["verify_tls"],
            presigned_hosts=_presigned_hosts(api),
        ),
        poll_interval=v["poll"]["interval"],
        limit=v["poll"]["limit"],
        stale_after_hours=v["poll"]["stale_after_hours"],
        visibility_timeout=v["poll"]["visibility_timeout"],
        accept_margin=v["poll"]["accept_margin"],
        prove_after=v["outbox"]["prove_after"],
        batch_size=v["outbox"]["batch_size"],
        state_dir=state_dir,
        spool_dir=_resolve(base, paths["spool_dir"]) if paths["spool_dir"] else state_dir / "spool",
        profile=_resolve(base, paths["profile"]),
        packs_dir=_resolve(base, paths["packs_dir"]) if paths["packs_dir"] else None,
        spool_retention_hours=paths["spool_retention_hours"],
        source=path,
        intake=intake_settings(v["intake"]),
        max_clients=v["control"]["max_clients"],
        metrics=MetricsSettings(listen=v["metrics"]["listen"]),
    )


def _presigned_hosts(api: dict[str, Any]) -> tuple[str, ...]:
    """The configured hosts; with auth = "none" (the local sandbox, which serves its
    pre-signed URLs itself) the API's own origin too."""
    hosts = tuple(api["presigned_hosts"])
    if api["auth"] == "none":
        u = urlparse(api["base_url"])
        hosts += (f"{u.scheme}://{u.netloc}",)
    return hosts


def intake_settings(t: dict[str, Any]) -> IntakeSettings:
    """IntakeSettings from a validated [intake] table."""
    return IntakeSettings(
        workers=t["workers"] or default_workers(), fetchers=t["fetchers"], memory_mb=t["memory_mb"],
        cpu_seconds=t["cpu_seconds"], task_seconds=t["task_seconds"],
        download_seconds=t["download_seconds"], min_rate_kbps=t["min_rate_kbps"],
        max_decoded_mb=t["max_decoded_mb"], coverage=t["coverage"], coverage_dpi=t["coverage_dpi"],
        nice=t["nice"], retry=RetryPolicy(first=t["retry_first_seconds"], cap=t["retry_max_seconds"],
                                          budget=t["retry_hours"] * 3600))


def sandbox_api(base_url: str, rate_limit: float = 300.0) -> ApiConfig:
    """API settings for the local sandbox (no auth); its pre-signed URLs point at itself."""
    u = urlparse(base_url)
    own = f"{u.scheme}://{u.netloc}"
    return ApiConfig(base_url=base_url.rstrip("/"), auth="none", rate_limit=rate_limit,
                     presigned_hosts=(*DEFAULT_PRESIGNED_HOSTS, own))
