#!/usr/bin/env bash
# Installs the Debian packages the tests use as real peers (registry, skopeo as oracle, podman,
# docker engine, htpasswd, openssl, gpg for signatures, chromium to render the footprint
# report), shellcheck for ansible-test's shellcheck sanity test, and python3-venv for machines
# whose only Python 3.11 is Debian's.
# Idempotent: apt-get runs only when a package is missing, so repeat runs cost a dpkg query.
# With arguments, only those packages (the demo needs fewer than the tests).
set -euo pipefail

packages=(docker-registry skopeo podman docker.io apache2-utils openssl gnupg chromium shellcheck python3-venv make git)
if [[ $# -gt 0 ]]; then
    packages=("$@")
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$package")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "system packages: all present"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "system packages missing: ${missing[*]}; run as root or install them: apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "system packages: installing ${missing[*]}"
# The same install the peers were tried with (recommends included: podman and docker.io use them).
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
