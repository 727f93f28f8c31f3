"""``appliance doctor``: is this floor ready to print?  One line per problem, with the fix.

Each device family contributes checks through a ``doctor_checks(profile, config)``
function, found through the driver registry (``drivers.doctor_checks``), so the doctor
knows no device details itself.
"""

from __future__ import annotations

import drivers
from appliance.core.checks import Check


def run_checks(profile, config=None) -> list[Check]:
    results = [Check(True, "profile", f"{profile.source}: {len(profile.printers)} printer(s), "
                                      f"{len(profile.inserters)} inserter(s), {len(profile.frankers)} franker(s)")]
    for driver in sorted({d.driver for d in profile.devices()}):
        try:
            checks = drivers.doctor_checks(driver)
            if checks is not None:
                results += checks(profile, config)
        except ImportError as e:
            results.append(Check(False, f"{driver} driver", f"cannot load ({e}); run ./setup.sh"))
    return results
