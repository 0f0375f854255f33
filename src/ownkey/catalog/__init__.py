"""Catalog of protected asset types (the seed as data). Pure core."""
