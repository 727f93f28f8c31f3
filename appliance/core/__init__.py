"""The pure core: statuses, packs, routing, verdicts, reason codes, the error hierarchy.

No I/O: nothing here opens a file, a socket or a device.  Imports only the standard
library and ``appliance.core``; everything else in the appliance (and the drivers) may
import it.  Tested with plain values.
"""
