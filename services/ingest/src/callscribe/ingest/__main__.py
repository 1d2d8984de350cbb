import sys

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    from callscribe.ingest.worker import main
else:
    from callscribe.ingest.main import main

sys.exit(main())
