"""Granular revocation rules (docs/revocation.md, RV-1 to RV-5).

A rule denies every scope key it selects: an org's whole customer key, one service, one scope
(a channel), an epoch range (a time window), or any combination. Rules are checked on every seal
and every open before the cache is consulted, so they act on the very next call; lifting a rule
restores access, unlike destruction.

A rule stored by an older version, before the times were checked, may hold a time nobody can
read (``inf``, ``nan``, milliseconds, before 1970, ``until`` before ``since``). Read literally it
would deny nothing, silently: whoever can write the database could turn a rule into a no-op that
still lists as in force. Such a rule loads, says what is wrong (:attr:`RevocationRule.problem`)
and is enforced without its time window: it denies its whole scope (key, service, scope) until
it is lifted. Fail closed: an unreadable narrowing never widens access.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ownkey._refs import KeyRef
from ownkey.errors import InvalidRequest
from ownkey.keys._records import ScopeIdentity, Selector
from ownkey.policy import check_id, check_note, check_service_id, check_time, check_window

__all__ = ["RevocationPreview", "RevocationRule", "stored_time"]

#: What :attr:`RevocationRule.problem` adds: what enforcement does with an unreadable rule.
ENFORCED_WHOLE = "; enforced over its whole scope (its time window ignored) until lifted"


@dataclass(frozen=True, slots=True)
class RevocationRule:
    """Deny the use of ``key`` (default: ``org``'s customer key) for the scope keys selected.

    ``org`` is required: a customer revokes its own key's use, never another org's. Leaving
    ``service_id``, ``scope``, ``since`` and ``until`` unset revokes the whole key; each one set
    narrows the rule (RV-1).
    """

    org: str
    service_id: str | None = None
    scope: str | None = None
    since: float | None = None
    until: float | None = None
    key: KeyRef | None = None
    rule_id: str = ""
    created_at: float = 0.0
    actor: str | None = None
    note: str = ""
    _selector: Selector = field(init=False, repr=False, compare=False)
    _problems: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.org:
            raise ValueError("a revocation rule names the org whose key it revokes")
        if self.key is None:
            object.__setattr__(self, "key", KeyRef.customer(self.org))
        elif self.key.org not in (None, self.org):
            raise ValueError("a rule can only revoke its own org's key (or the platform key)")
        problems = _time_problems(self.since, self.until)
        object.__setattr__(self, "_problems", problems)
        # Built once: rules are matched on every seal and open of the content they cover. A
        # window that cannot be read is dropped, never read as "nothing" (fail closed).
        readable = not problems
        selector = Selector(
            key=self.key,
            org=self.org,
            service_id=self.service_id,
            scope=self.scope,
            since=self.since if readable else None,
            until=self.until if readable else None,
        )
        object.__setattr__(self, "_selector", selector)

    @property
    def valid(self) -> bool:
        """Whether the rule's times can be read (always, for a rule added by this version)."""
        return not self._problems

    @property
    def problem(self) -> str | None:
        """What is wrong with a rule stored by an older version, and what is enforced instead;
        None for a valid rule. One line, for listings."""
        if not self._problems:
            return None
        return "; ".join(self._problems) + ENFORCED_WHOLE

    def check(self) -> RevocationRule:
        """Refuse (InvalidRequest) a rule whose values fall outside the shared rules of
        ``ownkey.policy`` (a known service ID, an id-shaped scope, times in Unix seconds within
        1970..9999, ``until`` after ``since``). Called before a rule is stored or previewed, not
        when one is read back: a rule stored by an older version still loads (fail closed)."""
        if self.service_id is not None:
            check_service_id("service_id", self.service_id)
        if self.scope is not None:
            check_id("scope", self.scope)
        if self.since is not None:
            check_time("since", self.since)
        if self.until is not None:
            check_time("until", self.until)
        check_window(self.since, self.until)
        check_note("note", self.note)
        return self

    @property
    def wrapping_key(self) -> KeyRef:
        """The key whose use the rule denies."""
        assert self.key is not None  # set in __post_init__
        return self.key

    @property
    def selector(self) -> Selector:
        """The scope keys this rule denies."""
        return self._selector

    def matches(self, identity: ScopeIdentity) -> bool:
        """Whether the rule denies a scope key of this identity."""
        return self._selector.matches(identity)

    def to_record(self) -> dict[str, Any]:
        """The rule as one flat record, ``key_ref`` naming its key: the field mapping written
        once for the SQL row, the change notification and the API's answer."""
        return {
            "rule_id": self.rule_id,
            "org": self.org,
            "key_ref": str(self.wrapping_key),
            "service_id": self.service_id,
            "scope": self.scope,
            "since": self.since,
            "until": self.until,
            "created_at": self.created_at,
            "actor": self.actor,
            "note": self.note,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RevocationRule:
        """The rule of a :meth:`to_record` record (missing fields take their defaults)."""
        key_ref = record.get("key_ref")
        return cls(
            org=str(record["org"]),
            service_id=record.get("service_id"),
            scope=record.get("scope"),
            since=_seconds(record.get("since")),
            until=_seconds(record.get("until")),
            key=None if key_ref is None else KeyRef.parse(str(key_ref)),
            rule_id=str(record.get("rule_id") or ""),
            created_at=_seconds(record.get("created_at")) or 0.0,
            actor=record.get("actor"),
            note=str(record.get("note") or ""),
        )

    def describe(self) -> dict[str, str]:
        """The rule's fields as strings, for audit details and reports."""
        out = {"rule_id": self.rule_id, "org": self.org, "key": str(self.key)}
        for name in ("service_id", "scope", "since", "until"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        if self.note:
            out["note"] = self.note
        return out


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _shown(value: float) -> str:
    value = float(value)  # an int given by a caller too
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)  # inf, -inf, nan, or a fraction as Python writes it


def _time_problems(since: float | None, until: float | None) -> tuple[str, ...]:
    """Each time of the rule that the shared rule (``check_time``) refuses, then an empty
    window: the words of ``ownkey.policy``, after the value as stored."""
    problems = []
    for name, value in (("since", since), ("until", until)):
        if value is None:
            continue
        try:
            check_time(name, value)
        except InvalidRequest as exc:
            reason = str(exc).removeprefix(f"{name}: ")
            problems.append(f"{name} is {_shown(value)}, {reason}")
    if not problems and since is not None and until is not None and until <= since:
        problems.append(f"until ({_shown(until)}) is not after since ({_shown(since)})")
    return tuple(problems)


def stored_time(value: float | None) -> float | str | None:
    """A rule's time as stored, for JSON: a number, or its name when JSON has none (``inf``,
    ``-inf``, ``nan``) so that it is never shown as ``null``, which reads as "any time"."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class RevocationPreview:
    """What a rule would deny if it were added now: scope keys by service ID (RV-4).

    The key layer counts scope keys; ``service.AssetService.preview`` adds the stored assets
    and their bytes by service.
    """

    rule: RevocationRule
    scope_keys_by_service: dict[str, int] = field(default_factory=dict)

    @property
    def scope_keys(self) -> int:
        """The total number of scope keys the rule would deny."""
        return sum(self.scope_keys_by_service.values())
