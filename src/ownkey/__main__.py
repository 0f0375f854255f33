"""``python -m ownkey`` is the ``ownkey`` command."""

from ownkey.cli import main

main()
