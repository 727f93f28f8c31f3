"""The one checker for every TOML table the appliance reads (appliance.toml, hardware
profiles, protocol files, MI, marks, reprint, verify).  Pure: takes the parsed table.

Every mistake is one ``ConfigError`` line: where (file and table), the key, what is wrong
and, where it helps, the fix.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from appliance.core.errors import ConfigError

TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
              list: "a list", dict: "a table"}


def table(where: str, value: Any, example: str) -> dict:
    """``value`` must be a TOML table; ``example`` shows how to write it."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table; {example}")
    return value


def known_keys(where: str, table: Mapping[str, Any], allowed: Iterable[str], expected: str | None = None) -> None:
    """Refuse a key not in ``allowed``; ``expected`` words the alternatives (default: the list)."""
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where} {key}: unknown key; expected {expected or 'one of ' + ', '.join(allowed)}")


def typed(where: str, key: str, value: Any, want: type) -> Any:
    """``value`` as ``want`` (an int where a float is wanted is fine; a list must hold strings,
    a table string values), else one line naming the key and the type."""
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is list and isinstance(value, list):
        if all(isinstance(x, str) for x in value):
            return value
        raise ConfigError(f"{where} {key}: expected a list of strings, got {value!r}; fix the value")
    if want is dict and isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            return value
        raise ConfigError(f"{where} {key}: expected a table of strings (CODE = \"text\"), got {value!r}")
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where} {key}: expected {TYPE_NAMES.get(want, want.__name__)}, got {value!r}; "
                      "fix the value")


def typed_table(where: str, table: Mapping[str, Any], keys: Mapping[str, type],
                expected: str | None = None) -> dict[str, Any]:
    """Every key known and of its type; the table with numbers made floats where wanted."""
    known_keys(where, table, keys, expected)
    return {key: typed(where, key, value, keys[key]) for key, value in table.items()}
