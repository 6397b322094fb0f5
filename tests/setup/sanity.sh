#!/usr/bin/env bash
# Runs every ansible-test sanity test for one ansible-core version (the one installed in VENV).
#   tests/setup/sanity.sh VENV [ansible-test sanity options...]
# ansible-test wants the collection at .../ansible_collections/oci/images/, so this copies the
# files git knows about (tracked plus untracked-but-not-ignored) into a tree of its own, and runs
# there. Multi-version tests (compile, import) use every pyenv interpreter 3.9-3.13 that exists.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=$(cd "${1:?usage: sanity.sh VENV [ansible-test options]}" && pwd)
shift

core_version=$("$venv/bin/python" -c 'import ansible.release; print(ansible.release.__version__)')
core_minor=$(cut -d. -f1,2 <<<"$core_version")

# Ignore files exist for every tested core version and stay empty: a sanity error is fixed, not ignored.
ignore_file="$repo/tests/sanity/ignore-$core_minor.txt"
if [[ ! -f "$ignore_file" ]]; then
    echo "missing $ignore_file: create it empty for ansible-core $core_minor" >&2
    exit 1
fi
if [[ -s "$ignore_file" ]]; then
    echo "$ignore_file is not empty: fix the sanity errors it lists instead of ignoring them" >&2
    exit 1
fi

# ansible-test bootstraps pip in its venvs with a get-pip script from a host that is unreachable
# here; it uses a cached copy first, so put the stand-in where it looks (the name carries the pip
# version that this ansible-test pins).
requirements_py=$(echo "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py)
pip_version=$(grep -oE "pip='[0-9.]+'" "$requirements_py" | head -n1 | cut -d"'" -f2)
if [[ -z "$pip_version" ]]; then
    echo "cannot find the pip version ansible-test pins in $requirements_py" >&2
    exit 1
fi
cache_dir="$HOME/.ansible/test/cache"
mkdir -p "$cache_dir"
install -m 0644 "$repo/tests/setup/get_pip_standin.py" "$cache_dir/get_pip_${pip_version//./_}.py"

build_dir="${OCI_IMAGES_BUILD_DIR:-$HOME/.cache/oci-images/$(printf '%s' "$repo" | sha256sum | cut -c1-12)}"
collections_root="$build_dir/sanity-$core_minor"
tree="$collections_root/ansible_collections/oci/images"
rm -rf "$collections_root"
mkdir -p "$tree"
# -c also lists tracked files deleted in the work tree; copy only what exists.
(cd "$repo" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' path; do
    [[ -e "$path" || -L "$path" ]] && printf '%s\0' "$path"
done | tar --null -T - -cf -) | tar -xf - -C "$tree"

# ansible-test lists a collection's files through git when the tree is a repository; a private
# repository holding exactly the copied files keeps that list identical to what was copied.
git -C "$tree" init -q
git -C "$tree" add -A
git -C "$tree" -c user.name=sanity -c user.email=sanity@localhost.invalid commit -q -m sanity --no-gpg-sign

# Real interpreters, not pyenv shims: ansible-test resolves pythonX.Y on PATH for each version.
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
python_path=""
found=()
for minor in 9 10 11 12 13; do
    for bin_dir in "$pyenv_root"/versions/3."$minor".*/bin; do
        if [[ -x "$bin_dir/python3.$minor" ]]; then
            python_path="$python_path:$bin_dir"
            found+=("3.$minor")
            break
        fi
    done
done
export PATH="$venv/bin$python_path:$PATH"

echo "ansible-core $core_version (controller $("$venv/bin/python" -V 2>&1)), pip stand-in $pip_version"
echo "pyenv interpreters for compile/import: ${found[*]:-none (only those on PATH)}"
echo "collection tree: $tree"
cd "$tree"
# --local: the controller is this venv; ansible-test still builds its own venv per sanity tool.
# The machine's pip configuration names local index directories that may not exist; pip warns
# about each one per package, which buries the sanity results.
"$venv/bin/ansible-test" sanity --color no --local "$@" 2>&1 |
    sed -u -e "/is ignored: it is neither a file nor a directory/d"
