# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""External programs (credential helpers, podman) run through the runner the caller passes down.

Inside a module the runner is Ansible's ``module.run_command`` (so Ansible's rules on
environment, no shell and logging apply); a controller-side plugin or a test gives its own. It
travels in ``ConnectionOptions.runner``: there is no process-wide default. Arguments are always a
list; secrets only ever travel on standard input.
"""

from __future__ import annotations

from ._errors import OCIError
from ._options import CommandRunner


def module_command_runner(module) -> CommandRunner:
    """A runner on top of an AnsibleModule's run_command (bytes in, bytes out)."""

    def run(args: list, data: bytes | None = None) -> tuple[int, bytes, bytes]:
        rc, out, err = module.run_command(args, data=data, binary_data=True, encoding=None)
        return rc, out or b"", err or b""

    return run


def run_command(runner: CommandRunner | None, args: list, data: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run ``args`` (a list, never a shell string) with ``data`` on stdin, through ``runner``."""
    if runner is None:
        raise OCIError("%s: no command runner was given to run it (the caller passes one in its connection options)" % args[0])
    try:
        return runner(list(args), data)
    except OSError as exc:
        raise OCIError("cannot run %s: %s" % (args[0], exc)) from None
