# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tag selection: which tags of a repository a rule names (regular expressions over whole tags)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._errors import OCIError


def compile_patterns(patterns: str | Iterable[str] | None, option: str = "pattern") -> list[re.Pattern]:
    """Compile one regex or a list of them; a bad one raises OCIError naming ``option`` and the pattern."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise OCIError("%s: %r is not a valid regular expression (%s)" % (option, pattern, exc)) from None
    return compiled


def matches_any(tag: str, patterns: list[re.Pattern]) -> bool:
    """True when one of ``patterns`` matches the whole tag (``re.fullmatch``: ``1\\.2`` does not match ``1.20``)."""
    return any(p.fullmatch(tag) for p in patterns)


def select_tags(tags: Iterable[str], include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None, option: str = "") -> list[str]:
    """Tags (or any names) matching any ``include`` regex (all when none given) and no ``exclude`` regex, in their given order.

    ``option`` prefixes the option names an error gives (``repositories.`` -> ``repositories.include``).
    """
    wanted = compile_patterns(include, option + "include")
    unwanted = compile_patterns(exclude, option + "exclude")
    return [t for t in tags if (not wanted or matches_any(t, wanted)) and not matches_any(t, unwanted)]
