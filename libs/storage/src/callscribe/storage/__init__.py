"""callscribe's storage layer: the one place that talks to S3 (see libs/storage/README.md)."""
