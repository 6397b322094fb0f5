"""The TOML subset reader: what registries.conf files hold, read as tomllib reads it, on every Python."""

from __future__ import annotations

import sys

import pytest

from ansible_collections.oci.images.plugins.module_utils._toml import TomlError, loads

DOCUMENTS = [
    # registries.conf as distributions ship it and the man page shows it
    """
# comment
unqualified-search-registries = ["registry.fedoraproject.org", "quay.io", 'docker.io']  # trailing
short-name-mode = "enforcing"

[[registry]]
prefix = "example.com/foo"
insecure = false
blocked = false
location = "internal-registry-for-example.com/bar"

[[registry.mirror]]
location = "example-mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "example-mirror-1.local/mirrors/foo"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "registry.com"

[[registry.mirror]]
location = "mirror.registry.com"

[aliases]
  "fedora" = "registry.fedoraproject.org/fedora"
  "opensuse/leap" = "registry.opensuse.org/opensuse/leap"
  'lit\\eral' = "x.io/y"
""",
    # arrays over several lines with comments and a trailing comma; inline tables; dotted keys
    """
unqualified-search-registries = [
  "a.io",   # first
  "b.io",
]
registry = [{ location = "c.io", mirror = [{ location = "d.io" }, {location="e.io", insecure=true}] }]
engine.name = "x"
"quoted.key" = 1
""",
    # every scalar
    'a = "tab\\there \\u00e9 \\U0001F600 \\"q\\" \\\\"\nb = \'C:\\\\path\'\nc = 1_000\nd = -17\ne = 0x1F\nf = 3.5e2\ng = true\nh = false\n'
    'i = """\nmulti\nline"""\nj = \'\'\'\nraw \\n\'\'\'\nk = """one \\\n    two"""\nl = []\nm = {}\n',
    # tables and sub-tables in any order
    "[a]\nx = 1\n[b.c]\ny = 2\n[a.d]\nz = 3\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_documents_read_as_tomllib_reads_them(text):
    ours = loads(text)
    if sys.version_info >= (3, 11):
        import tomllib

        assert ours == tomllib.loads(text)
    assert ours


def test_registries_conf_arrays_of_tables_nest_under_the_last_registry():
    doc = loads(DOCUMENTS[0])
    assert [r["location"] for r in doc["registry"]] == ["internal-registry-for-example.com/bar", "registry.com"]
    assert [m["location"] for m in doc["registry"][0]["mirror"]] == ["example-mirror-0.local/mirror-for-foo", "example-mirror-1.local/mirrors/foo"]
    assert doc["aliases"]["opensuse/leap"] == "registry.opensuse.org/opensuse/leap"


@pytest.mark.parametrize(
    "text,message",
    [
        ('a = "x"\na = "y"\n', "line 2: key 'a' is set twice"),
        ("[a]\n[a]\n", "line 2: table [a] is defined twice"),
        ('a = "unterminated\n', "line 1: unterminated string"),
        ("a = 1979-05-27\n", "dates and times are not supported"),
        ("a = [1, 2\n", "expected ',' or ']'"),
        ("a = 1 b = 2\n", "expected the end of the line"),
        ("= 1\n", "expected a key"),
        ('a = "\\q"\n', "unknown escape"),
        ("a = 1\n[a]\n", "'a' is already a value"),
        ("a = {b = 1}\n[a]\n", "'a' is already a value"),
    ],
)
def test_what_it_cannot_read_is_an_error_naming_the_line(text, message):
    with pytest.raises(TomlError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        loads(text, "registries.conf")
    if sys.version_info >= (3, 11) and "dates" not in message:
        import tomllib

        with pytest.raises(tomllib.TOMLDecodeError):
            tomllib.loads(text)
