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
        if p.parent.name not in ("kd_study", "kd_study_long", "kd_study_xlong", "kd_study_outact-none", "kd_study_bf16"):
            assert f"`{p.name}`" in readme, f"results/README.md does not list {p.parent.name}/{p.name}"


RESULTS = ROOT / "results"
_CMD = ("command",)
# Results files that may still lack something: file under results/ -> (keys it may lack, why). The command of each is in
# results/README.md. Regenerating a file with its writer fixed (or `tools/restate_command.py`) makes its entry stale, and
# the test then asks for the entry to be removed, so this list only ever shrinks. It is empty now: every file names the
# command that wrote it.
RESULTS_EXEMPT = {}


def test_results_files_have_schema_and_command():
    "Every results/**/*.json has the keys of results.make_results and a top-level `command`, except the listed files."
    from kdd_semnoma.results import RESULT_KEYS
    files = sorted(p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*.json"))
    bad, stale = [], [f"{f} (no such file)" for f in RESULTS_EXEMPT if f not in files]
    for f in files:
        d = json.loads((RESULTS / f).read_text())
        d = d if isinstance(d, dict) else {}
        lacks = [k for k in RESULT_KEYS if k not in d] + ([] if isinstance(d.get("command"), str) and d["command"] else ["command"])
        allowed = RESULTS_EXEMPT.get(f, ((), ""))[0]
        if extra := [k for k in lacks if k not in allowed]: bad.append(f"{f} lacks {extra}")
        if has := [k for k in allowed if k not in lacks]: stale.append(f"{f} now has {has}")
    assert not bad, ("results files not in the schema of results.save_results (keys " + ", ".join(RESULT_KEYS) +
                     ", plus a `command` field naming the command that wrote the file):\n  " + "\n  ".join(bad))
    assert not stale, "stale entries in RESULTS_EXEMPT (tests/test_layout.py): remove them:\n  " + "\n  ".join(stale)


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


def test_restate_command_adds_only_the_command(tmp_path):
    "tools/restate_command.py adds `command` + `command_note`, keeps every other value, and refuses a file that has one."
    import subprocess, sys
    f = tmp_path / "r.json"
    old = {"name": "x", "description": "", "config": {}, "seed": 0, "data": "", "conventions": {},
           "results": {"snr_db": [0.0], "psnr": [20.123456789]}, "records": []}
    f.write_text(json.dumps(old))
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "tools" / "restate_command.py"), str(f), *a],
                                    capture_output=True, text=True)
    r = run("--command", "kdd_eval --checkpoint best.pt", "--note", "recorded afterwards")
    assert r.returncode == 0, r.stderr
    new = json.loads(f.read_text())
    assert new.pop("command") == "kdd_eval --checkpoint best.pt" and new.pop("command_note") == "recorded afterwards"
    assert new == old
    r = run("--command", "other", "--note", "again")
    assert r.returncode != 0 and "already records its command" in r.stderr and "Traceback" not in r.stderr
