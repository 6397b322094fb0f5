#!/usr/bin/python
# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: footprint_report
short_description: Write a registry's storage footprint as a page people read, and a summary for the task output
version_added: 0.1.0
description:
  - Renders the footprint M(oci.images.image_info) returns with O(oci.images.image_info#module:catalog) and
    O(oci.images.image_info#module:footprint) as one self-contained HTML file - a bar per repository split into what
    deleting it frees and what it shares with other repositories, sortable tables of the repositories and of the most
    shared blobs, and the totals. Styles and the small script that sorts the tables are inside the file; the page
    fetches nothing, so it opens offline, from an artifact store or an e-mail.
  - Returns the same summary as plain text lines in RV(summary), for the task output.
  - Idempotent. The same footprint gives the same file byte for byte; the file is replaced (atomically) only when it differs.
author:
  - oci.images maintainers (@oci-images)
extends_documentation_fragment:
  - ansible.builtin.files
  - oci.images._auth
  - oci.images._tls
  - oci.images._retry
  - oci.images._upstreams
  - oci.images._attributes
  - oci.images._attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the HTML before and after.
  idempotent:
    support: full
options:
  footprint:
    description:
      - The RV(oci.images.image_info#module:footprint) of M(oci.images.image_info) run with
        O(oci.images.image_info#module:catalog) and O(oci.images.image_info#module:footprint=true).
    type: dict
    required: true
  dest:
    description: The HTML file to write, for example V(/var/www/reports/registry.html). Its directory must exist.
    type: path
    required: true
  title:
    description: The page's title. Default V(Storage of HOST).
    type: str
  top_blobs:
    description: How many of the most shared blobs the page and RV(summary) list (those whose sharing saves most bytes first).
    type: int
    default: 20
notes:
  - The registry connection options are accepted so that C(module_defaults) for C(group/oci.images.images) apply to
    every module of the group; this module makes no connection and does not use them.
  - The page opens at a given order when its address says so, for example C(registry.html#sort=repositories.freed.desc)
    (tables C(repositories) and C(blobs); columns as the C(data-key) of their headers).
seealso:
  - module: oci.images.image_info
"""

EXAMPLES = r"""
- name: Measure every repository of the registry
  oci.images.image_info:
    catalog: registry.example.com
    footprint: true
  register: registry_usage

- name: Write the report
  oci.images.footprint_report:
    footprint: "{{ registry_usage.footprint }}"
    dest: /var/www/reports/registry.html
    mode: "0644"
  register: report

- name: Show the summary
  ansible.builtin.debug:
    var: report.summary
"""

RETURN = r"""
rate_limit_waits:
  description:
    - Per registry host that made the task wait or reported a quota, what it cost, in the form
      RV(oci.images.image_copy#module:rate_limit_waits) describes. Empty when none did.
  returned: always
  type: dict
dest:
  description: The file written.
  returned: always
  type: str
  sample: /var/www/reports/registry.html
summary:
  description:
    - The summary as plain text, one line each - totals, untagged manifests, one line per repository (size, shared, freed if
      deleted; largest first) and the most shared blobs.
  returned: always
  type: list
  elements: str
  sample:
    - "Registry registry.example.com: 3 repositories, 40 tags, 1.2 GiB stored (310.4 KiB of it manifests), 700.0 MiB held by 2 repositories or more"
    - "Untagged manifests: not visible through the registry API (give image_info registry_storage to count them)"
    - "repository          size        shared  freed if deleted"
    - "team/app        800.0 MiB     600.0 MiB         200.0 MiB"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oci.images.plugins.module_utils._errors import OCIError, describe_os_error
from ansible_collections.oci.images.plugins.module_utils._module_setup import start_module


def main() -> None:
    module = start_module(
        AnsibleModule,
        missing_required_lib,
        dict(
            footprint=dict(type="dict", required=True),
            dest=dict(type="path", required=True),
            title=dict(type="str"),
            top_blobs=dict(type="int", default=20),
        ),
        libraries=(),
        add_file_common_args=True,
    )
    from ansible_collections.oci.images.plugins.module_utils._footprint_report import render_html, summary_lines
    from ansible_collections.oci.images.plugins.module_utils._transports._local import replace_file

    params = module.params
    dest = params["dest"]
    if params["top_blobs"] < 0:
        module.fail_json(msg="top_blobs must be 0 or more")
    try:
        page = render_html(params["footprint"], params["title"], params["top_blobs"])
        summary = summary_lines(params["footprint"], params["top_blobs"])
    except OCIError as exc:
        module.fail_json(msg=exc.msg)
    try:
        with open(dest, encoding="utf-8", errors="replace") as handle:
            before = handle.read()
    except FileNotFoundError:
        before = None
    except OSError as exc:
        module.fail_json(msg="dest %s cannot be read: %s" % (dest, describe_os_error(exc)))
    changed = before != page
    if changed and not module.check_mode:
        try:
            replace_file(dest, page.encode("utf-8"))
        except OSError as exc:
            module.fail_json(msg="dest %s cannot be written: %s" % (dest, describe_os_error(exc)))
    if before is not None or not module.check_mode:
        # mode, owner, group and the like: on a file that exists (in check mode a new file has none yet).
        changed = module.set_fs_attributes_if_different(module.load_file_common_arguments(params, path=dest), changed)
    result = dict(changed=changed, dest=dest, summary=summary)
    if module._diff:
        result["diff"] = dict(before=before or "", after=page, before_header=dest, after_header=dest)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
