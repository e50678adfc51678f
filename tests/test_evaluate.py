"""Evaluation contracts: the kdd_eval / kdd_plot (evaluate) and kdd_quickstart (quickstart) commands end to end,
seeded sweeps, and bad input."""
import json, os, subprocess, sys
import pytest
import torch
from kdd_semnoma.evaluate import evaluate, eval_results, plot_results, channel_config
from kdd_semnoma.semnoma import make_model
from kdd_semnoma.deepjscc import get_config
from kdd_semnoma.train import train_config, train_stage
from kdd_semnoma.results import load_results


def _cli(fn, args, tmp_path, timeout=600, module="evaluate"):
    "Run a console-script function in a fresh interpreter, exactly as the installed entry point does."
    script = tmp_path / f"{fn}_cli.py"
    script.write_text(f"import sys; from kdd_semnoma.{module} import {fn}; sys.exit({fn}())")
    env = dict(os.environ, KDD_SEMNOMA_HOME=str(tmp_path / "home"), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    train_stage(train_config("teacher", "tiny", max_steps=2), data="tiles", out_dir=d, show_progress=False, device="cpu")
    return d / "best.pt"


def test_kdd_eval_and_plot_cli(teacher_ckpt, tmp_path):
    r = _cli("kdd_eval", ["--checkpoint", str(teacher_ckpt), "--data", "tiles", "--snrs", "0:20:10",
                          "--out", str(tmp_path / "t.json"), "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| snr_db |" in r.stdout and "psnr_min_user" in r.stdout
    res = load_results(tmp_path / "t.json")
    assert res["results"]["snr_db"] == [0.0, 10.0, 20.0]
    assert res["config"]["train_config"]["stage"] == "teacher" and res["seed"] == 0
    r = _cli("kdd_eval", ["--checkpoint", str(teacher_ckpt), "--data", "tiles", "--snrs", "0,20", "--channel", "rayleigh",
                          "--out", str(tmp_path / "r.json"), "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fading rayleigh" in load_results(tmp_path / "r.json")["conventions"]["channel"]
    r = _cli("kdd_plot", [str(tmp_path / "t.json"), str(tmp_path / "r.json"), "--metric", "ssim", "--per_user",
                          "--out", str(tmp_path / "plot.png")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_kdd_eval_default_name_says_the_channel_once(tmp_path):
    "zoo:kd-semnoma-cifar10-awgn on its own channel writes results/kd-semnoma-cifar10-awgn.json, not ...-awgn-awgn.json."
    r = _cli("kdd_eval", ["--checkpoint", "zoo:kd-semnoma-cifar10-awgn", "--data", "tiles", "--snrs", "10", "--max_groups", "2",
                          "--classifier", "none", "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["kd-semnoma-cifar10-awgn.json"]
    assert "SNR points" not in r.stderr                                   # not a terminal: no progress bar


def test_kdd_eval_errors(teacher_ckpt, tmp_path):
    r = _cli("kdd_eval", ["--checkpoint", str(tmp_path / "missing.pt"), "--data", "tiles"], tmp_path)
    assert r.returncode != 0 and "no checkpoint at" in r.stderr
    r = _cli("kdd_eval", ["--checkpoint", str(teacher_ckpt), "--data", "tiles", "--channel", "awgnn"], tmp_path)
    assert r.returncode != 0 and "channel must be one of" in r.stderr
    r = _cli("kdd_eval", ["--checkpoint", str(teacher_ckpt), "--data", "tiles", "--snrs", "0:200:50"], tmp_path)
    assert r.returncode != 0 and "dB" in r.stderr
    r = _cli("kdd_plot", [str(tmp_path / "none.json")], tmp_path)
    assert r.returncode != 0 and "no results file" in r.stderr


def test_kdd_quickstart_cli_smoke(tmp_path):
    out = tmp_path / "qs"
    r = _cli("kdd_quickstart", ["--train", "--data", "tiles", "--preset", "tiny", "--teacher_steps", "2", "--student_steps", "1",
                                "--batch_size", "4", "--out_dir", str(out), "--device", "cpu", "--quiet",
                                "--separation", "results/none.json"], tmp_path, module="quickstart")
    assert r.returncode == 0, r.stderr
    assert "not plotting" in r.stdout and "KD-SemNOMA" in r.stdout
    for k in ("kd", "nokd", "oma", "teacher"):
        assert load_results(out / f"eval_{k}.json")["results"]["snr_db"] == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert json.loads((out / "kd_gain.json").read_text())["results"]["gain_db"]
    assert (out / "quickstart.png").stat().st_size > 1000


@pytest.mark.parametrize("k", [2, 3, 4])
def test_evaluate_any_k_and_seeded(k):
    torch.manual_seed(0)
    m = make_model("semnoma", get_config("tiny", n_users=k))
    x = torch.rand(5, k, 3, 32, 32)
    a = evaluate(m, x, [0.0, 10.0], channel="rayleigh", batch_size=2)
    assert a == evaluate(m, x, [0.0, 10.0], channel="rayleigh", batch_size=2)
    assert {r["user"] for r in a} == set(range(k)) | {-1}
    assert all(1 / k - 1e-9 <= r["value"] <= 1 + 1e-9 for r in a if r["metric"] == "jain_psnr")


def test_evaluate_bad_input():
    m = make_model("semnoma", get_config("tiny"))
    x = torch.rand(3, 2, 3, 32, 32)
    with pytest.raises(ValueError, match="NaN"):
        evaluate(m, x.masked_fill(x > 0.9, float("nan")), [10.0])
    with pytest.raises(ValueError, match="n_users=2"):
        evaluate(m, torch.rand(3, 3, 3, 32, 32), [10.0])
    with pytest.raises(ValueError, match="dB"):
        evaluate(m, x, [100.0])
    with pytest.raises(ValueError, match="empty"):
        evaluate(m, x[:0], [10.0])
    with pytest.raises(ValueError, match="channel must be one of"):
        channel_config(m, "wifi")
    with pytest.raises(ValueError, match="skip_missing"):
        plot_results(eval_results("x", evaluate(m, x, [10.0]), m), "fid")


@pytest.mark.data
def test_evaluate_real_cifar10_pairs(real_data):
    "The fixed pixel-exact CIFAR-10 test pairs: same numbers on two runs, and the first groups are the first images."
    from kdd_semnoma.data import get_dls, cifar10_from_npz
    test = get_dls("cifar10-npz", 2, 16, root=real_data / "cifar10", seed=0).test
    torch.manual_seed(0)
    m = make_model("semnoma", get_config("tiny"))
    a = evaluate(m, test, [0.0, 20.0], max_groups=20)
    assert a == evaluate(m, test, [0.0, 20.0], max_groups=20)
    assert all(r["n"] == 20 for r in a)
    assert len(test.dataset) == 466 and len(cifar10_from_npz("test-exact", real_data / "cifar10")) == 932


def test_kdd_eval_flags_small_sample_distances(tmp_path):
    "FID-CN / KID-CN on a few images per user (the tiles' 6 test groups): the records carry the flag, kdd_eval says so in one line."
    r = _cli("kdd_eval", ["--checkpoint", "zoo:kd-semnoma-cifar10-awgn", "--data", "tiles", "--snrs", "10", "--max_groups", "16",
                          "--classifier", "zoo:cifarnet-cifar10",
                          "--device", "cpu", "--out", str(tmp_path / "e.json")], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    warn = [ln for ln in r.stderr.splitlines() if "warning" in ln.lower()]
    recs = load_results(tmp_path / "e.json")["records"]
    dist = [x for x in recs if x["metric"].startswith(("fid_", "kid_"))]
    n = dist[0]["n"]
    assert len(warn) == 1 and warn[0].startswith("kdd_eval: warning: small sample") and f"n={n} <" in warn[0], r.stderr[-2000:]
    assert n < 16 and all(f"n={n} <" in x["flag"] for x in dist)
    assert not any("flag" in x for x in recs if x["metric"] in ("psnr", "sem_acc"))
