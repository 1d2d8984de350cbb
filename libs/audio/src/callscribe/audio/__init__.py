"""Shared audio input of the callscribe services: S3 object versions verified by SHA-256, decoding to 16 kHz."""
