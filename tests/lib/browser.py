"""A real browser for tests: Debian's headless Chromium, with a fresh profile each run and nothing left behind.

``dump_dom(url)`` gives the DOM after the page's scripts ran; ``screenshot(url, path)`` writes a PNG.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile

CHROMIUM = os.environ.get("OCI_IMAGES_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-crash-reporter",
    "--disable-breakpad",
)


def _run(*args: str, timeout: float = 90) -> str:
    if not os.path.exists(CHROMIUM):
        raise AssertionError("%s is missing: tests/setup/system.sh installs it (apt-get install -y chromium)" % CHROMIUM)
    profile = tempfile.mkdtemp(prefix="oci-tests-chromium-")
    # Its own session: whatever it starts and leaves running is found by the session id and ended.
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, "--user-data-dir=" + profile, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _end_session(proc.pid)
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise AssertionError("chromium failed (rc=%d): %s" % (proc.returncode, err.decode(errors="replace")[-2000:]))
    return out.decode("utf-8", errors="replace")


def _end_session(session: int) -> None:
    """Kill the processes still running in the browser's session (by their process ids); exited ones are left to be reaped."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def dump_dom(url: str) -> str:
    """The page's DOM as HTML after its scripts ran."""
    return _run("--dump-dom", url)


def screenshot(url: str, path: str, width: int = 1280, height: int = 900) -> tuple[int, int]:
    """Write a PNG of the page at ``width`` x ``height``; returns the PNG's own width and height."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    _run("--screenshot=" + path, "--window-size=%d,%d" % (width, height), "--hide-scrollbars", url)
    with open(path, "rb") as handle:
        header = handle.read(24)
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("%s is not a PNG" % path)
    return struct.unpack(">II", header[16:24])
