"""REST interface (FastAPI), thin over ownkey.service."""
