"""CUPS/IPP printers (pycups): the driver, batch jobs, IPP vocabulary, job matching after
a restart, the CUPS session thread, a printer's own counters, the doctor's checks."""
