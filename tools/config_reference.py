#!/usr/bin/env python3
"""The README's configuration reference, generated from docs/configuration.md.

docs/configuration.md is the reference (tests/demo/config_keys.py keeps it equal to what the loaders
parse); the README carries the same rows, one table per program, between the markers
<!-- config-reference:begin --> and <!-- config-reference:end -->.

  tools/config_reference.py REPO            print the block
  tools/config_reference.py REPO --write    replace the block in REPO/README.md
  tools/config_reference.py REPO --check    exit 1 if README.md's block differs (ctest demo.config_readme)
"""
import os
import re
import sys

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"
HEADER = "| section | key | default | allowed | meaning |\n|---|---|---|---|---|\n"


def block(repo):
    rows = {"aggregator": [], "agent": []}
    prog = None
    with open(os.path.join(repo, "docs", "configuration.md"), encoding="utf-8") as f:
        for line in f:
            h = re.match(r"^## storefl-(agent|aggregator)\b", line)
            if h:
                prog = h.group(1)
                continue
            if line.startswith("## "):
                prog = None
            if prog and re.match(r"^\| \[[\w.-]+\] \| `[\w.-]+` \|", line):
                rows[prog].append(line if line.endswith("\n") else line + "\n")
    if len(rows["aggregator"]) < 20 or len(rows["agent"]) < 20:
        raise SystemExit("config_reference: too few rows found in docs/configuration.md: the format changed")
    out = [BEGIN + "\n"]
    for prog in ("aggregator", "agent"):
        out.append("\n**storefl-%s** (%d keys)\n\n" % (prog, len(rows[prog])))
        out.append(HEADER)
        out.extend(rows[prog])
    out.append("\n" + END)
    return "".join(out)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    repo, mode = argv[1], (argv[2] if len(argv) > 2 else "")
    want = block(repo)
    if not mode:
        print(want)
        return 0
    readme = os.path.join(repo, "README.md")
    text = open(readme, encoding="utf-8").read()
    a, b = text.find(BEGIN), text.find(END)
    if a < 0 or b < a:
        print("README.md has no %s ... %s block" % (BEGIN, END))
        return 1
    have = text[a:b + len(END)]
    if mode == "--check":
        if have != want:
            print("README.md's configuration reference differs from docs/configuration.md: "
                  "run tools/config_reference.py . --write")
            return 1
        print("README.md's configuration reference equals docs/configuration.md (%d lines)" % want.count("\n"))
        return 0
    if mode == "--write":
        with open(readme, "w", encoding="utf-8") as f:
            f.write(text[:a] + want + text[b + len(END):])
        return 0
    print("unknown mode " + mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
