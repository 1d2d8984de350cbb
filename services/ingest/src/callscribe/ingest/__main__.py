"""`python -m callscribe.ingest` runs the upload API; `... worker` the pipeline worker; `... lifecycle` the storage
lifecycle (tiering, integrity audit, retention expiry, erasure); `... keys` the KEK commands (init, rotate)."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    from callscribe.ingest.pipeline.main import main
elif len(sys.argv) > 1 and sys.argv[1] == "lifecycle":
    from callscribe.ingest.lifecycle.main import main
elif len(sys.argv) > 1 and sys.argv[1] == "keys":
    from callscribe.ingest.keyadmin import main as keys_main

    sys.exit(keys_main(sys.argv[2:]))
else:
    from callscribe.ingest.upload.main import main

sys.exit(main())
