"""Writes each ```julia block of a Markdown file that declares a layer to OUT/snippetN.moe."""
import pathlib
import re
import sys

text = pathlib.Path(sys.argv[1]).read_text(encoding="utf-8")
out = pathlib.Path(sys.argv[2])
blocks = re.findall(r"```julia\n(.*?)```", text, flags=re.S)
n = 0
for block in blocks:
    if re.search(r"^layer ", block, flags=re.M):
        (out / f"snippet{n}.moe").write_text(block, encoding="utf-8")
        n += 1
