"""Rewrite the MQL5-only syntax of the sigbridge sources so that g++ compiles them.

The rewrites are mechanical and line-based; everything else is compiled as written:

- `T &name[]` parameters become `MqlArray<T> &name` (MQL5 passes arrays by reference only).
- `T name[];` declarations (dynamic arrays) become `MqlArray<T> name;`.
- `#property` lines are dropped and `input`/`sinput` declarations become plain globals.
- Every file gets `#pragma once`, since MetaEditor includes a file only once.
- `#include <SigBridge/...>` resolves under the output folder; `Transport.mqh` is replaced by
  the harness's transport, the one class the harness implements itself.

Syntax the rewrites do not cover (an `#import` block, a `D'...'` literal) raises
`TranslationError` instead of producing C++ that would mean something else.
"""

from __future__ import annotations

import re
from pathlib import Path

# `const uchar &bytes[]` -> `const MqlArray<uchar> &bytes`
ARRAY_PARAMETER = re.compile(r"\b(\w+)\s*&\s*(\w+)\s*\[\s*\]")
# `   MqlRates rates[];` -> `   MqlArray<MqlRates> rates;`
DYNAMIC_ARRAY = re.compile(r"^(\s*)((?:static\s+)?)(\w+)\s+(\w+)\s*\[\s*\]\s*;")
# A string literal with its escapes; re.split keeps it as an odd-indexed part.
STRING_LITERAL = re.compile(r'("(?:\\.|[^"\\])*")')
INPUT_DECLARATION = re.compile(r"^(\s*)s?input\s+")
UNSUPPORTED = (
    (re.compile(r"^\s*#import\b"), "DLL imports (#import)"),
    (re.compile(r"\bD'"), "datetime literals (D'...')"),
    (re.compile(r"\bC'"), "color literals (C'...')"),
)

# The one include file the harness replaces.
TRANSPORT_FILE = "Transport.mqh"
TRANSPORT_STAND_IN = '#include "harness_transport.h"\n'


class TranslationError(ValueError):
    """Raised for MQL5 syntax that the rewrites do not cover."""


def _strip_comment(line: str) -> str:
    """The code part of a line: text before `//` that is outside a string literal."""
    in_string = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and in_string:
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        elif not in_string and line.startswith("//", index):
            return line[:index]
        index += 1
    return line


def _rewrite_code(code: str) -> str:
    """Apply the rewrites to the parts of `code` outside string literals."""
    parts = STRING_LITERAL.split(code)
    for index in range(0, len(parts), 2):
        part = parts[index]
        if index == 0:
            part = INPUT_DECLARATION.sub(r"\1", part)
            part = DYNAMIC_ARRAY.sub(r"\1\2MqlArray<\3> \4;", part)
        parts[index] = ARRAY_PARAMETER.sub(r"MqlArray<\1> &\2", part)
    return "".join(parts)


def translate_source(text: str, path: str) -> str:
    """Translate one MQL5 source text; `path` names it in errors."""
    lines = ["#pragma once"]
    for number, line in enumerate(text.splitlines(), start=1):
        code = _strip_comment(line)
        for pattern, what in UNSUPPORTED:
            if pattern.search(code):
                raise TranslationError(f"{path}:{number}: the harness does not translate {what}: {line.strip()}")
        if code.lstrip().startswith("#property"):
            lines.append("")
            continue
        comment = line[len(code) :]
        lines.append(_rewrite_code(code) + comment)
    return "\n".join(lines) + "\n"


def translate_tree(mql5_root: Path, output: Path) -> list[Path]:
    """Translate `Include/SigBridge/*.mqh` and `Scripts/*.mq5` under `mql5_root` into `output`.

    The include files land in `output/include/SigBridge`, the scripts in `output/scripts`.
    Returns the written paths.
    """
    written = []
    include_source = mql5_root / "Include" / "SigBridge"
    include_target = output / "include" / "SigBridge"
    include_target.mkdir(parents=True, exist_ok=True)
    for source in sorted(include_source.glob("*.mqh")):
        target = include_target / source.name
        if source.name == TRANSPORT_FILE:
            target.write_text("#pragma once\n" + TRANSPORT_STAND_IN, encoding="utf-8")
        else:
            target.write_text(translate_source(source.read_text(encoding="utf-8"), str(source)), encoding="utf-8")
        written.append(target)
    scripts_target = output / "scripts"
    scripts_target.mkdir(parents=True, exist_ok=True)
    for source in sorted((mql5_root / "Scripts").glob("*.mq5")):
        target = scripts_target / source.name
        target.write_text(translate_source(source.read_text(encoding="utf-8"), str(source)), encoding="utf-8")
        written.append(target)
    return written
