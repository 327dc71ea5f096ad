"""Writes each ```julia block of a Markdown file that declares a layer to OUT/snippetN.moe;
with --lang LANG, writes the first ```LANG block (indented in a list or not) to the file OUT."""
import pathlib
import re
import sys

if sys.argv[1] == "--lang":
    lang, source, target = sys.argv[2], sys.argv[3], sys.argv[4]
    text = pathlib.Path(source).read_text(encoding="utf-8")
    match = re.search(r"^( *)```" + re.escape(lang) + r"\n(.*?)^ *```", text, flags=re.S | re.M)
    if not match:
        sys.exit(f"no ```{lang} block in {source}")
    indent = match.group(1)
    lines = [l[len(indent):] if l.startswith(indent) else l for l in match.group(2).splitlines()]
    pathlib.Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.exit(0)

text = pathlib.Path(sys.argv[1]).read_text(encoding="utf-8")
out = pathlib.Path(sys.argv[2])
blocks = re.findall(r"```julia\n(.*?)```", text, flags=re.S)
n = 0
for block in blocks:
    if re.search(r"^layer ", block, flags=re.M):
        (out / f"snippet{n}.moe").write_text(block, encoding="utf-8")
        n += 1
