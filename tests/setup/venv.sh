#!/usr/bin/env bash
# Creates or updates a virtual environment from a pinned requirements file.
#   tests/setup/venv.sh VENV_DIR REQUIREMENTS_FILE X.Y [X.Y...]
# The X.Y list is the Python versions the venv may use, most wanted first; each is looked for as
# pyenv's real interpreter, then as pythonX.Y on PATH, and finally python3 is taken if its version
# is in the list. A stamp file holds the hash of the requirements file and the interpreter, so a
# run with nothing changed costs no pip call. An existing venv on an allowed Python is updated in
# place, never removed (others may be using it). With no arguments: the main test venv, .venv.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    set -- "$repo/.venv" "$repo/tests/requirements.txt" 3.11 3.12 3.13
fi

venv=${1:?usage: venv.sh VENV_DIR REQUIREMENTS_FILE X.Y [X.Y...]}
requirements=${2:?usage: venv.sh VENV_DIR REQUIREMENTS_FILE X.Y [X.Y...]}
shift 2
allowed=("$@")
if [[ ${#allowed[@]} -eq 0 ]]; then
    echo "venv.sh: name at least one Python version (X.Y)" >&2
    exit 2
fi

python_minor() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

is_allowed() {
    local version=$1 wanted
    for wanted in "${allowed[@]}"; do
        [[ "$version" == "$wanted" ]] && return 0
    done
    return 1
}

find_python() {
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" version candidate
    for version in "${allowed[@]}"; do
        for candidate in "$pyenv_root"/versions/"$version".*/bin/python"$version" "$(command -v "python$version" || true)"; do
            if [[ -n "$candidate" && -x "$candidate" && "$(python_minor "$candidate")" == "$version" ]]; then
                echo "$candidate"
                return 0
            fi
        done
    done
    candidate=$(command -v python3 || true)
    if [[ -n "$candidate" ]] && is_allowed "$(python_minor "$candidate")"; then
        echo "$candidate"
        return 0
    fi
    return 1
}

current=""
if [[ -x "$venv/bin/python" ]]; then
    current=$(python_minor "$venv/bin/python" || true)
fi

if [[ -z "$current" ]] || ! is_allowed "$current"; then
    if ! python=$(find_python); then
        echo "no Python ${allowed[*]} found for $venv (looked in pyenv, PATH, python3); install one of them" >&2
        exit 1
    fi
    if [[ -e "$venv" ]]; then
        echo "$venv: Python '${current:-none}' is not one of ${allowed[*]}; recreating it"
        rm -rf "$venv"
    fi
    echo "$venv: creating with $python"
    "$python" -m venv "$venv"
fi

stamp="$venv/.requirements.sha256"
want=$( (sha256sum <"$requirements"; "$venv/bin/python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv: up to date ($(python_minor "$venv/bin/python"), $requirements)"
    exit 0
fi

echo "$venv: installing $requirements"
rm -f "$stamp"
# The machine's pip configuration names local index directories that may not exist; pip warns
# about each one per package, which buries real messages.
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" 2>&1 |
    sed -e "/is ignored: it is neither a file nor a directory/d"
echo "$want" >"$stamp"
