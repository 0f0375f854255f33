"""A small mutational fuzzer and the fuzz targets of issue 12 (campaign 1).

Each target takes bytes and either returns the name of its outcome (``"ok"`` or the documented
error it answered with) or raises: any exception is a crash. The same targets run under
atheris (``tests/campaigns/fuzz_atheris.py``, coverage-guided, ``make soak``) and under the
deterministic mutator below (seeded, no dependency, a short run in ``make test``): byte flips,
interesting bytes, insertions and deletions, splices of two seeds and dictionary tokens that
have broken parsers before (lone surrogates, NUL, NaN, huge numbers, nesting thousands deep).
"""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Target = Callable[[bytes], str]

DICTIONARY: tuple[bytes, ...] = (
    b"\\ud800", b"\\udfff", b"\\u0000", b"\x00", b"\xff", b"\xed\xa0\x80", b"NaN", b"Infinity",
    b"-Infinity", b"1e400", b"-1", b"-0", b"0", b"99999999999999999999", b"1796149629000",
    b"null", b"true", b"false", b"[]", b"{}", b'""', b'"0024"', b'"0008"', b'"chat"',
    b"bytes=", b"bytes=0-", b"bytes=-0", b"bytes=5-1", b"bytes=0-0,1-2", b"\xfe\xff", b'"a"' * 64,
    b"[" * 3000, b'{"a":' * 1000,  # nested past the JSON reader's recursion limit
)  # fmt: skip
_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, ord('"'), ord("\\"), ord("{"), ord("}"), ord("["),
                ord("]"), ord(","), ord(":"), ord("-"), ord("e"))  # fmt: skip


class Mutator:
    """Seeded mutations of a seed corpus (reproducible: the same seed, the same inputs)."""

    def __init__(self, seeds: Sequence[bytes], seed: int = 0) -> None:
        self._seeds = [bytes(s) for s in seeds] or [b""]
        self._rng = random.Random(seed)

    def __call__(self) -> bytes:
        rng = self._rng
        data = bytearray(rng.choice(self._seeds))
        for _ in range(rng.randint(1, 4)):
            choice = rng.randrange(7)
            where = rng.randint(0, len(data))
            if choice == 0 and data:
                spot = rng.randrange(len(data))
                data[spot] ^= 1 << rng.randrange(8)
            elif choice == 1 and data:
                data[rng.randrange(len(data))] = rng.choice(_INTERESTING)
            elif choice == 2:
                data[where:where] = rng.randbytes(rng.randint(1, 8))
            elif choice == 3 and data:
                end = min(len(data), where + rng.randint(1, 16))
                del data[where:end]
            elif choice == 4:
                data[where:where] = rng.choice(DICTIONARY)
            elif choice == 5:
                other = rng.choice(self._seeds)
                cut = rng.randint(0, len(other))
                data = data[:where] + other[cut:]
            elif data:
                end = min(len(data), where + rng.randint(1, 32))
                data[where:where] = data[where:end]
        return bytes(data)


@dataclass
class Report:
    """What a run did: executions, outcomes by name, and the crashes (input, error)."""

    target: str
    executions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: list[tuple[bytes, str]] = field(default_factory=list)

    def line(self) -> str:
        top = ", ".join(f"{name} {count}" for name, count in self.outcomes.most_common(6))
        return (
            f"fuzz {self.target}: {self.executions} executions, {len(self.crashes)} crashes; {top}"
        )


def run(
    name: str, target: Target, seeds: Sequence[bytes], executions: int, seed: int = 0
) -> Report:
    """``executions`` inputs (the seeds first, then mutations) through ``target``."""
    report = Report(name)
    mutate = Mutator(seeds, seed)
    for number in range(executions):
        data = seeds[number] if number < len(seeds) else mutate()
        try:
            outcome = target(data)
        except Exception as exc:  # every escape is a crash, with its input kept
            report.crashes.append((data[:300], f"{type(exc).__name__}: {exc}"[:300]))
            outcome = "CRASH"
        report.executions += 1
        report.outcomes[outcome] += 1
    return report


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def as_json(data: bytes) -> object:
    """Bytes as a JSON value when they are one, else the bytes as text (the parsers' input)."""
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "surrogateescape")


#: JSON values that have broken handlers before, for any field of a structured body.
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**63, 2**64, -(2**63) - 1, 1e308, -0.0, 0.5, "", " ", "\ud800",
    "\udfff", "\x00", "a\u202eb", "a" * 5000, [], {}, ["x"], {"a": 1}, [[[[[]]]]], "acme",
    "globex", "0008", "0024", "9999", "chat", "user", "inf", "NaN", "1796149629000",
    "2026-13-45T99:00:00Z", "ann@acme.test", "not-base64!", "AAAA", "====",
)  # fmt: skip


def mutate_json(value: Any, rng: random.Random) -> Any:
    """``value`` with one node changed: a leaf or a whole subtree replaced by an odd value, a key
    removed or added, a list emptied or its item repeated. Structure-aware, so that the change
    gets past the JSON reader to the code behind it."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.25:
            out[rng.choice(("extra", "\ud800", "", key.upper()))] = rng.choice(ODD_VALUES)
        else:
            out[key] = mutate_json(value[key], rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        out = list(value)
        spot = rng.randrange(len(out))
        roll = rng.random()
        if roll < 0.15:
            return []
        if roll < 0.3:
            return out + [out[spot]] * rng.choice((1, 2, 10_001))
        out[spot] = mutate_json(out[spot], rng)
        return out
    return rng.choice(ODD_VALUES)
