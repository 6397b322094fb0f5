#!/usr/bin/env bash
# The main job: start a throwaway registry, push generated sample images, run the demo playbook, clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup/system.sh
bash tests/setup/venv.sh
exec .venv/bin/python demo/run.py "$@"
