# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""External programs (credential helpers, podman) run through the caller's command runner.

Inside a module that is Ansible's ``module.run_command`` (so Ansible's rules on environment,
no shell and logging apply); a controller-side plugin or a test installs its own. Arguments are
always a list; secrets only ever travel on standard input.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from ._errors import OCIError

# (args, stdin bytes or None) -> (exit status, stdout bytes, stderr bytes)
CommandRunner = Callable[[list, Optional[bytes]], tuple[int, bytes, bytes]]

_runner: CommandRunner | None = None
_lock = threading.Lock()


def set_command_runner(runner: CommandRunner | None) -> None:
    """Install the function that runs programs for this process."""
    global _runner
    with _lock:
        _runner = runner


def module_command_runner(module) -> CommandRunner:
    """A runner on top of an AnsibleModule's run_command (bytes in, bytes out)."""

    def run(args: list, data: bytes | None = None) -> tuple[int, bytes, bytes]:
        rc, out, err = module.run_command(args, data=data, binary_data=True, encoding=None)
        return rc, out or b"", err or b""

    return run


def run_command(args: list, data: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run ``args`` (a list, never a shell string) with ``data`` on stdin."""
    with _lock:
        runner = _runner
    if runner is None:
        raise OCIError("%s: no command runner is installed in this process (call set_command_runner first)" % args[0])
    try:
        return runner(list(args), data)
    except OSError as exc:
        raise OCIError("cannot run %s: %s" % (args[0], exc)) from None
