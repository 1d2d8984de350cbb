import sys

from callscribe.indexer.main import main

sys.exit(main())
