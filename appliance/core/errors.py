"""Error types whose message is the whole story for an operator.

A ``UserError`` is something a person caused and can fix (bad config, missing key,
unreachable device).  The CLI prints its message as one line and exits non-zero; it never
shows a traceback for these.
"""


class UserError(Exception):
    """A mistake a user can fix; ``str(err)`` names the thing and the fix in one line."""

    exit_code = 2


class ConfigError(UserError):
    """Invalid appliance.toml or hardware profile."""
