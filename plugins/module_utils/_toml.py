# Copyright (c) oci.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TOML reader for the subset configuration files use: enough for registries.conf, on Python 3.9 and later.

Python 3.11 has ``tomllib``, but module code runs on 3.9 and 3.10 too, and an optional
library would make a host without it read registries.conf differently (or not at all). This
reader is the same on every Python: tables, arrays of tables, dotted and quoted keys, basic,
literal and multi-line strings, integers, floats, booleans, arrays and inline tables. Dates and
times are refused with a message naming the line; tests check it against ``tomllib``.
"""

from __future__ import annotations

import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"[+-]?(?:0x[0-9A-Fa-f_]+|0o[0-7_]+|0b[01_]+|inf|nan|[0-9_]+(?:\.[0-9_]+)?(?:[eE][+-]?[0-9_]+)?)")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class TomlError(ValueError):
    """The text is not TOML this reader understands; the message names the line."""


class _Reader:
    def __init__(self, text: str, source: str):
        self.text = text
        self.pos = 0
        self.source = source
        self.root: dict = {}
        # Tables made by a header or a key path, and whether a header defined them (cannot be defined twice).
        self._defined: set[int] = set()
        self._inline: set[int] = set()

    # --- errors and whitespace ---------------------------------------------------------------
    def error(self, what: str) -> TomlError:
        line = self.text.count("\n", 0, self.pos) + 1
        return TomlError("%s, line %d: %s" % (self.source, line, what))

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_blank(self, newlines: bool = False) -> None:
        """Spaces and tabs (and newlines and comments when ``newlines``)."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif newlines and char == "#":
                self.skip_comment()
            else:
                break

    def skip_comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def end_of_line(self) -> None:
        self.skip_blank()
        if self.peek() == "#":
            self.skip_comment()
        if self.peek() == "\r":
            self.pos += 1
        if self.pos < len(self.text) and self.peek() != "\n":
            raise self.error("expected the end of the line, found %r" % self.text[self.pos : self.pos + 20].split("\n")[0])
        self.pos += 1

    # --- document ------------------------------------------------------------------------------
    def document(self) -> dict:
        table = self.root
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.root
            if self.peek(2) == "[[":
                self.pos += 2
                path = self.key_path("]]")
                table = self.array_table(path)
            elif self.peek() == "[":
                self.pos += 1
                path = self.key_path("]")
                table = self.header_table(path)
            else:
                self.key_value(table)
            self.end_of_line()

    def key_path(self, closing: str) -> list[str]:
        self.skip_blank()
        path = self.dotted_key()
        self.skip_blank()
        if self.peek(len(closing)) != closing:
            raise self.error("expected %r to close the table header" % closing)
        self.pos += len(closing)
        return path

    def dotted_key(self) -> list[str]:
        parts = [self.simple_key()]
        while True:
            self.skip_blank()
            if self.peek() != ".":
                return parts
            self.pos += 1
            self.skip_blank()
            parts.append(self.simple_key())

    def simple_key(self) -> str:
        char = self.peek()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        match = _BARE_KEY.match(self.text, self.pos)
        if not match:
            raise self.error("expected a key")
        self.pos = match.end()
        return match.group(0)

    def descend(self, table: dict, key: str) -> dict:
        """The table under ``key`` (made when missing); the last entry when it is an array of tables."""
        value = table.get(key)
        if value is None:
            value = table[key] = {}
        if isinstance(value, list) and value and isinstance(value[-1], dict) and id(value) not in self._inline:
            value = value[-1]
        if not isinstance(value, dict) or id(value) in self._inline:
            raise self.error("%r is already a value, not a table" % key)
        return value

    def header_table(self, path: list[str]) -> dict:
        table = self.root
        for key in path[:-1]:
            table = self.descend(table, key)
        existing = table.get(path[-1])
        if isinstance(existing, dict) and id(existing) in self._defined:
            raise self.error("table [%s] is defined twice" % ".".join(path))
        target = self.descend(table, path[-1])
        self._defined.add(id(target))
        return target

    def array_table(self, path: list[str]) -> dict:
        table = self.root
        for key in path[:-1]:
            table = self.descend(table, key)
        array = table.setdefault(path[-1], [])
        if not isinstance(array, list) or id(array) in self._inline:
            raise self.error("[[%s]] names something that is not an array of tables" % ".".join(path))
        entry: dict = {}
        array.append(entry)
        self._defined.add(id(entry))
        return entry

    def key_value(self, table: dict) -> None:
        path = self.dotted_key()
        self.skip_blank()
        if self.peek() != "=":
            raise self.error("expected '=' after the key %r" % ".".join(path))
        self.pos += 1
        self.skip_blank()
        value = self.value()
        for key in path[:-1]:
            table = self.descend(table, key)
        if path[-1] in table:
            raise self.error("key %r is set twice" % ".".join(path))
        table[path[-1]] = value

    # --- values ----------------------------------------------------------------------------------
    def value(self) -> Any:
        char = self.peek()
        if self.peek(3) == '"""':
            return self.multiline_basic_string()
        if self.peek(3) == "'''":
            return self.multiline_literal_string()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        if char == "[":
            return self.array()
        if char == "{":
            return self.inline_table()
        for word, meaning in (("true", True), ("false", False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return meaning
        if _DATE_LIKE.match(self.text, self.pos):
            raise self.error("dates and times are not supported here")
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            raise self.error("expected a value (a string, number, boolean, array or inline table)")
        self.pos = match.end()
        return self.number(match.group(0))

    def number(self, text: str) -> int | float:
        digits = text.replace("_", "")
        try:
            if digits.lstrip("+-")[:2] in ("0x", "0o", "0b"):
                return int(digits, 0)
            if any(c in digits for c in ".eEn"):  # ".", exponent, inf, nan
                return float(digits)
            return int(digits)
        except ValueError:
            raise self.error("%r is not a number" % text) from None

    def basic_string(self) -> str:
        self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                raise self.error("unterminated string")
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                out.append(self.escape())
                continue
            out.append(char)
            self.pos += 1

    def escape(self) -> str:
        code = self.text[self.pos + 1 : self.pos + 2]
        if code in _ESCAPES:
            self.pos += 2
            return _ESCAPES[code]
        if code in ("u", "U"):
            size = 4 if code == "u" else 8
            digits = self.text[self.pos + 2 : self.pos + 2 + size]
            if len(digits) != size or not re.match(r"^[0-9A-Fa-f]+$", digits):
                raise self.error("bad \\%s escape" % code)
            self.pos += 2 + size
            return chr(int(digits, 16))
        raise self.error("unknown escape \\%s" % code)

    def literal_string(self) -> str:
        end = self.text.find("'", self.pos + 1)
        newline = self.text.find("\n", self.pos + 1)
        if end < 0 or (0 <= newline < end):
            raise self.error("unterminated string")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def multiline_basic_string(self) -> str:
        self.pos += 3
        if self.peek() == "\n":
            self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.text):
                raise self.error("unterminated multi-line string")
            if self.peek(3) == '"""':
                self.pos += 3
                return "".join(out)
            char = self.text[self.pos]
            if char == "\\":
                rest = self.text[self.pos + 1 :]
                stripped = rest.lstrip(" \t")
                if stripped.startswith(("\n", "\r\n")):
                    # A line-ending backslash joins the lines, dropping the white space that follows.
                    self.pos = len(self.text) - len(rest.lstrip(" \t\r\n"))
                    continue
                out.append(self.escape())
                continue
            out.append(char)
            self.pos += 1

    def multiline_literal_string(self) -> str:
        self.pos += 3
        if self.peek() == "\n":
            self.pos += 1
        end = self.text.find("'''", self.pos)
        if end < 0:
            raise self.error("unterminated multi-line string")
        value = self.text[self.pos : end]
        self.pos = end + 3
        return value

    def array(self) -> list:
        self.pos += 1
        items: list = []
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "]":
                self.pos += 1
                self._inline.add(id(items))
                return items
            items.append(self.value())
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                raise self.error("expected ',' or ']' in an array")

    def inline_table(self) -> dict:
        self.pos += 1
        table: dict = {}
        self.skip_blank()
        if self.peek() == "}":
            self.pos += 1
            self._inline.add(id(table))
            return table
        while True:
            self.skip_blank()
            self.key_value(table)
            self.skip_blank()
            if self.peek() == "}":
                self.pos += 1
                self._inline.add(id(table))
                return table
            if self.peek() != ",":
                raise self.error("expected ',' or '}' in an inline table")
            self.pos += 1


def loads(text: str, source: str = "TOML text") -> dict:
    """The document ``text`` as nested dicts and lists; TomlError names ``source`` and the line of a mistake."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return _Reader(text, source).document()
