"""Coverage-guided runs of the campaign-1 targets under atheris (``make soak``).

    python -m tests.campaigns.fuzz_atheris TARGET -atheris_runs=1000000

TARGET is one of ``tests.campaigns.test_fuzz.PURE`` (the API target needs a server: it runs
under the built-in mutator). atheris is optional (``pip install atheris``, see the ``fuzz``
extra); without it this exits 2 and ``make soak`` uses the deterministic mutator instead. A
crash makes atheris print the input and exit non-zero.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    with atheris.instrument_imports():
        from tests.campaigns.test_fuzz import PURE
    if len(argv) < 2 or argv[1] not in PURE:
        print(f"usage: fuzz_atheris TARGET [atheris options]; TARGET in {sorted(PURE)}")
        return 2
    target, seeds = PURE[argv[1]]

    def one(data: bytes) -> None:
        target(data)

    options = argv[2:]
    with tempfile.TemporaryDirectory(prefix=f"ownkey-fuzz-{argv[1]}-") as corpus:
        # Start from the target's valid seeds, as the seeded mutator does: from an empty corpus
        # libFuzzer never gets past an envelope's magic or the JSON reader (coverage stayed at
        # about 20 edges), so a million runs tested almost nothing.
        for number, seed in enumerate(seeds):
            Path(corpus, f"seed-{number}").write_bytes(seed)
        atheris.Setup([argv[0], *options, corpus], one)
        atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
