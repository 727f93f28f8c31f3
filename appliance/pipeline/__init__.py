"""The letter pipeline: the asyncio stages from listed to final, restart recovery,
automatic reprints, the outbox sender, operator actions and the per-batch audit."""
