"""The package's public face: the error tree and the console script."""

from __future__ import annotations

import subprocess
import sys

import ownkey.errors as errors


def test_every_public_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.OwnkeyError), name


def test_invalid_ciphertext_says_nothing_specific() -> None:
    assert str(errors.InvalidCiphertext()) == "invalid ciphertext"


def test_console_script_shows_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ownkey", "--help"], capture_output=True, text=True, check=True
    )
    assert "policy" in out.stdout
    assert "demo" in out.stdout
