"""A model of the key lifecycle and cache, checked against the Protector by Hypothesis.

The machine seals, opens, rotates, disables, enables, schedules and cancels destruction, destroys,
creates a new key after a destruction, adds and lifts revocation rules (by scope, service, time
window or the whole key) and lets time pass (expiring cache entries and epochs). After every step
the Protector must agree with a plain model: an open succeeds exactly when every key of the
content's scope key is enabled, the scope key was not shredded, and no revocation rule matches;
otherwise it is an AccessDenied with the model's reason (KL-6 to KL-11, RV-1 to RV-6, CA-1).

A stub policy names the plan's keys directly (through the component), so the model stays small;
the real policy engine is exercised by test_catalog_coverage.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from ownkey import policy
from ownkey.errors import AccessDenied, LifecycleError
from ownkey.keys import KeyRef, RevocationRule
from ownkey.service import ProtectorSettings
from tests.service._helpers import DAY, HOUR, make_node

A, G, P = KeyRef.customer("acme"), KeyRef.customer("globex"), KeyRef.platform()
KEYS = (A, G, P)
PLANS: dict[str, tuple[KeyRef, ...]] = {
    "a": (A,),
    "g": (G,),
    "p": (P,),
    "ag": (A, G),
    "ap": (A, P),
    "gp": (G, P),
    "agp": (A, G, P),
}
SERVICES = {"0008": HOUR, "0001": DAY}
SCOPES = ("s1", "s2", "s3")
WAIT = DAY
SETTINGS = ProtectorSettings(
    cache_max_age=300,
    cache_refresh_after=240,
    destruction_waiting_period=WAIT,
    min_destruction_waiting_period=WAIT,
)


def stub_policy(request: Any) -> policy.ProtectionPlan:
    keys = PLANS[request["asset"]["component"]]
    return policy.ProtectionPlan.of(
        request["asset"]["service_id"],
        list(keys),
        [policy.Reason(next(iter(policy.Rule)), "the model's plan for this component")],
    )


@dataclass
class Message:
    request: dict[str, Any]
    blob: bytes
    plaintext: bytes
    keys: tuple[KeyRef, ...]
    service_id: str
    scope: str
    epoch_start: float
    epoch_seconds: float
    shredded: bool = False


@dataclass
class ModelRule:
    rule_id: str
    key: KeyRef
    service_id: str | None
    scope: str | None
    since: float | None
    until: float | None

    def matches(
        self, keys: tuple[KeyRef, ...], service_id: str, scope: str, start: float, seconds: float
    ) -> bool:
        return (
            self.key in keys
            and (self.service_id is None or self.service_id == service_id)
            and (self.scope is None or self.scope == scope)
            and (self.since is None or start + seconds > self.since)
            and (self.until is None or start < self.until)
        )


class LifecycleMachine(RuleBasedStateMachine):
    messages = Bundle("messages")
    rules = Bundle("rules")

    @initialize()
    def build(self) -> None:
        self.node = make_node(SETTINGS, policy=stub_policy, seed=11)
        for ref in (A, G):
            self.node.admin.create_key(ref)
        self.states = {ref: "enabled" for ref in KEYS}
        self.destroy_at: dict[KeyRef, float] = {}
        self.model_rules: dict[str, ModelRule] = {}
        self.all_messages: list[Message] = []
        self.count = 0

    # -- the model's expectations ----------------------------------------------------------------

    def _denial(
        self, keys: tuple[KeyRef, ...], service_id: str, scope: str, start: float, seconds: float
    ) -> str | None:
        """The reason the model expects, or None for success (the checks' order: keys by plan
        order, each key's state before its rules)."""
        for key in keys:
            if self.states[key] != "enabled":
                return self.states[key]
            for model_rule in self.model_rules.values():
                if model_rule.key == key and model_rule.matches(
                    keys, service_id, scope, start, seconds
                ):
                    return "revocation_rule"
        return None

    # -- data plane ------------------------------------------------------------------------------

    @rule(
        target=messages,
        plan=st.sampled_from(sorted(PLANS)),
        service_id=st.sampled_from(sorted(SERVICES)),
        scope=st.sampled_from(SCOPES),
    )
    def seal(self, plan: str, service_id: str, scope: str) -> Any:
        self.count += 1
        request = {
            "asset": {"service_id": service_id, "org": "acme", "component": plan},
            "scope": scope,
            "asset_id": f"m{self.count}",
        }
        seconds = SERVICES[service_id]
        start = self.node.clock() // seconds * seconds
        keys = PLANS[plan]
        expected = self._denial(keys, service_id, scope, start, seconds)
        plaintext = b"message %d" % self.count
        if expected is not None:
            with pytest.raises(AccessDenied) as denied:
                self.node.protector.seal(request, plaintext)
            assert denied.value.reason == expected
            return None
        blob = self.node.protector.seal(request, plaintext)
        message = Message(request, blob, plaintext, keys, service_id, scope, start, seconds)
        self.all_messages.append(message)
        return message

    @rule(message=messages)
    def open(self, message: Message | None) -> None:
        if message is None:
            return
        self._check_open(message)

    def _check_open(self, message: Message) -> None:
        expected = (
            "destroyed"
            if message.shredded
            else self._denial(
                message.keys,
                message.service_id,
                message.scope,
                message.epoch_start,
                message.epoch_seconds,
            )
        )
        event(f"open: {expected or 'ok'}")
        if expected is None:
            assert self.node.protector.open(message.request, message.blob) == message.plaintext
        else:
            with pytest.raises(AccessDenied) as denied:
                self.node.protector.open(message.request, message.blob)
            assert denied.value.reason == expected

    # -- key lifecycle ---------------------------------------------------------------------------

    def _expect(self, legal: bool, call: Any) -> Any:
        if legal:
            return call()
        with pytest.raises(LifecycleError):
            call()
        return None

    @rule(key=st.sampled_from(KEYS))
    def rotate(self, key: KeyRef) -> None:
        rotation = self._expect(
            self.states[key] == "enabled", lambda: self.node.admin.rotate_key(key)
        )
        if rotation is not None:
            assert rotation.rewrap.failed == {}

    @rule(key=st.sampled_from(KEYS))
    def disable(self, key: KeyRef) -> None:
        if self._expect(self.states[key] == "enabled", lambda: self.node.admin.disable_key(key)):
            self.states[key] = "disabled"

    @rule(key=st.sampled_from(KEYS))
    def enable(self, key: KeyRef) -> None:
        if self._expect(self.states[key] == "disabled", lambda: self.node.admin.enable_key(key)):
            self.states[key] = "enabled"

    @rule(key=st.sampled_from(KEYS))
    def schedule_destruction(self, key: KeyRef) -> None:
        if self._expect(
            self.states[key] == "disabled",
            lambda: self.node.admin.schedule_key_destruction(key),
        ):
            self.states[key] = "pending_destruction"
            self.destroy_at[key] = self.node.clock() + WAIT

    @rule(key=st.sampled_from(KEYS))
    def cancel_destruction(self, key: KeyRef) -> None:
        cancellable = (
            self.states[key] == "pending_destruction"
            and self.node.clock() < self.destroy_at[key]  # KL-4: only during the waiting period
        )
        if self._expect(cancellable, lambda: self.node.admin.cancel_key_destruction(key)):
            self.states[key] = "disabled"

    @rule(key=st.sampled_from(KEYS))
    def destroy(self, key: KeyRef) -> None:
        if self.states[key] == "pending_destruction":
            self.node.clock.advance(max(0.0, self.destroy_at[key] - self.node.clock()))
        evidence = self._expect(
            self.states[key] == "pending_destruction", lambda: self.node.admin.destroy_key(key)
        )
        if evidence is None:
            return
        self.states[key] = "destroyed"
        for message in self.all_messages:
            if key in message.keys:
                message.shredded = True

    @rule(key=st.sampled_from(KEYS))
    def create_after_destruction(self, key: KeyRef) -> None:
        """KL-11: a new key for new content; what the old one protected stays destroyed."""
        if self.states[key] != "destroyed":
            return
        self.node.admin.create_key(key)
        self.states[key] = "enabled"

    # -- revocation ------------------------------------------------------------------------------

    @rule(
        target=rules,
        key=st.sampled_from(KEYS),
        kind=st.sampled_from(["whole", "scope", "service", "window"]),
        scope=st.sampled_from(SCOPES),
        service_id=st.sampled_from(sorted(SERVICES)),
        offset=st.integers(min_value=-2, max_value=2),
        hours=st.integers(min_value=1, max_value=30),
    )
    def revoke(
        self, key: KeyRef, kind: str, scope: str, service_id: str, offset: int, hours: int
    ) -> str:
        since = until = None
        if kind == "window":
            since = self.node.clock() // HOUR * HOUR + offset * HOUR
            until = since + hours * HOUR
        org = key.org or "acme"
        rule = RevocationRule(
            org=org,
            key=key,
            scope=scope if kind == "scope" else None,
            service_id=service_id if kind == "service" else None,
            since=since,
            until=until,
        )
        stored = self.node.admin.revoke(rule)
        self.model_rules[stored.rule_id] = ModelRule(
            stored.rule_id, key, rule.service_id, rule.scope, since, until
        )
        return stored.rule_id

    @rule(rule_id=consumes(rules))
    def lift(self, rule_id: str) -> None:
        self.node.admin.lift(rule_id)
        del self.model_rules[rule_id]

    # -- time ------------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 120, 250, 301, HOUR, DAY]))
    def time_passes(self, seconds: float) -> None:
        self.node.clock.advance(seconds)

    @rule()
    def expire_cache(self) -> None:
        self.node.admin.evict()

    @invariant()
    def the_registry_agrees_with_the_model(self) -> None:
        if not hasattr(self, "node"):
            return
        for key in KEYS:
            assert self.node.admin.key(key).state.value == self.states[key]

    def teardown(self) -> None:
        if hasattr(self, "node"):  # a last sweep: every message behaves as the model says
            for message in self.all_messages:
                self._check_open(message)


TestLifecycle = LifecycleMachine.TestCase
TestLifecycle.settings = settings(
    max_examples=2000,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
pytestmark = pytest.mark.slow
