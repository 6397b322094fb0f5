# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry-wide footprint (``_registry_footprint.registry_footprint``) as people read it: a page and a few lines of text.

The page is one self-contained HTML file - styles and the small script that sorts its tables are
inline, nothing is fetched - with a bar per repository split into what deleting it frees and what it
shares, sortable tables of repositories and of the most shared blobs, and the summary the text gives.
The same footprint always gives the same bytes, so writing it again changes nothing.
"""

from __future__ import annotations

from html import escape

from ._errors import OCIError

TOP_BLOBS = 20
_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")
_FOOTPRINT_KEYS = ("registry", "total_bytes", "manifest_bytes", "shared_bytes", "untagged", "repositories", "blobs")


def human_bytes(count: int | None) -> str:
    """``1536`` -> ``1.5 KiB``; binary units, one decimal past bytes."""
    if count is None:
        return "-"
    value, unit = float(count), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return "%d bytes" % count if unit == 0 else "%.1f %s" % (value, _UNITS[unit])


def check_footprint(footprint: object) -> dict:
    """The footprint, when it is image_info's footprint of a catalog; else an error saying what to give."""
    if not isinstance(footprint, dict) or any(key not in footprint for key in _FOOTPRINT_KEYS):
        keys = ", ".join(sorted(footprint)) if isinstance(footprint, dict) else type(footprint).__name__
        raise OCIError(
            "footprint: expected the footprint oci.images.image_info returns with catalog and footprint (keys %s), not one with %s"
            % (", ".join(_FOOTPRINT_KEYS), keys or "no keys")
        )
    return footprint


def shared_blobs(footprint: dict, top: int = TOP_BLOBS) -> list[dict]:
    """The blobs held by two repositories or more, those whose sharing saves most first (size times the other holders)."""
    shared = [blob for blob in footprint["blobs"] if len(blob["repositories"]) > 1]
    shared.sort(key=lambda blob: (-blob["size"] * (len(blob["repositories"]) - 1), blob["digest"]))
    return shared[:top]


def _by_size(footprint: dict) -> list[tuple[str, dict]]:
    return sorted(footprint["repositories"].items(), key=lambda item: (-item[1]["size"], item[0]))


