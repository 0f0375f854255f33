"""Policy engine: which keys protect an asset, and why. Pure core."""
