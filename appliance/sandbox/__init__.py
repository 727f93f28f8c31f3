"""A strict, stateful local stand-in for the NHS Notify Supplier API (see server.py)."""

from appliance.sandbox.letters import SandboxLetter
from appliance.sandbox.model import (
           DOCUMENT_ONLY,
           FAITHFUL,
           Faults,
           RequestRecord,
           SandboxOptions,
           UpdateRecord,
)
from appliance.sandbox.runner import run_in_thread
from appliance.sandbox.server import Sandbox

__all__ = ["Sandbox", "SandboxOptions", "RequestRecord", "SandboxLetter", "Faults",
           "UpdateRecord", "FAITHFUL", "DOCUMENT_ONLY", "run_in_thread"]
