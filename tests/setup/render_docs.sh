#!/usr/bin/env bash
# Renders the docs of every plugin and role of the collection into DEST_DIR with antsibull-docs:
#   tests/setup/render_docs.sh DEST_DIR
# `make docs` renders into docs/modules/; tests/functional/test_docs.py renders into a temporary
# directory and compares, so the committed rendering can never go stale unnoticed. The output is
# reStructuredText for plain docutils (antsibull-docs' simplified-rst format), one file per plugin
# plus index.rst, with no antsibull-docs version or date in it so the same sources give the same
# bytes. Rendering fails when a plugin's documentation does not parse.
set -euo pipefail

dest=${1:?usage: render_docs.sh DEST_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools="$repo/.venv-tools"

"$repo/tests/setup/venv.sh" "$tools" "$repo/tests/requirements-tools.txt" 3.11 3.12 3.13 >&2
root=$("$tools/bin/python" -c 'import sys; sys.path.insert(0, sys.argv[1]); from collection_tree import ensure_collection_tree; print(ensure_collection_tree(sys.argv[2]))' "$repo/tests/lib" "$repo")

mkdir -p "$dest"
# antsibull-docs asks the ansible-doc it finds on PATH; the tools venv's is the pinned one.
# --cleanup everything: a plugin that was removed loses its page.
ANSIBLE_COLLECTIONS_PATH="$root" PATH="$tools/bin:$PATH" "$tools/bin/antsibull-docs" collection \
    --use-current --squash-hierarchy --output-format simplified-rst \
    --no-add-antsibull-docs-version --no-breadcrumbs --fail-on-error --cleanup everything \
    --dest-dir "$dest" oci.images
