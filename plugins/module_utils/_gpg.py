# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPG simple signing through the ``gpg`` program, run by the module's command runner.

Verifying works as containers/image does it: the policy's keys go into a throwaway keyring (a
temporary GNUPGHOME, removed afterwards, no agent started), the signature is checked there, and
its signer must be one of the imported keys. Signing uses the caller's own keyring (GNUPGHOME or
~/.gnupg) with the key named by fingerprint; a passphrase only ever travels on standard input.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ._commands import run_command
from ._errors import OCIError
from ._options import CommandRunner

GPG = "gpg"
_COMMON = ["--batch", "--no-tty", "--no-autostart", "--no-permission-warning"]


class GpgError(OCIError):
    """gpg is missing, or refused to do what was asked."""


def _status(stderr: bytes) -> list[list[str]]:
    """The ``[GNUPG:]`` status lines gpg wrote (with --status-fd 2), split into words."""
    lines = []
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("[GNUPG:] "):
            lines.append(line[len("[GNUPG:] ") :].split())
    return lines


def _messages(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").splitlines()
    text = " ".join(line.strip() for line in lines if line.startswith("gpg:") and not line.startswith("gpg: keybox"))
    return text[:500] or "no message"


def _run(runner: CommandRunner | None, args: list, data: bytes | None, what: str) -> tuple[int, bytes, bytes]:
    try:
        return run_command(runner, [GPG, *args], data)
    except OCIError:
        raise GpgError(
            "%s needs the gpg program (Debian/Ubuntu: apt-get install gnupg; RHEL: dnf install gnupg2) on the host the module runs on" % what
        ) from None


def _kill_agent(runner: CommandRunner | None, home: str) -> None:
    if any(name.startswith("S.gpg-agent") for name in os.listdir(home)):
        try:
            run_command(runner, ["gpgconf", "--homedir", home, "--kill", "all"])
        except OCIError:
            pass


class Keyring:
    """A throwaway keyring holding the keys of one policy requirement; ``close()`` removes it."""

    def __init__(self, key_blobs: list[bytes], where: str, runner: CommandRunner | None):
        self.where = where
        self.runner = runner
        self.home = tempfile.mkdtemp(prefix="oci-images-gpg-")
        self.fingerprints: list[str] = []
        try:
            for blob in key_blobs:
                rc, _out, err = _run(self.runner, ["--homedir", self.home, *_COMMON, "--status-fd", "2", "--import"], blob, "verifying a signedBy requirement")
                imported = [words[2].upper() for words in _status(err) if words[0] == "IMPORT_OK" and len(words) > 2]
                if rc != 0 and not imported:
                    raise GpgError(
                        "%s: gpg could not import the keys (signedBy takes GPG public keys; a sigstore key belongs in sigstoreSigned): %s"
                        % (where, _messages(err)),
                        where,
                    )
                self.fingerprints += imported
            if not self.fingerprints:
                raise GpgError("%s: no public keys were imported (is it a GPG keyring or an armored public key?)" % where, where)
        except BaseException:
            self.close()
            raise

    def verify(self, message: bytes) -> tuple[bytes | None, str | None, str]:
        """(signed content, signer fingerprint, "") for a good signature by one of the keys; (None, signer or None, why) otherwise."""
        rc, out, err = _run(self.runner, ["--homedir", self.home, *_COMMON, "--status-fd", "2", "--decrypt"], message, "verifying a signedBy requirement")
        status = _status(err)
        signatures = [words for words in status if words[0] == "NEWSIG"]
        bad = [words for words in status if words[0] in ("BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "ERRSIG")]
        valid = [words for words in status if words[0] == "VALIDSIG"]
        if len(signatures) != 1:
            return None, None, "the OpenPGP message holds %d signatures, not exactly 1" % len(signatures)
        if bad:
            signer = bad[0][1] if len(bad[0]) > 1 else None
            reason = {"BADSIG": "bad signature", "EXPSIG": "expired signature", "EXPKEYSIG": "signed by an expired key", "REVKEYSIG": "signed by a revoked key"}
            if bad[0][0] == "ERRSIG":
                signer = bad[0][7] if len(bad[0]) >= 8 and bad[0][7] != "-" else signer
                return None, signer, "signature by key %s, which is not one of the policy's keys" % signer
            return None, signer, "%s (key %s)" % (reason[bad[0][0]], signer)
        if rc != 0 or not valid:
            return None, None, "gpg did not accept the signature: %s" % _messages(err)
        fingerprint = valid[0][1].upper()
        primary = valid[0][-1].upper() if len(valid[0]) >= 10 else fingerprint
        signer = primary if primary in self.fingerprints else fingerprint
        if signer not in self.fingerprints:
            return None, signer, "signature by key %s, which is not one of the policy's keys" % signer
        return out, signer, ""

    def close(self) -> None:
        if self.home and os.path.isdir(self.home):
            _kill_agent(self.runner, self.home)
            shutil.rmtree(self.home, ignore_errors=True)
        self.home = ""


def untrusted_contents(message: bytes, runner: CommandRunner | None) -> tuple[bytes | None, str | None]:
    """The content of a signed message and the signer's key ID, without verifying anything (for image_info)."""
    home = tempfile.mkdtemp(prefix="oci-images-gpg-")
    try:
        _rc, out, err = _run(runner, ["--homedir", home, *_COMMON, "--status-fd", "2", "--decrypt"], message, "reading a GPG signature")
        signer = None
        for words in _status(err):
            if words[0] in ("ERRSIG", "GOODSIG", "BADSIG", "VALIDSIG") and len(words) > 1:
                signer = words[-1].upper() if words[0] == "ERRSIG" and len(words) >= 8 else words[1].upper()
                break
        return (out or None), signer
    finally:
        _kill_agent(runner, home)
        shutil.rmtree(home, ignore_errors=True)


def sign(payload: bytes, fingerprint: str, passphrase: str | None, runner: CommandRunner | None) -> bytes:
    """A binary signed message over ``payload`` by the key ``fingerprint`` of the caller's keyring."""
    directory = tempfile.mkdtemp(prefix="oci-images-sign-")
    try:
        path = os.path.join(directory, "payload")
        with open(path, "wb") as handle:
            handle.write(payload)
        args = [*_COMMON[:2], "--status-fd", "2", "--local-user", fingerprint, "--output", "-"]
        if passphrase is not None:
            args += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        else:
            args += ["--pinentry-mode", "error"]
        # gpg starts the caller's agent when none runs; one started for this task is stopped after it.
        agent_was_running = run_command(runner, ["gpg-connect-agent", "--no-autostart", "/bye"])[0] == 0 if shutil.which("gpg-connect-agent") else True
        try:
            rc, out, err = _run(runner, [*args, "--sign", path], (passphrase or "").encode("utf-8") + b"\n" if passphrase is not None else b"", "sign_by")
        finally:
            if not agent_was_running:
                try:
                    run_command(runner, ["gpgconf", "--kill", "gpg-agent"])
                except OCIError:
                    pass
        if rc != 0 or not out:
            raise GpgError("gpg could not sign with key %s: %s" % (fingerprint, _messages(err)), fingerprint)
        return out
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def export_public_key(fingerprint: str, runner: CommandRunner | None) -> bytes:
    """The public key ``fingerprint`` from the caller's keyring (to recognise its existing signatures)."""
    rc, out, err = _run(runner, [*_COMMON[:2], "--export", fingerprint], None, "sign_by")
    if rc != 0 or not out:
        raise GpgError(
            "sign_by: the key %s is not in the gpg keyring of the user the module runs as (GNUPGHOME or ~/.gnupg): %s" % (fingerprint, _messages(err)),
            fingerprint,
        )
    return out
