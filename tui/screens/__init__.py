"""Console screens: dashboard, letters, letter detail, returns desk, log, help, confirm."""
