"""Real container engines for tests: a private ``dockerd`` and a private podman store.

``start_dockerd()`` starts a Docker engine with its own socket, data root and exec root (vfs
storage, no networking) and waits until ``/_ping`` answers; ``DockerEngine.stop()`` stops it and
the containerd it started, and removes its directories. ``PodmanStore`` is a private
containers-storage (vfs) that podman and skopeo address with a store specifier.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from registries import free_port, make_test_ca

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
DOCKER = shutil.which("docker") or "/usr/bin/docker"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """The engine could not be started here; the message says why (with its log)."""


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    """True when an engine answers ``GET /_ping`` with OK on the unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return False
    return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0] and answer.endswith(b"OK")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


@dataclass
class DockerEngine:
    """A dockerd this test session started; ``host`` is its ``unix://`` address."""

    directory: str  # short path: the engine socket and containerd's socket live under it
    process: subprocess.Popen
    log_path: str
    tcp_host: str = ""  # tcp://127.0.0.1:PORT, TLS with client certificates required
    cert_path: str = ""  # ca.pem, cert.pem, key.pem for tcp_host, as DOCKER_CERT_PATH expects them

    @property
    def socket_path(self) -> str:
        return os.path.join(self.directory, "d.sock")

    @property
    def host(self) -> str:
        return "unix://" + self.socket_path

    @property
    def exec_root(self) -> str:
        return os.path.join(self.directory, "x")

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """The docker CLI against this engine only."""
        proc = subprocess.run([DOCKER, "-H", self.host, *args], check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError("docker %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip()))
        return proc

    def inspect(self, name: str) -> dict:
        """``docker image inspect NAME`` as a dict."""
        return json.loads(self.docker("image", "inspect", name).stdout)[0]

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _containerd_pids(self) -> list[int]:
        # dockerd starts its own containerd with a config under the exec root; find it by that.
        marker = os.path.join(self.exec_root, "containerd").encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if os.path.basename(cmdline.split(b"\0", 1)[0]) == b"containerd" and marker in cmdline:
                pids.append(int(entry))
        return pids

    def stop(self) -> None:
        """Stop dockerd (it stops its containerd), make sure both are gone, remove the directories."""
        containerd = self._containerd_pids()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pid in containerd + self._containerd_pids():
            if not _wait_gone(pid, 10):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _client_cert_dir(data_root: str) -> tuple[str, list[str]]:
    """A test CA, server and client certificates; returns the DOCKER_CERT_PATH directory and dockerd's TLS flags."""
    ca = make_test_ca(os.path.join(data_root, "ca"))
    server_cert, server_key = ca.issue("dockerd")
    client_cert, client_key = ca.issue("client", client=True)
    cert_path = os.path.join(data_root, "client-certs")
    os.makedirs(cert_path)
    for source, name in ((ca.cert_path, "ca.pem"), (client_cert, "cert.pem"), (client_key, "key.pem")):
        shutil.copyfile(source, os.path.join(cert_path, name))
    return cert_path, ["--tlsverify", "--tlscacert", ca.cert_path, "--tlscert", server_cert, "--tlskey", server_key]


def start_dockerd(data_root: str) -> DockerEngine:
    """Start a private dockerd (vfs, no networking) and wait until it answers; EngineUnavailable when it cannot run.

    It listens on a unix socket (plain) and on a loopback TCP port with TLS and client certificates.
    """
    if not os.path.exists(DOCKERD):
        raise EngineUnavailable("dockerd is not installed (apt-get install docker.io; tests/setup/system.sh does it)")
    # Unix socket paths must stay under 108 bytes: keep the socket and the exec root (containerd's socket) short.
    directory = tempfile.mkdtemp(prefix="oci-d-", dir="/tmp")
    log_path = os.path.join(data_root, "dockerd.log")
    os.makedirs(data_root, exist_ok=True)
    cert_path, tls_flags = _client_cert_dir(data_root)
    tcp_host = "tcp://127.0.0.1:%d" % free_port()
    cmd = [
        DOCKERD,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=vfs",
        "--data-root",
        os.path.join(data_root, "data"),
        "--exec-root",
        os.path.join(directory, "x"),
        "-H",
        "unix://" + os.path.join(directory, "d.sock"),
        "-H",
        tcp_host,
        *tls_flags,
        "--pidfile",
        os.path.join(directory, "dockerd.pid"),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    engine = DockerEngine(directory, process, log_path, tcp_host, cert_path)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ping(engine.socket_path):
            return engine
        if process.poll() is not None:
            break
        time.sleep(0.1)
    engine.stop()
    reason = "exited with %s" % process.returncode if process.returncode is not None else "did not answer /_ping within %gs" % READY_TIMEOUT
    raise EngineUnavailable("dockerd %s; its log ends with:\n%s" % (reason, engine.log_tail()))


@dataclass
class PodmanStore:
    """A private containers-storage: podman with ``--root``/``--runroot``/vfs, skopeo with the store specifier."""

    root: str
    runroot: str
    driver: str = "vfs"

    @property
    def spec(self) -> str:
        return "[%s@%s+%s]" % (self.driver, self.root, self.runroot)

    def reference(self, name: str) -> str:
        """``containers-storage:[vfs@ROOT+RUNROOT]NAME``."""
        return "containers-storage:%s%s" % (self.spec, name)

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [PODMAN, "--root", self.root, "--runroot", self.runroot, "--storage-driver", self.driver, *args]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError("podman %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip()))
        return proc

    def inspect(self, name: str) -> dict:
        """``podman image inspect NAME`` as a dict."""
        return json.loads(self.podman("image", "inspect", name).stdout)[0]

    def remove(self) -> None:
        """Delete the store (vfs layers are plain directories; nothing is mounted)."""
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)
