"""`python -m callscribe.ingest` runs the upload API; `python -m callscribe.ingest worker` the pipeline worker."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    from callscribe.ingest.pipeline.main import main
else:
    from callscribe.ingest.upload.main import main

sys.exit(main())
