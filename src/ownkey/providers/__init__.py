"""Adapters to key managers (local, PKCS#11, KMIP, AWS KMS)."""
