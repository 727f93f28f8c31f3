"""The ``appliance`` command line: ``main`` plus one module per command family."""

from appliance.cli.main import main

__all__ = ["main"]
