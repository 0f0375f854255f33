"""Envelope format v1: seal and open content under a scope key. Pure core."""
