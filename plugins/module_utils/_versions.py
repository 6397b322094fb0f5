# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags as versions, and version ranges in the syntax skopeo sync's ``images-by-semver`` takes.

Parsing and comparison are the ``packaging`` library's (ansible-core already depends on it);
this module only reads the range syntax (``>= 1.3.0, < 2.1.0``, ``^1.2``, ``~1.2.3``,
``1.2.x``, ``1.2 - 1.4``, ``||``) and turns it into packaging specifier sets.
"""

from __future__ import annotations

import re

from ._errors import OCIError

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    HAS_PACKAGING = True
except ImportError:  # pragma: no cover - ansible-core brings packaging
    HAS_PACKAGING = False

# A tag is a version when it looks like semver: optional "v", one to three numbers, optional
# pre-release and build parts (what skopeo sync accepts). "1.2.3.4" or "latest" are not versions.
_TAG_VERSION_RE = re.compile(r"^[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")
_TERM_RE = re.compile(r"^(=|==|!=|>=|<=|>|<|~|\^|~>)?\s*[vV]?([0-9xX*]+(?:\.[0-9xX*]+){0,2})(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_WILDCARDS = ("x", "X", "*")


class InvalidRange(OCIError):
    """A version range that does not parse."""


def parse_version(tag: str):
    """The tag as a comparable Version, or None when it is not a version (skipped by version selection)."""
    if not HAS_PACKAGING:
        raise OCIError("the Python library packaging is required for version selection")
    match = _TAG_VERSION_RE.match(tag)
    if not match:
        return None
    major, minor, patch, pre, build = match.groups()
    text = "%s.%s.%s" % (major, minor or 0, patch or 0)
    if pre:
        text += "-" + pre
    if build:
        text += "+" + build
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _bounds(op: str, parts: list[str], pre: str) -> list[str]:
    """Specifiers for one term, e.g. ("^", ["1","2"], "") -> [">=1.2.0", "<2.0.0"]."""
    wild = [p in _WILDCARDS for p in parts]
    if any(wild):
        parts = parts[: wild.index(True)]
        if op in ("", "=", "=="):
            if not parts:
                return []
            return ["==" + ".".join(parts) + ".*"]
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    exact = "%d.%d.%d%s" % (numbers[0], numbers[1], numbers[2], pre)
    given = len(parts)
    if op in ("", "=", "=="):
        return ["==" + exact] if given == 3 or pre else ["==" + ".".join(parts) + ".*"]
    if op == "!=":
        return ["!=" + exact]
    if op in (">", ">=", "<", "<="):
        return [op + exact]
    if op in ("~", "~>"):
        upper = (numbers[0] + 1, 0, 0) if given == 1 else (numbers[0], numbers[1] + 1, 0)
        return [">=" + exact, "<%d.%d.%d" % upper]
    if op == "^":
        if numbers[0] > 0 or given == 1:
            upper = (numbers[0] + 1, 0, 0)
        elif numbers[1] > 0 or given == 2:
            upper = (0, numbers[1] + 1, 0)
        else:
            upper = (0, 0, numbers[2] + 1)
        return [">=" + exact, "<%d.%d.%d" % upper]
    raise InvalidRange("unknown operator %r" % op)


class VersionRange:
    """A range such as ``>=1.3.0,<2.1.0`` or ``^1.2 || ~2.0``; ``contains(tag)`` tells if a tag's version is in it."""

    def __init__(self, text: str):
        if not HAS_PACKAGING:
            raise OCIError("the Python library packaging is required for version ranges")
        self.text = text
        self.alternatives = [self._parse_and(part.strip(), text) for part in text.split("||")]
        # As in skopeo sync (Masterminds semver): pre-releases match only a range that names one.
        self.prereleases = [bool(re.search(r"\d-[0-9A-Za-z]", part)) for part in text.split("||")]

    @staticmethod
    def _parse_and(text: str, whole: str):
        if not text:
            raise InvalidRange("empty alternative in version range %r" % whole)
        specifiers: list[str] = []
        hyphen = re.match(r"^(\S+)\s+-\s+(\S+)$", text)
        if hyphen:
            terms = [">=" + hyphen.group(1), "<=" + hyphen.group(2)]
        else:
            # Terms are separated by commas, or by spaces between complete terms (">= 1.2 < 2").
            terms = [t for t in re.split(r",|\s+(?=[<>=!~^]|[vV]?\d)", text) if t.strip()]
            joined = []
            for term in terms:
                term = term.strip()
                if joined and re.match(r"^(=|==|!=|>=|<=|>|<|~|\^|~>)$", joined[-1]):
                    joined[-1] += term
                else:
                    joined.append(term)
            terms = joined
        for term in terms:
            match = _TERM_RE.match(term.strip())
            if not match:
                raise InvalidRange("invalid version range %r: cannot read %r (use forms like >=1.3.0, <2.1.0, ^1.2, ~1.2.3, 1.2.x)" % (whole, term))
            op, version, pre, _build = match.groups()
            specifiers += _bounds(op or "", version.split("."), pre or "")
        try:
            return SpecifierSet(",".join(specifiers))
        except InvalidSpecifier as exc:
            raise InvalidRange("invalid version range %r: %s" % (whole, exc)) from None

    def contains(self, tag: str) -> bool:
        version = parse_version(tag)
        if version is None:
            return False
        return any(spec.contains(version, prereleases=pre) for spec, pre in zip(self.alternatives, self.prereleases))

    def __repr__(self) -> str:
        return "VersionRange(%r)" % self.text
