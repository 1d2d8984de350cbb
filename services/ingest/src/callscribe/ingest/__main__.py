"""`python -m callscribe.ingest` runs the upload API; `... worker` the pipeline worker; `... lifecycle` the storage
lifecycle (tiering, integrity audit, retention expiry)."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    from callscribe.ingest.pipeline.main import main
elif len(sys.argv) > 1 and sys.argv[1] == "lifecycle":
    from callscribe.ingest.lifecycle.main import main
else:
    from callscribe.ingest.upload.main import main

sys.exit(main())
