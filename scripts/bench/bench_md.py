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


def publish(result, out_dir, name, section, markdown, title, log):
    """Writes a benchmark's result as OUT/NAME.json, prints its section, and puts it into `markdown` if given."""
    import json
    path = os.path.join(out_dir, name + ".json")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)
    log(f"wrote {path}")
    print(section)
    if markdown:
        write_section(markdown, section, title)
        log(f"wrote the section into {markdown}")
