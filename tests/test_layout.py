"Kit layout contracts: one notebook = one module, imports only from lower numbers, README in sync."
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))

def _src(nb):
    return ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"]]

def _order(stem):  # '00a_testing' -> ('00', 'a')
    m = re.match(r"(\d+)([a-z]?)_", stem); return (int(m.group(1)), m.group(2))

@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_default_exp_matches_stem(nb):
    cells = _src(nb)
    m = re.search(r"#\|\s*default_exp\s+(\S+)", cells[0])
    if m is None: pytest.skip("narrative notebook (exports nothing)")
    assert m.group(1) == nb.stem.split("_", 1)[1], f"{nb.name}: default_exp {m.group(1)} != stem"

@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_imports_only_lower_numbers(nb):
    mods = {p.stem.split("_", 1)[1]: _order(p.stem) for p in NBS}
    me = _order(nb.stem)
    for cell in _src(nb):
        for mod in re.findall(r"from kdd_semnoma\.(\w+) import|import kdd_semnoma\.(\w+)", cell):
            mod = mod[0] or mod[1]
            if mod in mods: assert mods[mod] <= me, f"{nb.name} imports {mod}, which comes later"

def test_exported_modules_exist():
    for nb in NBS:
        m = re.search(r"#\|\s*default_exp\s+(\S+)", _src(nb)[0])
        if m: assert (ROOT / "kdd_semnoma" / f"{m.group(1)}.py").exists(), f"run nbdev_export ({m.group(1)}.py missing)"

def test_readme_generated_from_index():
    readme = (ROOT / "README.md").read_text()
    assert "generated from nbs/index.ipynb" in readme
    for cmd in ["pip install -e", "bash tools/test.sh"]: assert cmd in readme


def test_results_readme_lists_every_file():
    readme = (ROOT / "results" / "README.md").read_text()
    for p in sorted((ROOT / "results").iterdir()):
        if p.name == "README.md": continue
        assert (f"`{p.name}" in readme) or (p.is_dir() and f"`{p.name}/" in readme), f"results/README.md does not list {p.name}"
    for p in sorted((ROOT / "results").glob("*/*")):
        if p.parent.name != "kd_study": assert f"`{p.name}`" in readme, f"results/README.md does not list {p.parent.name}/{p.name}"


OUTPUT_CAP = 400_000      # bytes of one cell output (a small figure is 20-150 kB)
NOTEBOOK_CAP = 3_000_000  # bytes of all outputs of one notebook


@pytest.mark.parametrize("nb", NBS + [ROOT / "nbs" / "index.ipynb"], ids=lambda p: p.stem)
def test_committed_outputs_are_small(nb):
    "Notebooks keep the outputs that teach (figures, printed tables) but no output is large."
    total = 0
    for c in json.loads(nb.read_text())["cells"]:
        for o in c.get("outputs", []):
            n = len(json.dumps(o)); total += n
            assert n <= OUTPUT_CAP, f"{nb.name}: an output of {n} bytes (cap {OUTPUT_CAP}): make the figure smaller"
    assert total <= NOTEBOOK_CAP, f"{nb.name}: {total} bytes of outputs (cap {NOTEBOOK_CAP})"
