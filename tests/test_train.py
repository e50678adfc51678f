"Training contracts: the kdd_train CLI, a short run through train_stage, exact resume, and mismatch errors."
import os, subprocess, sys
from dataclasses import replace
import pytest
import torch
from kdd_semnoma.semnoma import read_checkpoint
from kdd_semnoma.train import (train_config, train_stage, load_model, fit, build_model, TrainConfig,
                               check_resumable)
from kdd_semnoma.data import get_dls
from kdd_semnoma.core import set_seed

CLI = "import sys; from kdd_semnoma.train import kdd_train; sys.exit(kdd_train())"


def _cli(args, tmp_path, timeout=300):
    script = tmp_path / "kdd_train_cli.py"; script.write_text(CLI)         # a __main__ module, like the console script
    env = dict(os.environ, KDD_SEMNOMA_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_help(tmp_path):
    r = _cli(["--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    for opt in ("stage", "--preset", "--data_path", "--max_steps", "--teacher", "--resume", "--out_dir"):
        assert opt in r.stdout


def test_cli_one_step_and_resume(tmp_path):
    out = tmp_path / "run"
    r = _cli(["teacher", "--preset", "tiny", "--data", "tiles", "--max_steps", "1", "--out_dir", str(out), "--device", "cpu", "--quiet"],
             tmp_path)
    assert r.returncode == 0, r.stderr
    assert "teacher: 1 steps" in r.stdout
    assert read_checkpoint(out / "last.pt")["step"] == 1
    r = _cli(["teacher", "--preset", "tiny", "--max_steps", "2", "--out_dir", str(out), "--device", "cpu", "--quiet", "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(out / "last.pt")["step"] == 2


def test_train_stage_writes_checkpoints(tmp_path):
    cfg = train_config("teacher", "tiny", max_steps=2, val_every=1)
    res = train_stage(cfg, data="tiles", out_dir=tmp_path, show_progress=False, device="cpu")
    assert [h["step"] for h in res.history] == [1, 2]
    ck = read_checkpoint(tmp_path / "last.pt")
    assert ck["step"] == 2 and TrainConfig(**ck["train_config"]) == cfg and "optimizer" in ck and "rng" in ck
    assert ck["kind"] == "teacher" and ck["version"]
    m = load_model(tmp_path / "best.pt")
    x = torch.rand(2, 2, 3, 32, 32)
    assert m(x, torch.tensor([5., 15.])).x_hat.shape == x.shape


def test_resume_is_exact(tmp_path):
    dls = get_dls("tiles", 2, 4, seed=0)
    cfg = train_config("teacher", "tiny", max_steps=2, val_every=1)
    def run(d, steps, resume=False):
        set_seed(7); m = build_model(cfg)
        h = fit(m, dls, replace(cfg, max_steps=steps), out_dir=d, resume=resume, show_progress=False)
        return m, h
    m1, h1 = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    torch.manual_seed(999)                                    # the checkpoint restores the RNG state
    m2, h2 = run(tmp_path / "b", 2, resume=True)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    drop = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]
    assert drop(h1) == drop(h2)


def test_resume_mismatch_errors(tmp_path):
    train_stage(train_config("teacher", "tiny", max_steps=1), out_dir=tmp_path, show_progress=False, device="cpu")
    with pytest.raises(ValueError, match="preset: checkpoint 'tiny' vs now 'cpu-small'"):
        check_resumable(read_checkpoint(tmp_path / "last.pt"), train_config("teacher", "cpu-small"), tmp_path / "last.pt")
    with pytest.raises(ValueError, match="n_users: checkpoint 2 vs now 3"):
        train_stage(train_config("teacher", "tiny", max_steps=2, n_users=3), out_dir=tmp_path, resume=True,
                    show_progress=False, device="cpu")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_stage(train_config("teacher", "tiny"), out_dir=tmp_path / "empty", resume=True, show_progress=False, device="cpu")


def test_student_needs_matching_teacher(tmp_path):
    train_stage(train_config("teacher", "tiny", max_steps=1), out_dir=tmp_path / "t", show_progress=False, device="cpu")
    with pytest.raises(ValueError, match="n_users=2 but this run uses n_users=3"):
        train_stage(train_config("student", "tiny", n_users=3), out_dir=tmp_path / "s", teacher=tmp_path / "t" / "best.pt",
                    show_progress=False, device="cpu")
    with pytest.raises(ValueError, match="--teacher"):
        train_stage(train_config("student", "tiny"), out_dir=tmp_path / "s", show_progress=False, device="cpu")
    res = train_stage(train_config("student", "tiny", max_steps=1, val_every=1), out_dir=tmp_path / "s",
                      teacher=tmp_path / "t" / "best.pt", show_progress=False, device="cpu")
    assert {"train_l1", "train_fa", "train_crosskd"} <= set(res.history[-1])
    res = train_stage(train_config("student", "tiny", max_steps=2, val_every=1), out_dir=tmp_path / "s", resume=True,
                      show_progress=False, device="cpu")              # resume finds its teacher in last.pt
    assert [h["step"] for h in res.history] == [1, 2]


@pytest.mark.cuda
def test_train_step_cuda_bf16(tmp_path):
    res = train_stage(train_config("teacher", "tiny", max_steps=2), out_dir=tmp_path, show_progress=False, device="cuda")
    assert res.history and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in res.history)


@pytest.mark.parametrize("kind", ["deepjscc-noma", "oma", "single", "sic"])
def test_baselines_train_with_the_same_loop(tmp_path, kind):
    cfg = train_config("baseline", "tiny", baseline=kind, max_steps=1, val_every=1)
    res = train_stage(cfg, data="tiles", out_dir=tmp_path, show_progress=False, device="cpu")
    assert set(k for k in res.history[-1] if k.startswith("train_")) == {"train_loss", "train_l1"}
    assert load_model(tmp_path / "best.pt").kind == kind
