"""Run the copy engine once as its own process, the way skopeo runs: ``copy_cli.py SRC DEST`` or ``copy_cli.py --images FILE``.

The benchmark times this process against a skopeo process on the same work, so both pay
their own start-up; Ansible's own overhead is measured separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from collection_tree import ensure_collection_tree, subprocess_runner  # noqa: E402

sys.path.insert(0, ensure_collection_tree(os.path.dirname(os.path.dirname(HERE))))

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible_collections.oci.images.plugins.module_utils._commands import set_command_runner  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions, copy_image  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._reference import parse_reference  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", nargs="?")
    parser.add_argument("dest", nargs="?")
    parser.add_argument("--images", help="JSON file with a list of {src, dest}")
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--parallel-images", type=int, default=4)
    args = parser.parse_args()
    set_command_runner(subprocess_runner)
    pairs = [{"src": args.src, "dest": args.dest}]
    if args.images:
        with open(args.images) as handle:
            pairs = json.load(handle)
    side = ConnectionOptions(validate_certs=False)
    options = CopyOptions(parallel=args.parallel)

    def one(pair):
        return copy_image(parse_reference(pair["src"]), parse_reference(pair["dest"]), side, side, options)

    with ThreadPoolExecutor(max_workers=min(args.parallel_images, len(pairs))) as pool:
        results = list(pool.map(one, pairs))
    json.dump({"changed": sum(1 for r in results if r["changed"]), "bytes": sum(r["bytes_copied"] for r in results)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
