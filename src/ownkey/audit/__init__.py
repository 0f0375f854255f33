"""Audit port and hash chain. Pure core."""
