#!/usr/bin/env python3
"""Execute notebooks in place so that the committed notebooks show their figures and printed results.

Cells flagged with a test flag that is not forced (`#| slow`, `#| cuda`, `#| download`; `#| data` runs when
$KDD_SEMNOMA_DATA is set) and `#| eval: false` cells are skipped, exactly as nbdev_test skips them; the export
cell is skipped. Each notebook runs in a fresh kernel from nbs/ and stops at the first error (the file is then
left untouched). Run `nbdev_clean` afterwards (the command below does).

    KDD_SEMNOMA_DATA=../shared/data python tools/run_notebooks.py [nbs/01_channel.ipynb ...] && nbdev_clean
"""
import os, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]
SKIP = {'slow', 'cuda', 'download'} | (set() if os.environ.get('KDD_SEMNOMA_DATA') else {'data'})
SKIP -= set(os.environ.get('KDD_TEST_FLAGS', '').split())


def skip(cell) -> bool:
    if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
    flags = set(re.findall(r'^#\|\s*(\w+)\s*$', cell.source, re.M))
    return bool(flags & SKIP) or bool(re.search(r'^#\|\s*eval:\s*false', cell.source, re.M))


def run(path: Path) -> None:
    nb = read_nb(path)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    os.chdir(ROOT / 'nbs'); os.environ.setdefault('MPLBACKEND', 'Agg')
    CaptureShell(mpl_format='png').run_all(nb, exc_stop=True, preproc=skip)
    write_nb(nb, path)
    print(f'executed {path.name}')


if __name__ == '__main__':
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / 'nbs').glob('[0-9]*.ipynb')) + [ROOT / 'nbs' / 'index.ipynb']
    for p in paths: run(p)
