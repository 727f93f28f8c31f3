"""The control socket: newline-delimited JSON over a Unix socket.  ``server`` runs in the
daemon; ``client`` is the only part consoles (the TUI, the CLI) import."""
