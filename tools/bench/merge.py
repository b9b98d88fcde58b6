#!/usr/bin/env python3
"""Merges a partial benchmark run into BENCHMARKS.md, for tools/bench/run.sh NAME...

  merge.py OLD NEW OUT

OLD is the BENCHMARKS.md of the last run, NEW what run.sh wrote for the scripts it ran
(machine section, one "## NAME" section per script, Load, Charts). OUT gets OLD with:
  - each "## NAME" section of NEW in place of OLD's section of that name, or added before
    OLD's "## Where lb loses, and why" / "## Load" / "## Charts" when OLD has none;
  - a line in the machine section naming the sections re-run, their date, commit and load;
  - the chart lines of NEW added to OLD's "## Charts" section (those already there kept).
The other sections of OLD stay as they were, with their own dates: a reader sees which
figures come from which run.
"""
import re
import sys

TAIL = ("## Where lb loses, and why", "## Load", "## Charts")


def sections(text):
    """[(title, lines)] with the text before the first "## " as title None."""
    out, title, cur = [], None, []
    for line in text.splitlines():
        if line.startswith("## "):
            out.append((title, cur))
            title, cur = line, []
        else:
            cur.append(line)
    out.append((title, cur))
    return out


def main():
    old_path, new_path, out_path = sys.argv[1:4]
    old = sections(open(old_path, encoding="utf-8").read())
    new = sections(open(new_path, encoding="utf-8").read())
    new_map = {t: body for t, body in new if t}
    ran = [t for t, _ in new if t and t not in TAIL and t != "## Machine and run"]
    old_titles = [t for t, _ in old]
    pending = [t for t in ran if t not in old_titles]  # sections OLD did not have
    merged = []
    for title, body in old:
        if title in ran:
            body = new_map[title]
        if title in TAIL and pending:
            merged.extend((t, new_map[t]) for t in pending)  # before the tail
            pending = []
        merged.append((title, body))
    merged.extend((t, new_map[t]) for t in pending)  # OLD had no tail
    # The machine section says what was re-run, and when.
    date = re.search(r"^- Date: (.*)$", "\n".join(new_map.get("## Machine and run", [])), re.M)
    load = "\n".join(new_map.get("## Load", [])).strip()
    names = ", ".join(t[3:] for t in new_map if t not in TAIL and t != "## Machine and run")
    note = "- Re-run since: %s (%s). %s" % (names, date.group(1) if date else "?", load)
    out = []
    for title, body in merged:
        if title == "## Machine and run":
            i = max((k for k, l in enumerate(body) if l.startswith("- ")), default=len(body) - 1)
            body = body[: i + 1] + [note] + body[i + 1 :]
        if title == "## Charts" and "## Charts" in new_map:
            have = set(body)
            for l in new_map["## Charts"]:
                if l.startswith("![") and l not in have:
                    body = body + ["", l]
        if title:
            out.append(title)
        out.extend(body)
    open(out_path, "w", encoding="utf-8").write("\n".join(out).rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
