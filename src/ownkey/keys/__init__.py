"""Key hierarchy: scope keys, cache, lifecycle, revocation, rotation. Pure core."""
