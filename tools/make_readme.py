#!/usr/bin/env python3
"""Render nbs/index.ipynb to README.md: markdown as is, code in ```python blocks, text outputs below.

Cell directives understood (as in Quarto/nbdev): `#| hide` drops the cell, `#| echo: false` drops its source,
`#| output: asis` emits its printed output as markdown. Links relative to nbs/ (`](images/...`, `](../results/...`)
are rewritten relative to the repository root. nbdev's own `nbdev_readme` needs Quarto, which is not installable
offline; this does the same job for the README only. Usage: python tools/make_readme.py [--no-exec]
"""
import os, re, sys
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell

root = Path(__file__).resolve().parents[1]
nb = read_nb(root / 'nbs' / 'index.ipynb')
if '--no-exec' not in sys.argv:
    os.chdir(root / 'nbs')                                   # as nbdev_test runs it: relative paths from nbs/
    sh = CaptureShell(); sh.run_all(nb, exc_stop=True)


def directives(src: str) -> tuple:  # ({key: value}, source without directive lines)
    lines = src.splitlines(); opts = {}
    while lines and lines[0].startswith('#|'):
        k, _, v = lines.pop(0)[2:].partition(':'); opts[k.strip()] = v.strip() or True
    return opts, '\n'.join(lines)


def output_text(c) -> str:
    return ''.join(''.join(o.get('text', '')) if o.get('output_type') == 'stream'
                   else ''.join(o.get('data', {}).get('text/plain', '')) for o in c.get('outputs', []))


def from_root(md: str) -> str:
    "Links relative to nbs/ (images, ../, notebooks) rewritten relative to the repository root."
    md = md.replace('](images/', '](nbs/images/').replace('](../', '](')
    return re.sub(r'\]\(((?:\d\w*|index)\.ipynb)\)', r'](nbs/\1)', md)


out = []
for c in nb.cells:
    src = ''.join(c.source) if isinstance(c.source, list) else c.source
    if c.cell_type == 'markdown': out.append(from_root(src)); continue
    opts, code = directives(src)
    if 'hide' in opts or 'default_exp' in opts: continue
    if opts.get('echo') != 'false' and code.strip(): out.append(f'```python\n{code}\n```')
    txt = output_text(c).strip()
    if not txt: continue
    out.append(from_root(txt) if opts.get('output') == 'asis' else '    ' + txt.replace('\n', '\n    '))
(root / 'README.md').write_text('<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook -->\n\n'
                                + '\n\n'.join(out) + '\n')
print('wrote README.md')
