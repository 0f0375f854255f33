"""Protectors wired for tests (fake clock, seeded randomness, a faulty local provider, memory
stores shared between "nodes") and request builders in DESIGN.md's shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ownkey.keys import MemoryKeyRegistry, MemoryRuleStore, MemoryScopeKeyStore
from ownkey.providers import LocalKeyProvider
from ownkey.service import Protector, ProtectorSettings, build_protector
from ownkey.testing.fakes import FailingAuditSink, FakeClock, FaultyProvider, SeededRandom

ANN = "ann@acme.test"  # acme, licensed
AL = "al@acme.test"  # acme, not licensed
BO = "bo@globex.test"  # globex, licensed
CY = "cy@globex.test"  # globex, not licensed
HOUR = 3600.0
DAY = 86_400.0
START = 1_700_000_000.0 - 1_700_000_000.0 % DAY  # midnight UTC, so epochs line up with days


@dataclass
class Node:
    """One Protector and the pieces a test looks at."""

    protector: Protector
    clock: FakeClock
    provider: FaultyProvider
    sink: FailingAuditSink
    store: MemoryScopeKeyStore
    registry: MemoryKeyRegistry
    rules: MemoryRuleStore

    @property
    def admin(self) -> Any:
        return self.protector.admin

    def second_node(self, settings: ProtectorSettings | None = None) -> Node:
        """Another Protector sharing provider, stores and clock (its own cache and audit sink)."""
        return make_node(settings or self.protector.settings, shared=self)


def make_node(
    settings: ProtectorSettings | None = None,
    *,
    shared: Node | None = None,
    seed: int = 5,
    policy: Any = None,
) -> Node:
    settings = settings or ProtectorSettings(auto_create_keys=True)
    if shared is None:
        clock = FakeClock(START)
        random = SeededRandom(seed)
        provider = FaultyProvider(LocalKeyProvider(random=random, clock=clock))
        store, registry, rules = MemoryScopeKeyStore(), MemoryKeyRegistry(), MemoryRuleStore()
    else:
        clock, provider = shared.clock, shared.provider
        random = SeededRandom(seed + 1000)
        store, registry, rules = shared.store, shared.registry, shared.rules
    sink = FailingAuditSink()
    protector = build_protector(
        settings,
        providers={"local": provider},
        scope_keys=store,
        registry=registry,
        rules=rules,
        audit=sink,
        clock=clock,
        random=random,
        sleep=clock.sleep,
        **({"policy": policy} if policy is not None else {}),
    )
    return Node(protector, clock, provider, sink, store, registry, rules)


def org(*services: str, cmk: bool = True, licensed: tuple[str, ...] = (), **flags: bool) -> dict:
    return {"cmk": cmk, "services": list(services), "licensed_users": list(licensed), **flags}


def chat(
    scope: str = "chat-1",
    asset_id: str = "m1",
    *,
    sender: str = ANN,
    acme: tuple[str, ...] = (ANN,),
    globex: tuple[str, ...] = (BO,),
    component: str = "message",
    members: tuple[str, ...] = (ANN, BO),
    **flags: bool,
) -> dict[str, Any]:
    """A Team Chat message between acme and globex (both enabled 0008; licences as given)."""
    return {
        "orgs": {
            "acme": org("0008", licensed=acme, **flags),
            "globex": org("0008", licensed=globex),
        },
        "asset": {
            "service_id": "0008",
            "org": sender.split("@")[1].split(".")[0],
            "owner": sender,
            "owner_kind": "user",
            "container": {
                "kind": "chat",
                "members": [{"user": u, "org": u.split("@")[1].split(".")[0]} for u in members],
            },
            "component": component,
        },
        "scope": scope,
        "asset_id": asset_id,
    }


def single(
    service_id: str,
    component: str,
    *,
    scope: str = "s-1",
    asset_id: str = "a-1",
    services: tuple[str, ...] | None = None,
    cmk: bool = True,
    owner: str | None = ANN,
    owner_kind: str = "user",
    container: str = "none",
    licensed: tuple[str, ...] = (ANN,),
    **asset: Any,
) -> dict[str, Any]:
    """An acme asset outside chat (acme enabled ``service_id`` unless ``services`` says)."""
    return {
        "orgs": {
            "acme": org(
                *(services if services is not None else (service_id,)), cmk=cmk, licensed=licensed
            )
        },
        "asset": {
            "service_id": service_id,
            "org": "acme",
            "owner": owner,
            "owner_kind": owner_kind,
            "container": {"kind": container, "members": []},
            "component": component,
            **asset,
        },
        "scope": scope,
        "asset_id": asset_id,
    }
