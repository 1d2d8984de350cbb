"""`python -m callscribe.ingest keys init|rotate|rewrap`: the operator's commands for the key-encryption key.

- `init --kek-file PATH`: a new keyring file (mode 0600) with one random 256-bit key; refuses to overwrite one.
- `rotate`: a new primary KEK version (in the file, or in OpenBao/Vault Transit), then every wrapped data key is
  re-wrapped with it in place. The locked audio is not touched: the data keys do not change.
- `rewrap`: re-wrap every data key with the primary version (after a rotation done elsewhere).
Reads the ingest's settings (INGEST_KEK_*, INGEST_S3_*, INGEST_KEYS_BUCKET) for `rotate` and `rewrap`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callscribe.ingest.settings import IngestSettings
from callscribe.kit.errors import DomainError
from callscribe.kit.settings import load_settings
from callscribe.storage.client import connect
from callscribe.storage.keys import FileKek
from callscribe.storage.recordkeys import RecordingKeys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m callscribe.ingest keys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="create a KEK keyring file")
    init.add_argument("--kek-file", type=Path, required=True, metavar="PATH")
    commands.add_parser("rotate", help="new primary KEK version, then re-wrap every data key")
    commands.add_parser("rewrap", help="re-wrap every data key with the primary KEK version")
    args = parser.parse_args(argv)
    if args.command == "init":
        try:
            FileKek.create(args.kek_file)
        except (FileExistsError, OSError) as exc:
            sys.stderr.write(f"keys init: {exc}" + "\n")
            return 1
        sys.stdout.write(f"created {args.kek_file} (mode 0600): set INGEST_KEK_FILE, VAD_KEK_FILE, ASR_KEK_FILE\n")
        return 0
    settings = load_settings(IngestSettings, "callscribe-ingest keys")
    if settings is None:
        return 2
    kek = settings.kek()
    if kek is None:
        sys.stderr.write("keys: no KEK configured: set INGEST_KEK_FILE or INGEST_KEK_TRANSIT_URL" + "\n")
        return 2
    keys = RecordingKeys(connect(settings.hot_endpoint, 4), settings.keys_bucket, kek)
    try:
        keys.check()
        if args.command == "rotate":
            version = kek.rotate()
            sys.stdout.write(f"KEK {kek.name}: version {version} is now the primary one" + "\n")
        done, total = keys.rewrap_all()
    except DomainError as exc:
        sys.stderr.write(f"keys {args.command}: {exc.message}" + "\n")
        return 1
    sys.stdout.write(f"re-wrapped {done} of {total} data key(s); the locked audio was not touched" + "\n")
    return 0
