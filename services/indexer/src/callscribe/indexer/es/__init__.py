"""The indexer's Elasticsearch adapter, one module per responsibility.

- `client`: the client (auth, TLS, timeouts), the REST API version it asks for, cluster errors -> kit errors;
- `schema`: start (version, ILM, templates), per-tenant lifecycle policies and write aliases, index names;
- `writer`: a call's documents in one bulk request, bulk retries and backoff;
- `reader`: GetCall, FindIndexed, Search, and the search_after pager every read of all matches goes through;
- `export`: ExportCalls.

`callscribe.indexer.store.EsStore` puts them together for the servicer.
"""
