"""An emulated CUPS print floor: a private cupsd + ippeveprinter emulators on loopback.

Used by ``appliance demo --cups``, the CUPS tests and the printing benchmark; needs the
Debian packages cups, cups-client, cups-ipp-utils (and dbus + avahi for DNS-SD).

``CupsSandbox`` runs its own ``cupsd`` (own cupsd.conf / cups-files.conf in a temporary
folder, ``Listen 127.0.0.1:<free port>``) and any number of ``Emulator``s (one
``ippeveprinter`` each, IPP Everywhere, on a free loopback port) with a CUPS queue made
by ``lpadmin -m everywhere``.  Each emulator keeps every job it receives (``-k -d``) and
its print command records the job's IPP attributes next to the file, so tests can see
exactly what a printer was asked to do.  ``hold()`` makes the emulator's print command
wait (a job then stays "processing"), ``release()`` lets it finish.  Like a real printer,
the emulator reports each side it prints (``job-impressions-completed``, one PDF page =
one side); ``limit(k)`` makes it stop after k sides of a job (a jam mid-job).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
BINARIES = ("cupsd", "ippeveprinter", "lpadmin", "cupsdisable", "cupsenable", "cancel", "pdfinfo")
_ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":" + SBIN}

CUPSD_CONF = """\
Listen 127.0.0.1:{port}
Browsing No
LogLevel warn
WebInterface No
DefaultAuthType None
MaxJobs 0
PreserveJobHistory Yes
<Location />
  Order allow,deny
  Allow all
</Location>
<Location /admin>
  Order allow,deny
  Allow all
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""

CUPS_FILES_CONF = """\
ServerRoot {d}/root
RequestRoot {d}/spool
TempDir {d}/tmp
CacheDir {d}/cache
StateDir {d}/state
AccessLog {d}/log/access_log
ErrorLog {d}/log/error_log
PageLog {d}/log/page_log
SystemGroup root
"""

# The emulator's print command: record the job's IPP attributes, wait while held, then
# "print" side by side, telling ippeveprinter each one (an ATTR: line on stderr sets the
# job's job-impressions-completed), never past the number in the limit file while it exists.
RECORDER = """\
#!/bin/sh
env | grep '^IPP_' | sort > "$1.env.part" && mv "$1.env.part" "$1.env"
while [ -e "{gate}" ]; do sleep 0.05; done
total=$(pdfinfo "$1" 2>/dev/null | sed -n 's/^Pages: *//p')
n=0
while [ "$n" -lt "${{total:-0}}" ]; do
  if [ -e "{limit}" ] && [ "$n" -ge "$(cat "{limit}")" ]; then sleep 0.05; continue; fi
  n=$((n + 1))
  echo "ATTR: job-impressions-completed=$n" >&2
  echo "$n" > "$1.sides"
done
exit 0
"""


def which(name: str) -> str | None:
    return shutil.which(name, path=_ENV["PATH"])


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if which(b) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


class DnsSd:
    """ippeveprinter refuses to start without DNS-SD: start dbus + avahi if they are not
    running.  They are left running afterwards, as the system services they normally are:
    stopping them would pull DNS-SD from under any other CUPS floor on this machine (a
    second test run, an operator's demo) and its emulators would die."""

    def start(self) -> None:
        if not _running("dbus-daemon") and which("dbus-daemon"):
            Path("/run/dbus").mkdir(parents=True, exist_ok=True)
            # A machine restored from a snapshot keeps /run but not its processes: dbus
            # refuses to start over a stale pid file, and avahi (hence ippeveprinter) with it.
            Path("/run/dbus/pid").unlink(missing_ok=True)
            subprocess.run(["dbus-daemon", "--system", "--fork"], env=_ENV, capture_output=True)
        if not _running("avahi-daemon") and which("avahi-daemon"):
            Path("/run/avahi-daemon/pid").unlink(missing_ok=True)
            subprocess.run(["avahi-daemon", "--no-drop-root", "--no-rlimits", "-D"], env=_ENV, capture_output=True)