def summary_lines(footprint: dict, top: int = TOP_BLOBS) -> list[str]:
    """The plain-text summary: totals, untagged manifests, one line per repository, the most shared blobs."""
    footprint = check_footprint(footprint)
    repositories = footprint["repositories"]
    untagged = footprint["untagged"]
    lines = [
        "Registry %s: %d repositories, %d tags, %s stored (%s of it manifests), %s held by 2 repositories or more"
        % (
            footprint["registry"],
            len(repositories),
            sum(r["tags"] for r in repositories.values()),
            human_bytes(footprint["total_bytes"]),
            human_bytes(footprint["manifest_bytes"]),
            human_bytes(footprint["shared_bytes"]),
        ),
        (
            "Untagged manifests: %d, holding %s nothing tagged uses" % (untagged["manifests"], human_bytes(untagged["bytes"]))
            if untagged["visible"]
            else "Untagged manifests: not visible through the registry API (give image_info registry_storage to count them)"
        ),
    ]
    if repositories:
        width = max(len("repository"), *(len(name) for name in repositories))
        lines.append("%-*s  %12s  %12s  %16s" % (width, "repository", "size", "shared", "freed if deleted"))
        for name, facts in _by_size(footprint):
            lines.append(
                "%-*s  %12s  %12s  %16s" % (width, name, human_bytes(facts["size"]), human_bytes(facts["shared_bytes"]), human_bytes(facts["freed_bytes"]))
            )
    blobs = shared_blobs(footprint, top)
    if blobs:
        lines.append("Most shared blobs:")
        for blob in blobs:
            holders = blob["repositories"]
            lines.append(
                "  %s  %s in %d repositories (%s%s)"
                % (blob["digest"][:19], human_bytes(blob["size"]), len(holders), ", ".join(holders[:5]), ", ..." if len(holders) > 5 else "")
            )
    return lines


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#1a202c}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.lead{color:#4a5568;margin:0 0 16px}
dl.totals{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px;margin:0}
dl.totals div{background:#f7fafc;border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px}
dl.totals dt{color:#4a5568;font-size:12px}dl.totals dd{margin:0;font-size:18px;font-weight:600}
.legend span{display:inline-block;margin-right:16px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.freed{background:#2b6cb0}.shared{background:#a0aec0}.kept{background:#dd6b20}
.bars{display:grid;grid-template-columns:minmax(120px,max-content) 1fr max-content;gap:4px 12px;align-items:center}
.bar{display:flex;height:16px;background:#edf2f7;border-radius:3px;overflow:hidden}.bar div{height:100%}
.name{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}.num{text-align:right;white-space:nowrap}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #e2e8f0;text-align:left}
th{background:#f7fafc;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num,th.num{text-align:right}code{font-size:12px}footer{margin-top:32px;color:#718096;font-size:12px}
"""

# Sorts a table by the column whose header is clicked (again: the other way), by each cell's data-value when it has one.
# The address may ask for an order: report.html#sort=repositories.freed.desc
_SCRIPT = """
(function () {
  function key(cell) { var v = cell.getAttribute('data-value'); return v === null ? cell.textContent.trim().toLowerCase() : Number(v); }
  function sortBy(table, column, descending) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows), headers = table.tHead.rows[0].cells;
    rows.sort(function (a, b) {
      var x = key(a.cells[column]), y = key(b.cells[column]);
      return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute('aria-sort'); }
    headers[column].setAttribute('aria-sort', descending ? 'descending' : 'ascending');
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.addEventListener('click', function () {
        var now = header.getAttribute('aria-sort');
        sortBy(table, column, now ? now === 'ascending' : header.classList.contains('num'));
      });
    });
  });
  var wanted = /^#sort=([\\w-]+)\\.([\\w-]+)(?:\\.(asc|desc))?$/.exec(location.hash);
  if (wanted) {
    var table = document.getElementById(wanted[1]);
    var header = table && table.querySelector('th[data-key="' + wanted[2] + '"]');
    if (header) { sortBy(table, header.cellIndex, wanted[3] === 'desc'); }
  }
})();
"""


def _cell(value: int | None, text: str | None = None) -> str:
    shown = text if text is not None else human_bytes(value)
    if value is None:
        return '<td class="num" data-value="-1">-</td>'
    return '<td class="num" data-value="%d" title="%d">%s</td>' % (value, value, escape(shown))


def _table(table_id: str, columns: list[tuple[str, str, bool]], rows: list[str], sorted_by: str) -> str:
    """A sortable table whose rows come in descending order of the column ``sorted_by``."""
    head = "".join(
        '<th data-key="%s"%s%s>%s</th>' % (key, ' class="num"' if numeric else "", ' aria-sort="descending"' if key == sorted_by else "", escape(title))
        for key, title, numeric in columns
    )
    return '<table class="sortable" id="%s"><thead><tr>%s</tr></thead><tbody>\n%s\n</tbody></table>' % (table_id, head, "\n".join(rows))


def _percent(part: int, whole: int) -> str:
    return "%.3f%%" % (100.0 * part / whole) if whole else "0%"


def render_html(footprint: dict, title: str | None = None, top: int = TOP_BLOBS) -> str:
    """The whole page for ``footprint``; the same footprint always gives the same text."""
    footprint = check_footprint(footprint)
    registry = footprint["registry"]
    title = title or "Storage of %s" % registry
    repositories = footprint["repositories"]
    untagged = footprint["untagged"]
    largest = max([facts["size"] + (facts["untagged_bytes"] or 0) for facts in repositories.values()] or [0])

    totals = [
        ("Stored, each blob once", human_bytes(footprint["total_bytes"])),
        ("Held by 2+ repositories", human_bytes(footprint["shared_bytes"])),
        ("Manifests", human_bytes(footprint["manifest_bytes"])),
        ("Repositories", str(len(repositories))),
        ("Tags", str(sum(facts["tags"] for facts in repositories.values()))),
        ("Untagged manifests", "%d (%s)" % (untagged["manifests"], human_bytes(untagged["bytes"])) if untagged["visible"] else "not visible"),
    ]
    bars = []
    for name, facts in _by_size(footprint):
        kept = facts["size"] - facts["shared_bytes"] - facts["freed_bytes"] + (facts["untagged_bytes"] or 0)
        segments = [
            ("freed", facts["freed_bytes"], "freed if deleted"),
            ("shared", facts["shared_bytes"], "shared"),
            ("kept", kept, "kept by untagged manifests"),
        ]
        bars.append(
            '<div class="name">%s</div><div class="bar" role="img" aria-label="%s">%s</div><div class="num">%s</div>'
            % (
                escape(name),
                escape("%s: %s freed if deleted, %s shared" % (name, human_bytes(facts["freed_bytes"]), human_bytes(facts["shared_bytes"]))),
                "".join(
                    '<div class="%s" style="width:%s" title="%s: %s"></div>' % (css, _percent(size, largest), label, escape(human_bytes(size)))
                    for css, size, label in segments
                    if size > 0
                ),
                escape(human_bytes(facts["size"]) + (" + %s untagged" % human_bytes(facts["untagged_bytes"]) if facts["untagged_bytes"] else "")),
            )
        )
    repository_rows = [
        '<tr><td class="name">%s</td>%s%s%s%s%s%s%s</tr>'
        % (
            escape(name),
            _cell(facts["tags"], str(facts["tags"])),
            _cell(facts["manifests"], str(facts["manifests"])),
            _cell(facts["size"]),
            _cell(facts["shared_bytes"]),
            _cell(facts["freed_bytes"]),
            _cell(facts["untagged_manifests"], None if facts["untagged_manifests"] is None else str(facts["untagged_manifests"])),
            _cell(facts["untagged_bytes"]),
        )
        for name, facts in _by_size(footprint)
    ]
    blob_rows = [
        '<tr><td><code title="%s">%s</code></td><td>%s</td>%s%s%s<td class="name">%s</td></tr>'
        % (
            escape(blob["digest"]),
            escape(blob["digest"][:19]),
            escape(blob["media_type"] or ""),
            _cell(blob["size"]),
            _cell(len(blob["repositories"]), str(len(blob["repositories"]))),
            _cell(blob["size"] * (len(blob["repositories"]) - 1)),
            escape(", ".join(blob["repositories"])),
        )
        for blob in shared_blobs(footprint, top)
    ]
    visibility = (
        "Untagged manifests were read from the registry's storage."
        if untagged["visible"]
        else "Untagged manifests are not counted: the registry API does not list them (image_info registry_storage does)."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched: no network, no external assets, not even a favicon.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        '<link rel="icon" href="data:,">',
        "<title>%s</title><style>%s</style></head><body>" % (escape(title), _STYLE),
        "<h1>%s</h1>" % escape(title),
        '<p class="lead">Every blob and manifest counted once, however many repositories hold it. %s</p>' % escape(visibility),
        '<dl class="totals">%s</dl>' % "".join("<div><dt>%s</dt><dd>%s</dd></div>" % (escape(k), escape(v)) for k, v in totals),
        "<h2>Repositories by size</h2>",
        '<p class="legend"><span><i class="freed"></i>freed if deleted</span><span><i class="shared"></i>shared with other repositories</span>'
        '<span><i class="kept"></i>kept by its untagged manifests</span></p>',
        '<div class="bars" id="bars">%s</div>' % "".join(bars),
        "<h2>Repositories</h2>",
        '<p class="lead">Click a column to sort. Freed if deleted: what deleting every tag of the repository, then garbage-collect, gives back.</p>',
        _table(
            "repositories",
            [
                ("name", "Repository", False),
                ("tags", "Tags", True),
                ("manifests", "Manifests", True),
                ("size", "Size", True),
                ("shared", "Shared", True),
                ("freed", "Freed if deleted", True),
                ("untagged", "Untagged manifests", True),
                ("untagged-bytes", "Only untagged hold", True),
            ],
            repository_rows,
            "size",
        ),
        "<h2>Most shared blobs</h2>",
        '<p class="lead">Saved: what the registry would store again if each repository had its own copy.</p>',
        _table(
            "blobs",
            [
                ("digest", "Digest", False),
                ("type", "Media type", False),
                ("size", "Size", True),
                ("holders", "Repositories", True),
                ("saved", "Saved", True),
                ("names", "Held by", False),
            ],
            blob_rows,
            "saved",
        ),
        "<footer>%s - made by oci.images.footprint_report from oci.images.image_info's footprint of %s.</footer>" % (escape(title), escape(registry)),
        "<script>%s</script>" % _SCRIPT,
        "</body></html>",
        "",
    ]
    return "\n".join(parts)
