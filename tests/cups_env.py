"""pytest fixtures for a real cupsd + ippeveprinter fleet (see drivers/sim/cups_floor.py)."""

from __future__ import annotations

import shutil

import pytest

from drivers.sim.cups_floor import CupsSandbox, Emulator, missing_binaries, sandbox_root  # noqa: F401

# --- pytest fixtures (exposed through tests/conftest.py) ------------------------------

FLEET = {  # name -> emulator capabilities; the profile capabilities live in the tests
    "press-mono": {"duplex": True, "colour": False},
    "press-colour": {"duplex": True, "colour": True},
    "embosser": {"duplex": True, "colour": False},
}


@pytest.fixture(scope="session")
def cups_sandbox(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"CUPS binaries not installed ({', '.join(missing)}); "
                    "run ./setup.sh --test (apt: cups cups-client cups-ipp-utils)")
    root = sandbox_root()
    sb = CupsSandbox(root)
    try:
        sb.start()
        for name, caps in FLEET.items():
            sb.add_printer(name, **caps)
        yield sb
    finally:
        sb.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cups_fleet(cups_sandbox):
    """The shared fleet, released and enabled again after each test."""
    yield cups_sandbox
    for name, em in list(cups_sandbox.emulators.items()):
        em.release()
        if name in FLEET:
            cups_sandbox.run("cupsenable", name, check=False)
            cups_sandbox.run("cupsaccept", name, check=False)