class Emulator:
    """One ippeveprinter: an IPP Everywhere printer that keeps every job it gets."""

    def __init__(self, name: str, root: Path, *, duplex: bool, colour: bool):
        self.name = name
        self.root = root
        self.duplex = duplex
        self.colour = colour
        self.port = free_port()
        self.gate = root / "held"
        self.limit_file = root / "limit"
        self.script = root / "print.sh"
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.script.write_text(RECORDER.format(gate=self.gate, limit=self.limit_file))
        self.script.chmod(0o755)

    @property
    def uri(self) -> str:
        return f"ipp://localhost:{self.port}/ipp/print"

    def start(self) -> None:
        """(Re)start on the same port; each run spools into its own folder because job ids
        restart at 1 and would overwrite the previous run's files."""
        self.runs += 1
        spool = self.root / f"run{self.runs}"
        spool.mkdir()
        cmd = [which("ippeveprinter"), "-p", str(self.port), "-n", "localhost", "-f", "application/pdf",
               "-k", "-d", str(spool), "-c", str(self.script)]
        if self.duplex:
            cmd.append("-2")
        if self.colour:
            cmd += ["-s", "10,10"]
        log = open(self.root / f"run{self.runs}.log", "w")
        self.proc = subprocess.Popen([*cmd, self.name], stdout=log, stderr=subprocess.STDOUT, env=_ENV)
        log.close()
        try:
            wait_port(self.port, proc=self.proc)
        except RuntimeError as exc:
            said = (self.root / f"run{self.runs}.log").read_text(errors="replace").strip().splitlines()
            raise RuntimeError(f"ippeveprinter {self.name}: {exc}: {said[-1] if said else 'no output'}") from None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def hold(self) -> None:
        self.gate.touch()

    def release(self) -> None:
        self.gate.unlink(missing_ok=True)
        self.limit_file.unlink(missing_ok=True)

    def limit(self, sides: int) -> None:
        """Print at most this many sides of each job until ``release()`` (a jam mid-job)."""
        part = self.limit_file.with_suffix(".part")
        part.write_text(str(sides))
        part.replace(self.limit_file)

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.glob("run*/*.pdf"))

    def sides_printed(self, pdf: Path) -> int:
        """How many sides of this received document came out of the printer."""
        try:
            return int((pdf.parent / f"{pdf.name}.sides").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def received(self) -> list[str]:
        """Job names (= letter ids) of every document this printer received, repeats kept."""
        return [p.stem.split("-", 1)[1] for p in self.files()]

    def attributes(self) -> dict[str, dict[str, str]]:
        """Job name -> the IPP job attributes the printer saw (recorded by its print command)."""
        out = {}
        for env in sorted(self.root.glob("run*/*.pdf.env")):
            attrs = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
            out[attrs.get("IPP_JOB_NAME", "")] = attrs
        return out


class CupsSandbox:
    """A private cupsd on 127.0.0.1:<free port> with emulated printers."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.emulators: dict[str, Emulator] = {}
        self.dns_sd = DnsSd()

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "CupsSandbox":
        self.dns_sd.start()
        d = self.root / "cupsd"
        for sub in ("root", "spool", "tmp", "cache", "state", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "cupsd.conf").write_text(CUPSD_CONF.format(port=self.port))
        (d / "cups-files.conf").write_text(CUPS_FILES_CONF.format(d=d))
        self.proc = subprocess.Popen([which("cupsd"), "-f", "-c", str(d / "cupsd.conf"),
                                      "-s", str(d / "cups-files.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(d / "log" / "stderr", "w"), env=_ENV)
        wait_port(self.port, proc=self.proc)
        return self

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A CUPS command-line tool against this server, e.g. run("cupsdisable", "press")."""
        return subprocess.run([which(tool), "-h", self.server, *args], env=_ENV, capture_output=True,
                              text=True, check=check, timeout=30)

    def add_printer(self, name: str, *, duplex: bool = True, colour: bool = False) -> Emulator:
        em = Emulator(name, self.root / "printers" / name, duplex=duplex, colour=colour)
        em.start()
        self.emulators[name] = em
        self.run("lpadmin", "-p", name, "-E", "-v", em.uri, "-m", "everywhere")
        deadline = time.monotonic() + 10
        while self.run("lpstat", "-p", name, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue {name} did not appear")
            time.sleep(0.1)
        return em

    def remove_printer(self, name: str) -> None:
        self.run("cancel", "-a", name, check=False)
        self.run("lpadmin", "-x", name, check=False)
        em = self.emulators.pop(name, None)
        if em:
            em.release()
            em.kill()

    def job_state(self, job_id: int | str) -> int:
        from drivers.cups.session import connect

        conn = connect(self.server)
        return conn.getJobAttributes(int(job_id), requested_attributes=["job-state"])["job-state"]

    def stop(self) -> None:
        for em in self.emulators.values():
            em.release()
            em.kill()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sandbox_root() -> Path:
    """A fresh folder that cupsd's filters (run as user lp) can read: pytest's own tmp
    folders are private to root and make every job fail with "Filter failed"."""
    root = Path(tempfile.mkdtemp(prefix="cups-sandbox-"))
    root.chmod(0o755)
    return root
