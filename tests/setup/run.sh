#!/usr/bin/env bash
# Runs test stages in order and prints how long each took:
#   tests/setup/run.sh STAGE [STAGE...]
# Setup stages (system, venvs) stop the run when they fail; check stages (lint, changelog,
# sanity-*, units) all run and the run fails at the end if any of them failed, so one CI run
# reports every problem. Every process started by this run carries OCI_IMAGES_TEST_RUN in its
# environment; on exit, servers still carrying it (a fixture that failed to stop them) are killed,
# nothing else is, and the run fails.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

VENV=.venv
NEWEST_VENV=.venv-core-newest
SERVER_NAMES=(docker-registry dockerd containerd containerd-shim podman conmon)

OCI_IMAGES_TEST_RUN="$$-$(date +%s%N)"
export OCI_IMAGES_TEST_RUN

stop_stray_servers() {
    local environ pid name found=()
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        [[ "$pid" == "$$" ]] && continue
        # Reading another process's environment can fail (gone, or not ours): skip it.
        tr '\0' '\n' 2>/dev/null <"$environ" | grep -qxF "OCI_IMAGES_TEST_RUN=$OCI_IMAGES_TEST_RUN" || continue
        name=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        for server in "${SERVER_NAMES[@]}"; do
            if [[ "$name" == "$server" ]]; then
                found+=("$pid:$name")
                kill "$pid" 2>/dev/null || true
            fi
        done
    done
    [[ ${#found[@]} -eq 0 ]] && return 0
    echo "ERROR: this run left servers running (a fixture did not stop them); stopped: ${found[*]}" >&2
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=0
        for entry in "${found[@]}"; do
            [[ -d "/proc/${entry%%:*}" ]] && alive=1
        done
        [[ $alive -eq 0 ]] && return 1
        sleep 0.5
    done
    for entry in "${found[@]}"; do
        kill -KILL "${entry%%:*}" 2>/dev/null || true
    done
    return 1
}

stage_names=()
stage_results=()
print_summary() {
    local i
    [[ ${#stage_names[@]} -eq 0 ]] && return 0
    echo
    echo "== summary"
    for i in "${!stage_names[@]}"; do
        printf '  %-16s %s\n' "${stage_names[$i]}" "${stage_results[$i]}"
    done
}

on_exit() {
    local status=$?
    # A server left running is a fixture bug: it fails the run even when every test passed.
    if ! stop_stray_servers && [[ $status -eq 0 ]]; then
        status=1
    fi
    print_summary
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

existing_dirs() {
    local dir
    for dir in "$@"; do
        [[ -d "$dir" ]] && printf '%s\n' "$dir"
    done
    return 0
}

stage_system() { tests/setup/system.sh; }

stage_venvs() {
    tests/setup/venv.sh "$VENV" tests/requirements.txt 3.11 3.12 3.13
    tests/setup/venv.sh "$NEWEST_VENV" tests/requirements-core-newest.txt 3.13 3.12
}

stage_lint() {
    local targets
    local status=0
    mapfile -t targets < <(existing_dirs plugins tests demo)
    # Every check runs, so one run lists every lint and format problem.
    "$VENV/bin/ruff" check --output-format concise "${targets[@]}" || status=1
    "$VENV/bin/ruff" format --check "${targets[@]}" || status=1
    stage_ansible-lint || status=1
    return $status
}

# ansible-lint (production profile, .ansible-lint) over the collection: roles/, the demo and example
# playbooks, galaxy.yml and meta/. Offline: the collection under test is found through
# ANSIBLE_COLLECTIONS_PATH, nothing is installed from Galaxy.
stage_ansible-lint() {
    local tools=.venv-tools root
    tests/setup/venv.sh "$tools" tests/requirements-tools.txt 3.11 3.12 3.13
    root=$("$tools/bin/python" -c 'import sys; sys.path.insert(0, "tests/lib"); from collection_tree import ensure_collection_tree; print(ensure_collection_tree("."))')
    ANSIBLE_COLLECTIONS_PATH="$root" PATH="$repo/$tools/bin:$PATH" "$tools/bin/ansible-lint" --nocolor
}

stage_changelog-lint() { "$VENV/bin/antsibull-changelog" lint; }

stage_sanity-2.18() { tests/setup/sanity.sh "$VENV"; }

stage_sanity-newest() { tests/setup/sanity.sh "$NEWEST_VENV"; }

stage_units() {
    local targets
    # One pytest run over every test directory: unit tests always exist, so "no tests collected"
    # (exit 5) can only mean something is broken and fails the stage like any other error.
    mapfile -t targets < <(existing_dirs tests/unit tests/functional)
    # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words by design
    "$VENV/bin/python" -m pytest "${targets[@]}" ${PYTEST_ARGS:-}
}

# Renders every plugin's and role's documentation into docs/modules/ (antsibull-docs);
# tests/functional/test_docs.py fails when the committed rendering differs from a fresh one.
stage_docs() { tests/setup/render_docs.sh docs/modules; }

stage_changelog-release() {
    # antsibull-changelog asks ansible-doc (found on PATH) for the new plugins of the release.
    # shellcheck disable=SC2086  # CHANGELOG_ARGS is a list of words by design
    PATH="$repo/$VENV/bin:$PATH" "$VENV/bin/antsibull-changelog" release ${CHANGELOG_ARGS:-}
}

stage_bench() {
    if [[ ! -f tests/bench/run.py ]]; then
        echo "no benchmarks (tests/bench/run.py does not exist)"
        return 0
    fi
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of words by design
    "$VENV/bin/python" tests/bench/run.py ${BENCH_ARGS:-}
    # Compression conversion, one 256 MiB layer (COMPRESSION_BENCH_ARGS, e.g. "--size-mib 32 --runs 1" for a quick look).
    # shellcheck disable=SC2086
    "$VENV/bin/python" tests/bench/compression_bench.py ${COMPRESSION_BENCH_ARGS:-}
}

stage_demo() { bash demo/run.sh; }

is_setup_stage() { [[ "$1" == system || "$1" == venvs ]]; }

if [[ $# -eq 0 ]]; then
    echo "usage: run.sh STAGE [STAGE...]; stages: system venvs lint ansible-lint changelog-lint sanity-2.18 sanity-newest units docs changelog-release bench demo" >&2
    exit 2
fi

failed=()
for stage in "$@"; do
    if ! declare -F "stage_$stage" >/dev/null; then
        echo "unknown stage: $stage" >&2
        exit 2
    fi
done
for stage in "$@"; do
    echo
    echo "== $stage"
    start=$SECONDS
    # A subshell outside any `if`, so `set -e` still stops a stage at its first failing command.
    set +e
    (set -e; "stage_$stage")
    status=$?
    set -e
    if [[ $status -eq 0 ]]; then
        result="ok"
    else
        result="FAILED"
        failed+=("$stage")
    fi
    stage_names+=("$stage")
    stage_results+=("$(printf '%-6s %4ds' "$result" $((SECONDS - start)))")
    if [[ "$result" == FAILED ]] && is_setup_stage "$stage"; then
        echo "setup stage $stage failed; not running the rest" >&2
        exit 1
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
