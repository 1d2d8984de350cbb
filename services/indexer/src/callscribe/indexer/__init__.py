"""callscribe indexer: transcripts into search (ITN, punctuation, analytics, Elasticsearch)."""
