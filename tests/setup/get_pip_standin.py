# Copyright: oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for ansible-test's downloaded get-pip-<ver>.py (its download host is unreachable here).

ansible-test runs this with the pip requirement it wants (``pip==X.Y``) in a venv created without pip:
bootstrap pip from the interpreter's own ensurepip, then let that pip install the wanted version from
the package index the machine is configured for.
"""

from __future__ import annotations

import os
import subprocess
import sys

# get-pip.py understands these; pip install does not, and pip alone is what ansible-test asks for.
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main() -> None:
    """Bootstrap pip with ensurepip, then install the requested pip version."""
    env = dict(os.environ)
    # A PIP_CONFIG_FILE inherited from the caller (often /dev/null, to isolate pip) would hide the machine's
    # index and certificate settings, without which nothing installs here.
    env.pop("PIP_CONFIG_FILE", None)
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, env=env, stdout=subprocess.DEVNULL)
    arguments = [argument for argument in sys.argv[1:] if argument not in GET_PIP_ONLY_OPTIONS]
    subprocess.run([sys.executable, "-m", "pip", "install", *arguments], check=True, env=env)


if __name__ == "__main__":
    main()
