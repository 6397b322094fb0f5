"""Run the batch engine once as its own process, the way skopeo runs: ``copy_cli.py SRC DEST [--include RE]``, ``--images FILE``
or ``--sync FILE DEST`` (a skopeo sync YAML file; ``--inventory FILE`` for air-gap exports and imports).

The benchmark times this process against a skopeo process on the same work, so both pay
their own start-up; Ansible's own overhead is measured separately.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from collection_tree import ensure_collection_tree, subprocess_runner  # noqa: E402

sys.path.insert(0, ensure_collection_tree(os.path.dirname(os.path.dirname(HERE))))

from ansible_collections.oci.images.plugins.module_utils._batch import BatchOptions, Selection, resolve_batch, run_batch  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._copy import CopyOptions  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._options import ConnectionOptions  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._registry._clients import close_clients  # noqa: E402
from ansible_collections.oci.images.plugins.module_utils._transports._volumes import parse_size  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", nargs="?")
    parser.add_argument("dest", nargs="?")
    parser.add_argument("--images", help="JSON file with a list of {src, dest}")
    parser.add_argument("--include", action="append", help="repository mode: tags.include")
    parser.add_argument("--sync", help="a skopeo sync YAML file; the one positional argument is then the destination")
    parser.add_argument("--inventory", help="air gap: the inventory file (read by an export into a bundle, written by an import)")
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--parallel-images", type=int, default=4)
    parser.add_argument("--compression", choices=["gzip", "zstd", "zstd:chunked"])
    parser.add_argument("--compression-level", type=int)
    parser.add_argument("--split-size", help="oci-archive destinations in volumes of this size (image_copy's split_size)")
    parser.add_argument("--blob-cache", help="image_copy's blob_cache_path (blob_cache: true)")
    args = parser.parse_args()
    if args.images:
        with open(args.images) as handle:
            selection = Selection(images=json.load(handle))
    elif args.sync:
        from ansible_collections.oci.images.plugins.module_utils._mirror import read_sync_file

        selection = Selection(sync=read_sync_file(args.sync), dest=args.src)
    else:
        selection = Selection(src=args.src, dest=args.dest, tags={"include": args.include} if args.include else None)
    # The batch engine image_copy runs: same pool, blob ledger, results.
    side = ConnectionOptions(validate_certs=False, runner=subprocess_runner)
    dest_side = replace(side, split_size=parse_size(args.split_size)) if args.split_size else side
    try:
        batch = resolve_batch(selection, side)
        summary = run_batch(
            batch,
            dest_side,
            CopyOptions(parallel=args.parallel, compression=args.compression, compression_level=args.compression_level),
            BatchOptions(parallel_images=args.parallel_images, inventory=args.inventory, blob_cache=args.blob_cache),
        )
    finally:
        close_clients()
    results = summary["results"]
    if summary["failed_count"]:
        json.dump({"failed": [r["msg"] for r in results if r.get("failed")]}, sys.stdout)
        return 1
    json.dump({"changed": summary["copied"], "unchanged": summary["unchanged"], "bytes": sum(r.get("bytes_copied", 0) for r in results)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
