#!/usr/bin/env bash
# Install sigbridge into .venv, then run the daemon and the reference client on the bundled
# EURUSD H1 export. Extra arguments go to `sigbridge demo` (see `sigbridge demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sigbridge demo "$@"
