#!/usr/bin/env python3
"""docs/configuration.md must list every INI key the code parses, and only those.

Finds every inih handler in the C sources (a function taking `const char *section, const char
*name`), extracts the (section, key) pairs it accepts from its body: KEY("section", "key") macros,
and strcmp(name, "key") under the enclosing strcmp(section, "section") branch. A handler that
compares against a section given by its caller (x->section) gets the section from the calls of its
loader (loader(path, "section", ...)). The column-mapping handler accepts the names of its COL_KEYS
table. Each pair belongs to the aggregator if its handler (or, for a caller-given section, the
caller of its loader) is under aggregator/, else to the agent. The documented pairs are the `| [section] | `key` |` rows under the '## storefl-aggregator'
and '## storefl-agent' headings. Exit 1 with the differences, 0 when both sets agree.

Usage: config_keys.py REPO
"""
import os
import re
import sys

SRC_DIRS = ("agent/src", "aggregator/src", "shared/src", "protocol/src")
HANDLER = re.compile(r"^static int (\w+)\(void \*\w+, const char \*section, const char \*name, const char \*\w+\) \{",
                     re.M)
SECTION_LIT = re.compile(r'strcmp\(section, "([\w.-]+)"\)')
SECTION_VAR = re.compile(r"strcmp\(section, \w+->section\)")
NAME_LIT = re.compile(r'strcmp\(name, "([\w.-]+)"\)')
KEY_MACRO = re.compile(r'KEY\("([\w.-]+)", "([\w.-]+)"\)')


def body_of(text, start):
    """The function body from the '{' at or after start, braces matched (strings hold none here)."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j + 1]
    raise ValueError("unbalanced braces")


def sources(repo):
    for d in SRC_DIRS:
        base = os.path.join(repo, d)
        for f in sorted(os.listdir(base)):
            if f.endswith(".c"):
                p = os.path.join(base, f)
                yield os.path.join(d, f), open(p, encoding="utf-8").read()


def main(repo):
    files = dict(sources(repo))
    found = set()  # (program, section, key)
    problems = []
    handlers = 0
    for path, text in files.items():
        for m in HANDLER.finditer(text):
            handlers += 1
            hname = m.group(1)
            body = body_of(text, m.start())
            pairs = []
            pairs += KEY_MACRO.findall(body)
            # strcmp(name, ...) under the latest strcmp(section, "...") seen before it.
            dynamic = bool(SECTION_VAR.search(body))
            events = [(x.start(), "s", x.group(1)) for x in SECTION_LIT.finditer(body)]
            events += [(x.start(), "n", x.group(1)) for x in NAME_LIT.finditer(body)]
            cur = None
            for _, kind, val in sorted(events):
                if kind == "s":
                    cur = val
                elif dynamic:
                    pairs.append((None, val))
                elif cur is not None:
                    pairs.append((cur, val))
            if dynamic and not any(k for s, k in pairs if s is None):
                # No strcmp(name, ...): the column mapping, whose keys are a table.
                t = re.search(r"COL_KEYS\[[^]]*\] = \{([^}]*)\}", text)
                if t:
                    pairs += [(None, k) for k in re.findall(r'"(\w+)"', t.group(1))]
            if not pairs:
                problems.append(f"{path}: handler {hname}: no keys extracted (did its pattern change?)")
                continue
            if not dynamic:
                # Sections are literals: the program is where the handler lives.
                prog = "aggregator" if path.startswith("aggregator/") else "agent"
                found.update((prog, sec, k) for sec, k in pairs)
                continue
            # The section comes from the callers of the loader that passes this handler to
            # ini_parse*(..., handler, ...).
            loader_names = set()
            for lm in re.finditer(r"^\w[^\n;]*?\b(\w+)\(([^)]*)\) \{", text, re.M):
                lb = body_of(text, lm.start())
                if re.search(r"ini_parse\w*\([^;]*\b" + hname + r"\b", lb):
                    loader_names.add(lm.group(1))
            callers = []  # (path, section literal or None)
            for ln in loader_names:
                for p2, t2 in files.items():
                    for cm in re.finditer(r"\b" + ln + r"\(([^;]*?)\)", t2):
                        if p2 == path and re.match(r"^\w[^\n;]*\b" + ln + r"\(", t2[t2.rfind("\n", 0, cm.start()) + 1:]):
                            continue  # the definition itself
                        lit = re.search(r'"([\w.-]+)"', cm.group(1))
                        callers.append((p2, lit.group(1) if lit else None))
            if not callers:
                problems.append(f"{path}: handler {hname}: no caller of its loader {sorted(loader_names)}")
                continue
            for cpath, csec in callers:
                prog = "aggregator" if cpath.startswith("aggregator/") else "agent"
                for s, k in pairs:
                    sec = s if s is not None else csec
                    if sec is None:
                        problems.append(f"{path}: handler {hname}: section of key {k} unknown (caller {cpath})")
                        continue
                    found.add((prog, sec, k))

    documented = set()
    prog = None
    doc = os.path.join(repo, "docs", "configuration.md")
    for line in open(doc, encoding="utf-8"):
        h = re.match(r"^## storefl-(agent|aggregator)\b", line)
        if h:
            prog = h.group(1)
            continue
        if line.startswith("## "):
            prog = None
        r = re.match(r"^\| \[([\w.-]+)\] \| `([\w.-]+)` \|", line)
        if r and prog:
            documented.add((prog, r.group(1), r.group(2)))

    missing = sorted(found - documented)
    stale = sorted(documented - found)
    for p, s, k in missing:
        problems.append(f"not documented in docs/configuration.md: {p} [{s}] {k}")
    for p, s, k in stale:
        problems.append(f"documented but not parsed by any loader: {p} [{s}] {k}")
    if handlers < 6 or len(found) < 100:
        problems.append(f"only {handlers} handlers / {len(found)} keys found: the extraction is broken")
    for p in problems:
        print(p)
    print(f"{handlers} INI handlers, {len(found)} (program, section, key) pairs parsed, {len(documented)} documented")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
