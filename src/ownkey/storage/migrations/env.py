"""Alembic environment: always online, on the connection handed over by ``_migrate.upgrade``."""

from __future__ import annotations

from alembic import context

from ownkey.storage._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only ever run through ownkey.storage
    raise RuntimeError("run ownkey's migrations through ownkey.storage.Database.open()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
