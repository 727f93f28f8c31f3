"""Serial inserters and franking machines: the protocol engine (pure, like Klipper's
msgproto), the link that owns the port (like serialhdl), the piece tracker, the drivers,
and the doctor's checks."""
