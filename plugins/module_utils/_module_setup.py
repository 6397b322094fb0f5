# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module does first: its argument spec with the connection options, the constraints,
the check for missing libraries; then each side's connection options with the module's command
runner and secret sink.

The module passes ``AnsibleModule`` and ``missing_required_lib`` in, so module_utils stay free of
Ansible imports and testable without it.
"""

from __future__ import annotations

from dataclasses import replace

from ._commands import module_command_runner
from ._connection_args import check_connection_params, connection_argument_spec, connection_constraints, connection_options, daemon_argument_spec
from ._deps import REQUIRED, missing_libraries
from ._options import ConnectionOptions


def start_module(
    module_class,
    missing_required_lib,
    argument_spec: dict,
    sides: tuple[str, ...] | None = ("",),
    daemon: bool = False,
    libraries: tuple[str, ...] = tuple(REQUIRED),
    mutually_exclusive: list | None = None,
    required_together: list | None = None,
    **kwargs,
):
    """The module object, with the connection options of ``sides`` (None: none) added to ``argument_spec``.

    Fails the task with Ansible's message when a library in ``libraries`` cannot be imported.
    """
    spec = dict(argument_spec)
    exclusive = list(mutually_exclusive or [])
    together = list(required_together or [])
    if sides is not None:
        spec.update(connection_argument_spec(sides))
        constraints = connection_constraints(sides)
        exclusive += constraints["mutually_exclusive"]
        together += constraints["required_together"]
        if daemon:
            spec.update(daemon_argument_spec(sides))
    module = module_class(argument_spec=spec, supports_check_mode=True, mutually_exclusive=exclusive, required_together=together, **kwargs)
    for library, error in missing_libraries(libraries):
        module.fail_json(msg=missing_required_lib(library), exception=error)
    problem = check_connection_params(module.params) if sides is not None else None
    if problem:
        module.fail_json(msg=problem)
    if sides is not None:
        _report_rate_limit_waits(module)
    return module


def _report_rate_limit_waits(module) -> None:
    """Every result of the module says how long registries made it wait (``rate_limit_waits``); long waits warn too."""
    from ._registry._pacing import long_wait_warnings, rate_limit_report

    for name in ("exit_json", "fail_json"):
        finish = getattr(module, name)

        def with_waits(*args, _finish=finish, **kwargs):
            report = rate_limit_report()
            kwargs.setdefault("rate_limit_waits", report)
            for warning in long_wait_warnings(report):
                module.warn(warning)
            _finish(*args, **kwargs)

        setattr(module, name, with_waits)


def side_options(module, prefix: str = "") -> ConnectionOptions:
    """The connection options of one side, with the module's command runner and its no_log values as the secret sink.

    Every secret the collection reads from free-form data (an auth file, a credential helper's answer, a token,
    a password in a sync spec) is added to ``module.no_log_values`` the moment it is read, so Ansible hides it
    in every result, warning and message, at any verbosity.
    """
    return with_module(module, connection_options(module.params, prefix))


def with_module(module, options: ConnectionOptions) -> ConnectionOptions:
    """``options`` running programs through ``module`` and reporting secrets to it."""
    return replace(options, runner=module_command_runner(module), secret_sink=module.no_log_values.add)
