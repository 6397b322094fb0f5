#!/usr/bin/env bash
# The main job (`make demo`): install what the demo needs, then demo/run.py starts two throwaway
# registries, pushes a sample repository, runs demo/playbook.yml and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what the demo uses: the registry, skopeo (it seeds the source registry) and a venv-capable
# Python; the full test set (podman, docker.io, ...) is `make deps`.
bash tests/setup/system.sh docker-registry skopeo python3-venv
bash tests/setup/venv.sh
exec .venv/bin/python demo/run.py "$@"
