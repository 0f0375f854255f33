"""Campaign 1 for the customer-run hybrid key service (docs/hybrid.md): every JSON body it takes.

Its tokens are inside its bodies, so a byte-level mutator would stop at the signature check.
This fuzzer knows the shape instead: it holds the issuers' signing keys (as the tests of
``tests/hybrid`` do), so it can sign *mutated claims* (a ``resource_name`` that is a list, an
``exp`` that is a string, an email with a lone surrogate) as well as mangle the body's own fields
and the token strings. Asserted: 0 answers of 500, every answer a JSON ``{"error": {code,
message, reason}}`` with a status the service documents, and no key handed out for a request
whose grant was changed to another resource or role it may not use.

make test: a few hundred requests; make soak: 100,000.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from ownkey.hybrid import build_app
from tests.campaigns import _fuzz
from tests.campaigns.conftest import size
from tests.hybrid.test_service_unit import IDP, PLATFORM, _service

#: What the key service answers (docs/hybrid.md): success, bad request, bad token, refused,
#: unknown, key manager or audit log down.
DOCUMENTED = frozenset({200, 400, 401, 403, 404, 503})

#: The shared odd values (``_fuzz.ODD_VALUES``) and the key service's own words, for any field
#: or claim.
ODD_VALUES: tuple[Any, ...] = (
    *_fuzz.ODD_VALUES, "c-2", "reader", "writer", "owner", "1001", "al@acme.example",
    "AL@ACME.EXAMPLE", "kacls", "other-audience", base64.b64encode(bytes(64)).decode(),
)  # fmt: skip
CLAIMS = ("org", "resource_name", "role", "email", "aud", "iat", "exp", "iss", "nbf", "service")
FIELDS = ("key", "wrapped_key", "resource_name", "service", "reason", "authentication",
          "authorization", "message", "author", "extra")  # fmt: skip
#: The message binding every wrap and unwrap names (issue 23: id and author are bound).
BINDING = {"message": "m-1", "author": "al@acme.example"}
OPERATIONS = ("wrap", "unwrap", "rewrap", "digest", "privilegedunwrap")


def _grant(
    keys: dict[str, Any], rng: random.Random, *, mutate: bool = True
) -> tuple[dict[str, Any], bool]:
    """A body whose tokens are signed by the real issuers, maybe over mutated claims; and whether
    its authorization still grants writer on c-1 of acme unchanged (the only grant that may
    wrap and unwrap)."""
    now = int(time.time())
    base: dict[str, Any] = {"aud": "kacls", "iat": now, "exp": now + 60, "email": "al@acme.example"}
    authn = {**base, "iss": IDP}
    authz = {**base, "iss": PLATFORM, "org": "acme", "resource_name": "c-1", "role": "writer"}
    intact = True
    for _ in range(rng.randint(0, 2) if mutate else 0):
        claims = authn if rng.random() < 0.3 else authz
        name = rng.choice(CLAIMS)
        if rng.random() < 0.2:
            claims.pop(name, None)
        else:
            claims[name] = rng.choice(ODD_VALUES)
        intact = False
    try:
        body = {
            "authentication": keys[IDP].sign(authn),
            "authorization": keys[PLATFORM].sign(authz),
        }
    except (TypeError, ValueError):  # a claim the signer itself cannot encode: send none
        body = {"authentication": "x", "authorization": "y"}
        intact = False
    return body, intact


def _mangle(body: dict[str, Any], rng: random.Random) -> bool:
    """Change one field of the body (a token string cut or flipped, a value replaced); False."""
    name = rng.choice(FIELDS)
    value = body.get(name)
    if isinstance(value, str) and value and rng.random() < 0.5:
        spot = rng.randrange(len(value))
        body[name] = value[:spot] + rng.choice(("", "A", ".", "\ud800", value[spot:][:3]))
    elif rng.random() < 0.15:
        body.pop(name, None)
    else:
        body[name] = rng.choice(ODD_VALUES)
    return False


def test_fuzz_the_hybrid_key_service(tmp_path: Path) -> None:
    service, keys, _, http = _service(tmp_path)
    rng = random.Random(12)
    executions = size(300, 100_000)
    statuses: Counter[int] = Counter()
    leaked: list[tuple[str, dict[str, Any]]] = []
    with TestClient(build_app(service), raise_server_exceptions=False) as client:
        body, _ = _grant(keys, rng, mutate=False)
        wrapped = client.post(
            "/wrap", json={**body, **BINDING, "key": base64.b64encode(bytes(32)).decode()}
        ).json()["wrapped_key"]
        for _ in range(executions):
            operation = rng.choice(OPERATIONS)
            body, intact = _grant(keys, rng)
            body.update(key=base64.b64encode(bytes(32)).decode(), wrapped_key=wrapped, **BINDING)
            if operation == "privilegedunwrap":
                body["resource_name"] = "c-1"
            for _ in range(rng.randint(0, 2)):
                intact = _mangle(body, rng)
            content = json.dumps(body, ensure_ascii=True).encode()  # a lone surrogate as \ud800
            answer = client.post(
                f"/{operation}", content=content, headers={"Content-Type": "application/json"}
            )
            statuses[answer.status_code] += 1
            assert answer.status_code in DOCUMENTED, (operation, body, answer.text)
            if answer.status_code == 200:
                if not intact and operation in ("unwrap", "privilegedunwrap"):
                    leaked.append((operation, body))
                continue
            error = answer.json()["error"]
            assert set(error) == {"code", "message", "reason"}, error
            assert error["code"] == answer.status_code
            assert "\n" not in error["message"]
    http.close()
    print(f"fuzz hybrid-key-service: {executions} requests, 0 500s; by status {dict(statuses)}")
    assert sum(statuses.values()) == executions
    assert statuses[500] == 0
    # An unwrap whose grant was changed may still succeed when the change was harmless (a
    # duplicate of the same value, an extra field); never when it named another resource.
    for operation, body in leaked:
        assert _same_resource(body), (operation, body)


def _same_resource(body: dict[str, Any]) -> bool:
    """Whether the mutated body still names resource c-1 of acme for al (a harmless change)."""
    import jwt

    try:
        claims = jwt.decode(body["authorization"], options={"verify_signature": False})
    except (jwt.PyJWTError, KeyError, TypeError):
        return False
    return bool(claims.get("resource_name") == "c-1" and claims.get("org") == "acme")
