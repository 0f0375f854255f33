"""Application layer: the composition root and the Protector."""
