"""The only ways text from a spec or a file name may enter generated source.

A generated module is Python that other people import: whatever reaches it from a spec (or from
the name of the spec file) is either an identifier checked against the spec language's own
identifier rule or a literal escaped so that it cannot end early, change the file's encoding or
start a new line. Comments and the first two lines never carry such text: PEP 263 reads an
encoding declaration from a comment on line 1 or 2, so those lines are fixed.
"""
from __future__ import annotations

import keyword
import math
import re

# The spec grammar's NAME token; Python identifiers beyond ASCII are refused because Python
# NFKC-normalises them (two different spec names could become one attribute).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

CODING_LINE = "# -*- coding: utf-8 -*-"


def identifier(name: str) -> str:
    """`name`, if it is an ASCII Python identifier that is not a keyword; else ValueError."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return name


def _escape_char(c: str) -> str:
    o = ord(c)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def docstring(text: str) -> str:
    r"""A triple-quoted literal whose value is `text`: backslashes and quotes escaped, every
    character outside printable ASCII (newlines aside) written as an escape, so the literal is
    pure ASCII and cannot close early."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n" or " " <= c <= "~":
            out.append(c)
        else:
            out.append(_escape_char(c))
    return '"""' + "".join(out) + '"""'


def string(text: str) -> str:
    """A one-line, pure-ASCII string literal whose value is `text` (double-quoted, as generated
    code writes its strings)."""
    src = ascii(str(text))
    if src[0] == "'" and '"' not in src:
        src = '"' + src[1:-1].replace("\\'", "'") + '"'
    return src


def literal(value) -> str:
    """Python source for a plain value (None, bool, int, finite float, str, list of these)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no literal form (not finite)")
        return repr(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    raise ValueError(f"{value!r} has no literal form")


def display_path(path: str) -> str:
    """A file name as text for messages and docstrings: the name itself when it is plain printable
    ASCII, else its escaped form."""
    return path if all(" " <= c <= "~" for c in path) else ascii(path)[1:-1]
