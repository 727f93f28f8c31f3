"""Assembling and running the appliance: the one place that builds pipeline + MI + control
(``assemble``), the daemon, the demo (and its emulated CUPS floor), systemd notification,
logging and the doctor's checks."""
