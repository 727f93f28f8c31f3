"""One serial port, kept open: a reader thread, reconnect with backoff, thread-safe writes.

pyserial is blocking, so each link owns a thread that opens the port, reads with a short
timeout, cuts the bytes into frames (answering ACK/NAK at once, as framed devices expect)
and hands good frames and link changes to the asyncio loop with ``call_soon_threadsafe``.
Nothing the driver owns is touched from this thread.  When the port disappears (a
USB-serial adapter unplugged, a pty closed) the thread closes it and retries with
exponential backoff until it returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import termios
import threading
from typing import Any, Callable

import serial

from appliance.core.errors import LinkDown
from drivers.serial.protocol import Frame, LineFramer, StxEtxFramer

log = logging.getLogger("drivers.serial")


def describe_open_error(port: str, err: BaseException) -> str:
    """One line naming the port and the fix."""
    text = str(err)
    errno = getattr(err, "errno", None)
    if errno == 13 or "Permission denied" in text:
        return f"{port}: permission denied; add the appliance user to the 'dialout' group (then log in again)"
    if errno == 2 or "No such file" in text:
        return f"{port}: no such port; check the cable/adapter and the port = setting"
    if errno == 11 or "Resource temporarily unavailable" in text or "exclusive" in text.lower():
        return f"{port}: port busy (is the appliance daemon already using it?)"
    return f"{port}: cannot open ({text})"


class SerialLink:
    def __init__(self, port: str, serial_kwargs: dict[str, Any], framer: LineFramer | StxEtxFramer, *,
                 loop: asyncio.AbstractEventLoop, on_frames: Callable[[list[Frame]], None],
                 on_link: Callable[[bool, str], None], ack: int | None = None, nak: int | None = None,
                 reconnect_min: float = 0.1, reconnect_max: float = 5.0, name: str = "serial"):
        self.port = port
        self.kwargs = serial_kwargs
        self.framer = framer
        self.loop = loop
        self.on_frames = on_frames
        self.on_link = on_link
        self.ack = bytes([ack]) if ack is not None else None
        self.nak = bytes([nak]) if nak is not None else None
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.name = name
        self.up = False
        self.last_error = ""
        self.counters = {"opens": 0, "open_failures": 0, "disconnects": 0, "bytes_in": 0, "bytes_out": 0,
                         "bad_frames": 0}
        self._ser: serial.Serial | None = None
        self._wlock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control (any thread) ---------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"serial-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def write(self, data: bytes) -> None:
        """Blocking write of whole bytes; LinkDown if the port is gone."""
        with self._wlock:
            ser = self._ser
            if ser is None:
                raise LinkDown(self.last_error or "port not open")
            try:
                ser.write(data)
                ser.flush()
            except Exception as e:  # SerialException, OSError, termios.error from tcdrain...
                raise LinkDown(str(e)) from e
            self.counters["bytes_out"] += len(data)

    # --- the reader thread ------------------------------------------------------------

    def _post(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _open(self) -> serial.Serial | None:
        try:
            try:
                ser = serial.Serial(self.port, timeout=0.05, write_timeout=2, exclusive=True, **self.kwargs)
            except termios.error:
                # Some ports (ptys among them) refuse the settings a previous owner left
                # behind: reset the line to neutral and try once more.
                reset_line(self.port)
                ser = serial.Serial(self.port, timeout=0.05, write_timeout=2, exclusive=True, **self.kwargs)
        except Exception as e:  # SerialException, OSError, termios.error, ValueError
            msg = describe_open_error(self.port, e)
            if msg != self.last_error:
                log.warning("%s: %s", self.name, msg)
            self.last_error = msg
            self.counters["open_failures"] += 1
            return None
        self.counters["opens"] += 1
        return ser

    def _run(self) -> None:
        backoff = self.reconnect_min
        while not self._stop.is_set():
            ser = self._open()
            if ser is None:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max)
                continue
            backoff = self.reconnect_min
            self.framer.reset()
            with self._wlock:
                self._ser = ser
            self.up = True
            self.last_error = ""
            self._post(self.on_link, True, "")
            reason = self._read_until_gone(ser)
            with self._wlock:
                self._ser = None
            self.up = False
            try:
                ser.close()
            except Exception:
                pass
            if self._stop.is_set():
                break
            self.counters["disconnects"] += 1
            self.last_error = reason
            self._post(self.on_link, False, reason)
            self._stop.wait(backoff)

    def _read_until_gone(self, ser: serial.Serial) -> str:
        while not self._stop.is_set():
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception as e:  # SerialException, OSError, termios.error: the port is gone
                return f"{self.port}: link lost ({e})"
            if not data:
                continue
            self.counters["bytes_in"] += len(data)
            frames = self.framer.feed(data)
            good = []
            for frame in frames:
                if frame.ok:
                    good.append(frame)
                    self._control(self.ack)
                elif frame.error in ("ack", "nak"):
                    continue  # the device's answer to our frame; nothing to act on
                else:
                    self.counters["bad_frames"] += 1
                    log.info("%s: dropped %s %r", self.name, frame.error, frame.raw[:60])
                    if frame.error == "bad checksum":
                        self._control(self.nak)
                    good.append(frame)  # the driver counts it; it is never acted on
            if good:
                self._post(self.on_frames, good)
        return "stopped"

    def _control(self, byte: bytes | None) -> None:
        if byte is None:
            return
        try:
            self.write(byte)
        except LinkDown:
            pass


def reset_line(port: str) -> None:
    """Put a port back to neutral settings (8 data bits, no parity, modem control on)."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        a = termios.tcgetattr(fd)
        a[2] = (a[2] & ~(termios.CLOCAL | termios.PARENB | termios.PARODD | termios.CBAUD)) | termios.B38400
        a[4] = a[5] = termios.B38400
        termios.tcsetattr(fd, termios.TCSANOW, a)
    except termios.error:
        pass
    finally:
        os.close(fd)
