#!/usr/bin/env python3
"""Checks that every example docs/clients.md quotes is the code a test runs.

In docs/clients.md a block quoted from a test follows a line

    <!-- example: tests/clients/FILE#NAME -->

and must equal, line for line, the lines of FILE between the marker lines
holding `[doc:NAME]` and `[/doc:NAME]` (common indentation removed; NAME in lower case, digits and dashes). Every
such region of the test files must be quoted. Exits non-zero on any
difference, printing it.

    python3 tests/clients/doc_blocks.py
"""

import difflib
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
TESTS = ["tests/clients/python_psycopg.py", "tests/clients/node_pg.js", "tests/clients/psql.sh"]
NAME = "doc_blocks.py"

MARK = re.compile(r"^<!-- example: (\S+)#(\S+) -->$")
REGION = re.compile(r"\[(/?)doc:([a-z0-9-]+)\]")


def regions(path):
    found, current, lines = {}, None, []
    for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
        m = REGION.search(line)
        if not m:
            if current:
                lines.append(line)
            continue
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            if current:
                sys.exit(f"{NAME}: {path}:{number}: [doc:{name}] inside [doc:{current}]")
            current, lines = name, []
        else:
            if name != current:
                sys.exit(f"{NAME}: {path}:{number}: [/doc:{name}] closes nothing")
            if name in found:
                sys.exit(f"{NAME}: {path}: region {name} twice")
            found[name] = textwrap.dedent("\n".join(lines)).splitlines()
            current = None
    if current:
        sys.exit(f"{NAME}: {path}: [doc:{current}] never closed")
    return found


def quoted_blocks():
    lines = DOC.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        m = MARK.match(line)
        if not m:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            sys.exit(f"{NAME}: docs/clients.md:{i + 1}: no code block right after the example marker")
        end = next((j for j in range(i + 2, len(lines)) if lines[j] == "```"), None)
        if end is None:
            sys.exit(f"{NAME}: docs/clients.md:{i + 2}: code block never closed")
        blocks.append((m.group(1), m.group(2), i + 1, lines[i + 2 : end]))
    return blocks


def main():
    failures = 0
    wanted = {path: regions(path) for path in TESTS}
    seen = set()
    blocks = quoted_blocks()
    for path, name, line, block in blocks:
        region = wanted.get(path, {}).get(name)
        if region is None:
            print(f"{NAME}: docs/clients.md:{line}: {path}#{name}: no such region", file=sys.stderr)
            failures += 1
            continue
        seen.add((path, name))
        if block != region:
            failures += 1
            print(f"{NAME}: docs/clients.md:{line} differs from {path}#{name}:", file=sys.stderr)
            sys.stderr.writelines(
                l + "\n"
                for l in difflib.unified_diff(region, block, f"{path}#{name}", "docs/clients.md", lineterm="")
            )
    for path, found in wanted.items():
        for name in found:
            if (path, name) not in seen:
                print(f"{NAME}: {path}#{name} is not quoted in docs/clients.md", file=sys.stderr)
                failures += 1
    if failures:
        sys.exit(f"{NAME}: FAIL: {failures} example(s) of docs/clients.md do not match their tests")
    print(f"{NAME}: passed: the {len(blocks)} examples docs/clients.md quotes are the tests' code")


if __name__ == "__main__":
    main()
