"""skopeo, the oracle: what it writes we must read, what it reports we must report."""

from __future__ import annotations

import json
import shutil
import subprocess

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


class SkopeoFailed(AssertionError):
    pass


def skopeo(*args: str, timeout: float = 300) -> str:
    """Run skopeo with the insecure policy (tests have no /etc/containers/policy.json); return stdout."""
    cmd = [SKOPEO, "--insecure-policy", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SkopeoFailed("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def tls_flag(ref: str, flag: str, tls_verify: bool) -> list[str]:
    return [flag + "=" + ("true" if tls_verify else "false")] if ref.startswith("docker://") else []


def copy(src: str, dest: str, *extra: str, tls_verify: bool = False) -> None:
    """skopeo copy, without TLS verification for registry sides unless asked."""
    skopeo("copy", "--quiet", *tls_flag(src, "--src-tls-verify", tls_verify), *tls_flag(dest, "--dest-tls-verify", tls_verify), *extra, src, dest)


def inspect(ref: str, *extra: str, tls_verify: bool = False) -> dict:
    """skopeo inspect as a dict."""
    return json.loads(skopeo("inspect", *tls_flag(ref, "--tls-verify", tls_verify), *extra, ref))


def list_tags(ref: str, tls_verify: bool = False) -> dict:
    """skopeo list-tags as a dict (``Repository``, ``Tags``); skopeo 1.9 lists docker:// only."""
    return json.loads(skopeo("list-tags", *tls_flag(ref, "--tls-verify", tls_verify), ref))


def inspect_raw(ref: str, *extra: str, tls_verify: bool = False) -> bytes:
    """The raw manifest skopeo sees, as bytes."""
    cmd = [SKOPEO, "--insecure-policy", "inspect", "--raw", *tls_flag(ref, "--tls-verify", tls_verify), *extra, ref]
    proc = subprocess.run(cmd, capture_output=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SkopeoFailed("%s failed: %s" % (" ".join(cmd), proc.stderr.decode(errors="replace")))
    return proc.stdout
