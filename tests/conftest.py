"""Shared pytest fixtures."""

from tests.cups_env import cups_fleet, cups_sandbox  # noqa: F401 - real cupsd + ippeveprinter fleet
