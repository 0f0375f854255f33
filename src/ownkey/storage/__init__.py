"""Adapters to databases and blob stores (SQLAlchemy, Alembic, directory, S3)."""
