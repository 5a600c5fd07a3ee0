"""BENCHMARKS.md sections shared by the benchmark scripts: each script owns one `## ` section."""
import os
import re


def write_section(path, section, title):
    """Replaces the section that starts with `title` (up to the next `## ` heading) in `path`, or appends it."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(r"^" + re.escape(title) + r"\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as fh:
        fh.write(text.rstrip("\n") + "\n")
