"""``appliance api ...``: talk to the Supplier API by hand (diagnostics, one-off fixes).

``--base-url URL`` means the sandbox (no auth); otherwise the [api] section of the
configuration file is used, JWT auth included.  Every failure is one line.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from appliance.api.client import ApiError, SupplierClient
from appliance.cli.common import CONFIG_HELP, config_path
from appliance.config.settings import ApiConfig, load_config, sandbox_api
from appliance.core.errors import UserError
from appliance.core.status import (
    NEEDS_REASON,
    REJECT_REASONS,
    RETURN_REASONS,
    SETTABLE,
    Status,
    return_reason,
)


def register(sub) -> None:
    p = sub.add_parser("api", help="call the Supplier API directly (status, letters, data, patch)",
                       description="Call the NHS Notify Supplier API directly.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="PATH", help=f"{CONFIG_HELP}; its [api] is used")
    where.add_argument("--base-url", metavar="URL", help="talk to a sandbox at URL (no auth)")
    p.add_argument("--retries", type=int, metavar="N",
                   help="retries per call on 429/5xx/connection errors (default: [api] max_retries)")
    cmds = p.add_subparsers(dest="api_command", metavar="ACTION", required=True)

    cmds.add_parser("status", help="is the API up? (GET /_status, after a token with JWT auth)").set_defaults(func=_run(cmd_status))

    q = cmds.add_parser("letters", help="list the PENDING letters the API offers (GET /letters)")
    q.add_argument("--limit", type=int, default=2500, help="at most this many (1-2500, default 2500)")
    q.set_defaults(func=_run(cmd_letters))

    q = cmds.add_parser("letter", help="show one letter's status, specification and checksum")
    q.add_argument("id")
    q.set_defaults(func=_run(cmd_letter))

    q = cmds.add_parser("data", help="download a letter's PDF and check its sha256")
    q.add_argument("id")
    q.add_argument("--out", required=True, metavar="FILE", help="where to write the PDF")
    q.set_defaults(func=_run(cmd_data))

    q = cmds.add_parser("patch", help="set one letter's status by hand (checked here first)")
    q.add_argument("id")
    q.add_argument("status", help=", ".join(sorted(SETTABLE)))
    q.add_argument("--reason", metavar="CODE", help="reason code (RETURNED: R01-R10, text filled in)")
    q.add_argument("--reason-text", metavar="TEXT", help="reason text (filled in for known codes)")
    q.set_defaults(func=_run(cmd_patch))


def api_config(args) -> ApiConfig:
    if args.base_url:
        if not args.base_url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {args.base_url!r}: must be an http(s) URL such as http://127.0.0.1:8080")
        api = sandbox_api(args.base_url)
    else:
        api = load_config(Path(config_path(args.config))).api
    if args.retries is not None:
        if args.retries < 0:
            raise UserError(f"--retries {args.retries}: must be 0 or more")
        api = replace(api, max_retries=args.retries)
    return api


def _run(command):
    """Wrap an async command: build the client, turn API errors into one line."""

    def run(args) -> int:
        api = api_config(args)

        async def go() -> int:
            async with SupplierClient(api) as client:
                return await command(client, args)

        try:
            return asyncio.run(go())
        except ApiError as e:
            raise UserError(f"{api.base_url}: {e}") from None

    return run


async def cmd_status(client: SupplierClient, args) -> int:
    body = await client.status()
    extra = ", ".join(f"{k}={v}" for k, v in body.items() if v not in ("", None))
    print(f"{client.api.base_url}: up{' (' + extra + ')' if extra else ''}")
    return 0


async def cmd_letters(client: SupplierClient, args) -> int:
    if not 1 <= args.limit <= 2500:
        raise UserError(f"--limit {args.limit}: must be between 1 and 2500")
    letters = await client.list_letters(limit=args.limit)
    rows = [("ID", "SPECIFICATION", "GROUP", "STATUS")]
    rows += [(x.id, x.specification_id, x.group_id, x.status) for x in letters]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"{len(letters)} letter(s)")
    return 0


async def cmd_letter(client: SupplierClient, args) -> int:
    x = await client.get_letter(args.id)
    for label, value in (("id", x.id), ("specification", x.specification_id), ("group", x.group_id),
                         ("status", x.status), ("sha256", x.sha256), ("reason code", x.reason_code),
                         ("reason text", x.reason_text)):
        if value:
            print(f"{label + ':':15}{value}")
    return 0


async def cmd_data(client: SupplierClient, args) -> int:
    letter = await client.get_letter(args.id)
    got = await client.download(args.id, Path(args.out))
    if letter.sha256 and got.sha256 != letter.sha256:
        print(f"wrote {got.path} ({got.size} bytes) but sha256 {got.sha256} does NOT match "
              f"the listed {letter.sha256}")
        return 1
    print(f"wrote {got.path} ({got.size} bytes, sha256 {got.sha256}"
          f"{', matches the letter' if letter.sha256 else ''})")
    return 0


def resolve_reason(status: str, code: str | None, text: str | None) -> tuple[str, str | None, str | None]:
    """Check a status change locally; fill reason text for known codes.  UserError if wrong."""
    s = status.strip().upper()
    if s not in SETTABLE:
        raise UserError(f"status {status!r}: not one a supplier can set; use one of {', '.join(sorted(SETTABLE))}")
    if s == Status.RETURNED:
        if not code:
            raise UserError(f"RETURNED needs --reason CODE: one of {', '.join(RETURN_REASONS)}")
        try:
            code, exact = return_reason(code)
        except ValueError as e:
            raise UserError(str(e)) from None
        if text is not None and text != exact:
            raise UserError(f"--reason-text for {code} must be exactly {exact!r}; leave it out to fill it in")
        return s, code, exact
    if code and text is None:
        text = REJECT_REASONS.get(code) or RETURN_REASONS.get(code)
    if s in NEEDS_REASON and not (code and text):
        raise UserError(f"{s} needs --reason CODE and --reason-text TEXT")
    return s, code, text


async def cmd_patch(client: SupplierClient, args) -> int:
    status, code, text = resolve_reason(args.status, args.reason, args.reason_text)
    await client.patch_letter(args.id, status, code, text)
    print(f"{args.id}: {status} accepted by the API{f' ({code} {text})' if code else ''}")
    return 0
