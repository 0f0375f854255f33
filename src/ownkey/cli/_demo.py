"""``ownkey demo``: the story of ownkey on embedded defaults."""

from __future__ import annotations

from rich.console import Console


def demo() -> None:
    """Seal and open content with a throwaway key, narrated."""
    Console().print("[bold]ownkey demo[/bold]: nothing here yet")
