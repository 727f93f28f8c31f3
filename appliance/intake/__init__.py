"""Intake: from a listed letter to a verified PDF in the spool, or a verdict.

Untrusted bytes never run in the daemon.  The daemon side (``stage.py``) asks the API for
a letter's pre-signed URL and hands it to a pool of disposable, resource-limited worker
processes (``pool.py``); a worker (``worker.py``) fetches the PDF into the private spool
(``fetch.py``, hosts checked by ``hosts.py``) and inspects it (``pdfcheck.py``).  What
comes back is plain data, judged by pure code (``faults.py`` for transport and worker
faults, ``appliance.core.verify`` for the PDF against its pack).

    daemon:  poll -> Intake.take -> GET /data (bearer) -> pool.run(...) -> decide
    worker:  fetch(pre-signed URL, budgets) -> check_pdf(budgets) -> result dict
"""
