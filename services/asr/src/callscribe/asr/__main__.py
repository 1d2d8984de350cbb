import sys

from callscribe.asr.main import main

if __name__ == "__main__":
    sys.exit(main())
