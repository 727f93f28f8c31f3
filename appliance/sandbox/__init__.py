"""A strict, stateful local stand-in for the NHS Notify Supplier API (see server.py)."""

from .letters import SandboxLetter
from .model import Faults, RequestRecord, SandboxOptions
from .runner import run_in_thread
from .server import Sandbox

__all__ = ["Sandbox", "SandboxOptions", "RequestRecord", "SandboxLetter", "Faults",
           "run_in_thread"]
