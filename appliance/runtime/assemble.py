"""The one place that assembles a running appliance: pipeline + MI + control socket.

``appliance run`` (``runtime.daemon``) and ``appliance demo`` (``runtime.demo``) differ in
where their API, profile and state come from, never in how the parts are wired: both call
``build`` and ``Appliance.start``/``stop`` here.  Each part gets what it needs when it is
built (no attribute set afterwards).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance.api.client import SupplierClient
from appliance.config.profile import Profile
from appliance.config.settings import ApiConfig, Config
from appliance.control.server import ControlServer
from appliance.core.errors import UserError
from appliance.core.packs import Pack
from appliance.mi.service import MiService, mi_client
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.store.store import Store

log = logging.getLogger("appliance")


@dataclass
class Appliance:
    pipeline: Pipeline
    mi: MiService
    client: SupplierClient
    store: Store
    control: ControlServer | None = None

    async def start(self, socket_path: str | None = None, *, group: str | None = None,
                    max_clients: int = 32) -> None:
        """Devices, tasks and recovery first; then the control socket (if asked for).  A
        socket that cannot be opened is reported and printing goes on without consoles."""
        await self.pipeline.start()
        if socket_path:
            control = ControlServer(self.pipeline, socket_path, group=group, max_clients=max_clients,
                                    mi=self.mi)
            try:
                await control.start()
                self.control = control
            except (OSError, UserError) as e:
                log.error("control socket %s not available: %s; consoles cannot attach", socket_path, e)
                print(f"appliance: control socket {socket_path} not available ({e}); consoles cannot "
                      "attach", file=sys.stderr, flush=True)

    async def stop(self) -> None:
        """Drain: nothing is lost (what is in flight is resumed by the next start)."""
        if self.control:
            await self.control.stop()
        await self.pipeline.stop()
        self.mi.close()
        await self.client.aclose()
        if self.mi.client is not None:
            await self.mi.client.aclose()
        self.store.close()


def build(settings: PipelineSettings, api: ApiConfig, profile: Profile, packs: dict[str, Pack], *,
          state_dir: Path, mi_api: ApiConfig | None = None) -> Appliance:
    """Every part, wired, not yet started (``Appliance.start``)."""
    store = Store(state_dir)
    client = SupplierClient(api)
    pipe = Pipeline(settings, client, store, profile, packs, state_dir=state_dir)
    # MI counts every device event from the first one: listen before the pipeline starts.
    mi = MiService(state_dir, profile.mi, packs, mi_client(mi_api or api), alert=pipe.alert)
    pipe.listeners.append(mi.journal)
    return Appliance(pipe, mi, client, store)


def offline_mi(cfg: Config, profile: Profile, packs: dict[str, Pack], *, with_client: bool) -> MiService:
    """MI straight from the state folder, for ``appliance mi`` while no daemon runs."""
    return MiService(cfg.state_dir, profile.mi, packs, mi_client(cfg.api) if with_client else None)
