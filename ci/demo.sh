#!/usr/bin/env bash
# The README's main command (`npm start`): provision, then the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/provision.sh
exec ./bin/dicomctl demo "$@"
