"""Every kdd_* command answers a user's mistake with one line naming the file or flag and the fix, exit status 1,
no traceback; --debug shows the traceback."""
import os, subprocess, sys
from pathlib import Path
import pytest
import torch
from kdd_semnoma.semnoma import make_model
from kdd_semnoma.deepjscc import get_config

MODULES = {"kdd_eval": "evaluate", "kdd_plot": "evaluate", "kdd_train": "train", "kdd_refine": "diffusion",
           "kdd_quickstart": "quickstart"}


def cli(fn, *args, cwd, env=None):
    env = dict(os.environ, MPLBACKEND="Agg", KDD_SEMNOMA_HOME=str(Path(cwd) / "home"), **(env or {}))
    script = Path(cwd) / f"{fn}_cli.py"                       # as the installed entry point runs it
    script.write_text(f"import sys; from kdd_semnoma.{MODULES[fn]} import {fn}; sys.exit({fn}())")
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def one_line_error(r, fn, *phrases):
    "Exit 1, exactly one stderr line 'fn: error: ...' holding every phrase, and no traceback."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"{fn}: error: "), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    for p in phrases: assert p in lines[0], (p, lines[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    make_model("teacher", get_config("tiny")).save(d / "best.pt", train_config=None)
    ck = torch.load(d / "best.pt", weights_only=True)
    name = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][name] = ck["model"][name] + 1.0                    # weights changed after the checksum was taken
    torch.save(ck, d / "corrupt.pt")
    torch.save([1, 2, 3], d / "list.pt")                           # a torch file, but not a checkpoint
    (d / "empty.pt").touch()
    (d / "notes.txt").write_text("not a checkpoint\n")
    (d / "res.json").write_text('{"name": "x", "results": {"snr_db": [0.0], "psnr": [20.0]}, "records": []}')
    return d


def test_malformed_snr_grid(files):
    r = cli("kdd_eval", "--checkpoint", files / "best.pt", "--data", "tiles", "--snrs", "0:20", cwd=files)
    one_line_error(r, "kdd_eval", "'0:20'", "start:stop:step")


@pytest.mark.parametrize("name,phrase", [("missing.pt", "no checkpoint at"), ("empty.pt", "is empty"),
                                         ("notes.txt", "is not a readable checkpoint"), ("res.json", "is not a readable checkpoint")])
def test_bad_checkpoint_files(files, name, phrase):
    r = cli("kdd_eval", "--checkpoint", files / name, "--data", "tiles", cwd=files)
    one_line_error(r, "kdd_eval", name, phrase, "kdd_train")


def test_corrupt_checkpoint_fails_its_checksum(files):
    r = cli("kdd_eval", "--checkpoint", files / "corrupt.pt", "--data", "tiles", cwd=files)
    one_line_error(r, "kdd_eval", "corrupt.pt", "is corrupt", "checksum")
    r = cli("kdd_eval", "--checkpoint", files / "list.pt", "--data", "tiles", cwd=files)
    one_line_error(r, "kdd_eval", "list.pt", "not a kdd_semnoma checkpoint", "kdd_train")


def test_refine_inputs_check_a_checkpoints_checksum(files):
    "kdd_refine --inputs CKPT loads the file once and still verifies its weights (read_checkpoint(dict, source=path))."
    from kdd_semnoma.diffusion import load_refine_inputs
    from kdd_semnoma.semnoma import read_checkpoint
    with pytest.raises(ValueError, match="corrupt.pt is corrupt"): load_refine_inputs(files / "corrupt.pt", data="tiles")
    ck = torch.load(files / "corrupt.pt", weights_only=True)
    assert read_checkpoint(ck) is ck                               # a dict without a source: no file to vouch for
    with pytest.raises(ValueError, match="checksum"): read_checkpoint(ck, source=files / "corrupt.pt")


def test_checkpoint_checksum_round_trip(tmp_path):
    from kdd_semnoma.semnoma import read_checkpoint, build_from_checkpoint
    from kdd_semnoma.core import weights_checksum
    m = make_model("semnoma", get_config("tiny"))
    m.save(tmp_path / "m.pt")
    ck = read_checkpoint(tmp_path / "m.pt")                       # verified on read
    assert ck["checksum"] == weights_checksum(m.state_dict())
    old = {k: v for k, v in ck.items() if k != "checksum"}       # checkpoints written before checksums still load
    torch.save(old, tmp_path / "old.pt")
    assert build_from_checkpoint(tmp_path / "old.pt").kind == "semnoma"


def test_checkpoint_where_results_are_expected(files):
    r = cli("kdd_plot", files / "best.pt", "--out", files / "p.png", cwd=files)
    one_line_error(r, "kdd_plot", "best.pt", "is not a results JSON", "kdd_eval --checkpoint")


def test_wrong_data_path_names_the_given_path(files):
    r = cli("kdd_eval", "--checkpoint", files / "best.pt", "--data", "cifar10-npz", "--data_path", files / "nowhere", cwd=files)
    one_line_error(r, "kdd_eval", str(files / "nowhere"), "--data_path")


@pytest.mark.parametrize("fn,args", [("kdd_eval", ["--checkpoint", "zoo:kd-semnoma-cifar10-awgn", "--snrs", "10"]),
                                     ("kdd_train", ["teacher", "--preset", "tiny", "--max_steps", "1"]),
                                     ("kdd_train", ["teacher", "--preset", "tiny", "--max_steps", "1", "--data", "tiles"]),
                                     ("kdd_refine", ["--prior", "p", "--inputs", "zoo:kd-semnoma-cifar10-awgn"])])
def test_a_missing_data_path_is_an_error_not_the_tiles(files, fn, args):
    "--data_path that does not exist names the path and the layout; it never falls back to the photo tiles."
    r = cli(fn, *args, "--data_path", files / "nonexistent", cwd=files)
    one_line_error(r, fn, f"--data_path {files / 'nonexistent'} does not exist", "cifar10/train_jpeg_q75.npz", "--data tiles")
    assert "README" not in r.stderr


def test_a_data_path_without_data_is_an_error(files):
    (files / "emptydata").mkdir(exist_ok=True)
    r = cli("kdd_eval", "--checkpoint", files / "best.pt", "--data_path", files / "emptydata", cwd=files)
    one_line_error(r, "kdd_eval", f"--data_path {files / 'emptydata'} holds no data the kit recognises",
                   "cifar10/cifar-10-batches-py/", "--data folder")


def test_a_missing_kdd_semnoma_data_is_an_error(files):
    env = {"KDD_SEMNOMA_DATA": str(files / "gone")}
    r = cli("kdd_eval", "--checkpoint", files / "best.pt", "--snrs", "10", cwd=files, env=env)
    one_line_error(r, "kdd_eval", f"KDD_SEMNOMA_DATA {files / 'gone'} does not exist", "unset KDD_SEMNOMA_DATA")
    r = cli("kdd_quickstart", "--max_groups", "1", cwd=files, env=env)
    one_line_error(r, "kdd_quickstart", f"KDD_SEMNOMA_DATA {files / 'gone'} does not exist")
    r = cli("kdd_eval", "--checkpoint", files / "best.pt", "--data", "cifar10-npz", "--snrs", "10", cwd=files,
            env={"KDD_SEMNOMA_DATA": ""})                                # unset: the message says so
    one_line_error(r, "kdd_eval", "KDD_SEMNOMA_DATA (now unset)", "--data_path")


def test_train_errors(files):
    one_line_error(cli("kdd_train", "teacher", "--preset", "huge", cwd=files), "kdd_train", "unknown training preset")
    one_line_error(cli("kdd_train", "student", "--preset", "tiny", "--data", "tiles", "--out_dir", files / "s", cwd=files),
                   "kdd_train", "--teacher")
    one_line_error(cli("kdd_train", "teacher", "--preset", "tiny", "--init", "teacher", cwd=files), "kdd_train", "--init scratch")


def test_quickstart_and_refine_errors(files):
    one_line_error(cli("kdd_quickstart", "--channel", "fast", "--data", "tiles", cwd=files), "kdd_quickstart", "channel must be one of")
    one_line_error(cli("kdd_refine", "--prior", files / "noprior", "--inputs", files / "best.pt", cwd=files), "kdd_refine", "noprior")


def test_debug_shows_the_traceback(files):
    r = cli("kdd_eval", "--checkpoint", files / "empty.pt", "--data", "tiles", "--debug", cwd=files)
    assert r.returncode != 0 and "Traceback" in r.stderr and "is empty" in r.stderr


@pytest.mark.data
def test_data_path_accepts_the_data_folder_itself(files, real_data):
    r = cli("kdd_eval", "--checkpoint", files / "best.pt", "--data", "cifar10-npz", "--data_path", real_data,
            "--snrs", "10", "--max_groups", "4", "--out", files / "e.json", cwd=files)
    assert r.returncode == 0, r.stderr[-2000:]
    import json                                          # CIFAR-10 data: kdd_eval adds the semantic metrics per user
    res = json.loads((files / "e.json").read_text())
    assert {'sem_acc_user0', 'sem_agree_user1', 'fid_cifarnet', 'kid_cifarnet'} <= set(res['results'])
    assert 'NOT Inception' in res['conventions']['fid_cifarnet']
    bad = cli("kdd_eval", "--checkpoint", files / "best.pt", "--data", "cifar10-npz", "--data_path", real_data,
              "--snrs", "10", "--max_groups", "4", "--classifier", "zoo:nope", "--out", files / "e2.json", cwd=files)
    assert bad.returncode == 1 and "is not a zoo entry" in bad.stderr and bad.stderr.count("\n") == 1
