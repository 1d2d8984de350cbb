import sys

from callscribe.ingest.main import main

sys.exit(main())
