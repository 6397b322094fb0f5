"""Signing peers for tests: throwaway gpg keys, registries.d files, and skopeo run with a real policy.

Every GNUPGHOME made here is a temporary directory; ``GpgKey.remove()`` stops any agent gpg started in
it and deletes it. skopeo runs with ``--policy`` (never --insecure-policy) and ``--registries.d`` so it
reads and writes signatures exactly where the collection does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from skopeo import SKOPEO


@dataclass
class GpgKey:
    """A gpg key pair in its own GNUPGHOME: ``fingerprint``, ``public_path`` (armored public key)."""

    home: str
    fingerprint: str
    public_path: str
    passphrase: str = ""

    @property
    def env(self) -> dict:
        return {"GNUPGHOME": self.home}

    def gpg(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--homedir", self.home, "--batch", "--no-tty", *args], input=data, capture_output=True, check=False, timeout=120)

    def remove(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


def make_gpg_key(directory: str, name: str, passphrase: str = "") -> GpgKey:
    """A new RSA key (gpg's default) in ``directory/name.gnupg``, its armored public key in ``directory/name.asc``."""
    home = tempfile.mkdtemp(prefix="gnupg-%s-" % name, dir=directory)
    os.chmod(home, 0o700)
    args = ["gpg", "--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", passphrase]
    subprocess.run(
        [*args, "--quick-gen-key", "%s <%s@example.invalid>" % (name, name), "default", "default", "never"], capture_output=True, check=True, timeout=120
    )
    listing = subprocess.run(["gpg", "--homedir", home, "--batch", "--with-colons", "--list-keys"], capture_output=True, text=True, check=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public_path = os.path.join(directory, "%s.asc" % name)
    with open(public_path, "wb") as handle:
        handle.write(subprocess.run(["gpg", "--homedir", home, "--batch", "--armor", "--export", fingerprint], capture_output=True, check=True).stdout)
    return GpgKey(home, fingerprint, public_path, passphrase)


def write_registries_d(directory: str, lookaside: str | None = None, attachments: bool = False, namespace: str | None = None) -> str:
    """A registries.d directory with one YAML file: a file:// lookaside (read and staging) and sigstore attachments."""
    os.makedirs(directory, exist_ok=True)
    settings = {}
    if lookaside:
        settings["lookaside"] = "file://" + lookaside
        settings["lookaside-staging"] = "file://" + lookaside
    if attachments:
        settings["use-sigstore-attachments"] = True
    doc = {"docker": {namespace: settings}} if namespace else {"default-docker": settings}
    with open(os.path.join(directory, "test.yaml"), "w") as handle:
        json.dump(doc, handle)  # JSON is YAML
    return directory


def write_policy(path: str, policy: dict) -> str:
    with open(path, "w") as handle:
        json.dump(policy, handle)
    return path


def skopeo_run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """skopeo with the given global and command arguments; the caller reads returncode/stderr."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([SKOPEO, *args], capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def skopeo_accepts(policy_path: str, src: str, dest: str, registries_d: str, *extra: str) -> tuple[bool, str]:
    """Does ``skopeo --policy`` copy ``src`` (it verifies before writing)? (accepted, stderr)."""
    tls = []
    if src.startswith("docker://"):
        tls.append("--src-tls-verify=false")
    if dest.startswith("docker://"):
        tls.append("--dest-tls-verify=false")
    proc = skopeo_run("--policy", policy_path, "--registries.d", registries_d, "copy", "--quiet", *tls, *extra, src, dest)
    return proc.returncode == 0, proc.stderr.strip()
