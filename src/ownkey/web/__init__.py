"""Admin web pages, thin over ownkey.service."""
