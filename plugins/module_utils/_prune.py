# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune policy: the one function that decides which tags of a repository go and which stay.

Check mode, diff and the real run all call ``decide_prune`` on the same facts, so a check
run lists exactly what a real run deletes. Nothing here talks to a registry.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from ._errors import OCIError
from ._select import compile_patterns, matches_any, select_tags
from ._versions import parse_version

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_FRACTION = re.compile(r"\.(\d+)")
ORDERS = ("created", "semver")


def parse_duration(text: str | int | float, option: str = "duration") -> float:
    """Seconds in ``30d``, ``12h``, ``15m``, ``2w``, ``45s`` or a combination such as ``1d12h``; a bare number is seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    value = str(text).strip().lower()
    if value.isdigit():
        return float(value)
    parts = _DURATION_PART.findall(value)
    if not value or not parts or _DURATION_PART.sub("", value).strip():
        raise OCIError("%s: %r is not a duration; use a number and a unit, like 30d, 12h, 15m, 2w or 1d12h" % (option, text))
    return float(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts))


def parse_created(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 time from an image config (``2024-01-02T03:04:05.123456789Z``) as aware UTC; None when absent or unreadable."""
    if not text or not isinstance(text, str):
        return None
    value = text.strip().replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Go writes nanoseconds; Python's fromisoformat takes at most microseconds.
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


@dataclass(frozen=True)
class TagState:
    """What the policy needs to know about one tag: where it points, when that was created, what it contains."""

    tag: str
    digest: str
    created: datetime.datetime | None = None
    #: digests of the manifests an index points at (empty for an image)
    children: tuple[str, ...] = ()


@dataclass
class PrunePolicy:
    """A prune policy as the module takes it (durations already in seconds)."""

    include: list[str] | None = None
    exclude: list[str] | None = None
    keep_latest: int | None = None
    order: str = "created"
    keep_newer_than: float | None = None
    keep_tags: list[str] | None = None

    def validate(self) -> None:
        """Refuse a policy that is malformed, or that would delete every tag without saying so."""
        if self.keep_latest is not None and self.keep_latest < 0:
            raise OCIError("prune.keep_latest must be 0 or more, not %d" % self.keep_latest)
        if self.order not in ORDERS:
            raise OCIError("prune.order %r is not supported; use one of: %s" % (self.order, ", ".join(ORDERS)))
        if self.keep_newer_than is not None and self.keep_newer_than < 0:
            raise OCIError("prune.keep_newer_than must not be negative")
        for name in ("include", "exclude", "keep_tags"):
            compile_patterns(getattr(self, name), "prune." + name)
        # Without include every tag is a candidate: some rule must be able to keep one, or every tag goes.
        keeps = self.exclude or self.keep_tags or self.keep_latest or self.keep_newer_than
        if self.include or keeps:
            return
        given = ["%s: %s" % (name, getattr(self, name)) for name in ("include", "exclude", "keep_tags", "keep_latest") if getattr(self, name) is not None]
        if self.keep_newer_than is not None:
            given.append("keep_newer_than: %gs" % self.keep_newer_than)
        if not given:
            raise OCIError(
                "prune needs at least one of include, exclude, keep_latest, keep_newer_than (older_than) or keep_tags; "
                "to delete every tag of the repository say so with prune.include: ['.*']"
            )
        raise OCIError(
            "prune with %s keeps no tag: it would delete every tag of the repository. To delete every tag, say so with "
            "prune.include: ['.*']; to keep some, give keep_latest of 1 or more, keep_newer_than above 0, keep_tags or exclude" % ", ".join(given)
        )


@dataclass
class PruneDecision:
    """Tags to delete (``{tag, digest}``, in listing order) and tags kept, with why each is kept."""

    deleted: list[dict] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)


def _rank(state: TagState, order: str):
    """What keep_latest sorts by (bigger is newer), or None when this tag cannot be ranked."""
    if order == "semver":
        return parse_version(state.tag)
    return state.created.timestamp() if state.created else None


def decide_prune(states: list[TagState], policy: PrunePolicy, now: datetime.datetime | None = None) -> PruneDecision:
    """Apply ``policy`` to the tags in ``states``: which to delete, which to keep and why.

    Without ``include``, a decision that keeps no tag is refused: deleting every tag must be asked for.
    """
    policy.validate()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    keep_patterns = compile_patterns(policy.keep_tags, "prune.keep_tags")
    candidates = set(select_tags([s.tag for s in states], policy.include, policy.exclude))
    reasons: dict[str, str] = {}
    for state in states:
        if state.tag not in candidates:
            reasons[state.tag] = "not selected by include/exclude"
        elif matches_any(state.tag, keep_patterns):
            reasons[state.tag] = "matches keep_tags"

    if policy.keep_latest is not None:
        # The N newest images (distinct digests) among the candidates are kept, with every candidate tag on them.
        # An image ranks by its best tag; a tag that cannot be ranked cannot be shown to be outside the N, so it stays.
        best: dict[str, object] = {}
        for state in states:
            if state.tag not in candidates:
                continue
            rank = _rank(state, policy.order)
            if rank is None:
                reasons.setdefault(state.tag, "creation time unknown" if policy.order == "created" else "not a version (order: semver)")
            elif state.digest not in best or rank > best[state.digest]:  # type: ignore[operator]
                best[state.digest] = rank
        # Ties are broken by digest so the choice is the same every run.
        ranked = sorted(best, key=lambda d: (best[d], d), reverse=True)
        newest = set(ranked[: policy.keep_latest])
        what = "most recently created" if policy.order == "created" else "highest versions"
        for state in states:
            if state.tag in candidates and state.digest in newest:
                reasons.setdefault(state.tag, "among the %d %s" % (policy.keep_latest, what))

    if policy.keep_newer_than is not None:
        cutoff = now - datetime.timedelta(seconds=policy.keep_newer_than)
        for state in states:
            if state.tag not in candidates:
                continue
            if state.created is None:
                # Age unknown: it cannot be shown to be old enough, so it stays.
                reasons.setdefault(state.tag, "creation time unknown")
            elif state.created > cutoff:
                reasons.setdefault(state.tag, "created after %s" % cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"))

    # No kept tag may lose its manifest: a tag on a kept digest (or on an image inside a kept index) stays too.
    changed = True
    while changed:
        changed = False
        protected: dict[str, str] = {}
        for state in states:
            if state.tag in reasons:
                protected.setdefault(state.digest, "shares digest with kept tag %s" % state.tag)
                for child in state.children:
                    protected.setdefault(child, "is an image inside kept index %s" % state.tag)
        for state in states:
            if state.tag not in reasons and state.digest in protected:
                reasons[state.tag] = protected[state.digest]
                changed = True

    decision = PruneDecision()
    for state in states:
        if state.tag in reasons:
            decision.kept.append(state.tag)
            decision.reasons[state.tag] = reasons[state.tag]
        else:
            decision.deleted.append({"tag": state.tag, "digest": state.digest})
    if decision.deleted and not decision.kept and not policy.include:
        # The rules could keep tags, but keep none of these: emptying a repository is only done when said.
        tags = [d["tag"] for d in decision.deleted]
        shown = ", ".join(tags[:5]) + (", ..." if len(tags) > 5 else "")
        raise OCIError(
            "prune would delete every tag of the repository (%d: %s): no rule of the policy keeps one of them. To delete every tag, "
            "say so with prune.include: ['.*']; to keep some, widen keep_latest, keep_newer_than, keep_tags or exclude" % (len(tags), shown)
        )
    return decision
