"""Fixtures every test module may use (their code lives in ``tests/fixtures/``)."""

from tests.fixtures.cups_env import cups_fleet, cups_sandbox  # noqa: F401 - real cupsd + ippeveprinter fleet
from tests.fixtures.daemon import daemon, sock_dir  # noqa: F401 - sandbox + pipeline + control socket
from tests.fixtures.serial_rig import rigs  # noqa: F401 - a simulated machine on a pty and its driver
