#!/usr/bin/env python3
"""Render nbs/index.ipynb to README.md: markdown as is, code in ```python blocks, text outputs below.

nbdev's own `nbdev_readme` needs Quarto, which is not installable offline; this does the same job for the
README only. Usage: python tools/make_readme.py [--no-exec]
"""
import sys
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell

root = Path(__file__).resolve().parents[1]
nb = read_nb(root / 'nbs' / 'index.ipynb')
if '--no-exec' not in sys.argv:
    sh = CaptureShell(); sh.run_all(nb, exc_stop=True)
out = []
for c in nb.cells:
    src = ''.join(c.source) if isinstance(c.source, list) else c.source
    if src.lstrip().startswith('#|'): continue
    if c.cell_type == 'markdown': out.append(src)
    else:
        out.append(f'```python\n{src}\n```')
        txt = ''.join(''.join(o.get('text', '')) if o.get('output_type') == 'stream'
                      else ''.join(o.get('data', {}).get('text/plain', '')) for o in c.get('outputs', []))
        if txt.strip(): out.append('    ' + txt.strip().replace('\n', '\n    '))
(root / 'README.md').write_text('<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook -->\n\n'
                                + '\n\n'.join(out) + '\n')
print('wrote README.md')
