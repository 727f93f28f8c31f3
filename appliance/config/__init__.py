"""Configuration: ``appliance.toml`` (``settings``), hardware profiles (``profile``), and
the one table checker every section goes through (``tables``)."""
