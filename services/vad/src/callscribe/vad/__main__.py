import sys

from callscribe.vad.main import main

if __name__ == "__main__":  # spawned worker processes import this module too: only the parent serves
    sys.exit(main())
