"""Preemption and run-folder safety: a stop signal checkpoints the step it arrives in and exits 128 + signum with a
resume line, --resume then reaches the uninterrupted run's weights; one trainer per run folder (.lock); a full disk
keeps the previous file and reads as one line."""
import errno, json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from kdd_semnoma.core import atomic_write, run_lock, read_lock, LOCK_NAME
import kdd_semnoma.core as core

CLI = "import sys; from kdd_semnoma.train import kdd_train; sys.exit(kdd_train())"
BASE = ["teacher", "--preset", "tiny", "--data", "tiles", "--device", "cpu", "--quiet", "--precision", "fp32"]


def _script(tmp_path, prelude=""):
    script = tmp_path / "kdd_train_cli.py"                       # a __main__ module, like the console script
    script.write_text(prelude + CLI)
    return [sys.executable, str(script)]


def _env(tmp_path):
    return dict(os.environ, KDD_SEMNOMA_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")


def _run(args, tmp_path, prelude="", timeout=300):
    return subprocess.run(_script(tmp_path, prelude) + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=_env(tmp_path))


def _step(path):
    return torch.load(path, weights_only=True, map_location="cpu")["step"]


def _stop_midway(out, tmp_path, sig):
    "Start a 400-step run, wait until it has checkpointed (step 2, tiny's first validation), send `sig`; (result, step then)."
    p = subprocess.Popen(_script(tmp_path) + BASE + ["--epochs", "100", "--max_steps", "400", "--out_dir", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    t0 = time.time()
    while not (out / "last.pt").exists():
        assert p.poll() is None and time.time() - t0 < 240, p.communicate()
        time.sleep(0.1)
    seen = _step(out / "last.pt")
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=240)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr), seen


def test_sigterm_checkpoints_and_resume_is_exact(tmp_path):
    out = tmp_path / "a"
    r, seen = _stop_midway(out, tmp_path, signal.SIGTERM)
    assert r.returncode == 143, (r.returncode, r.stderr[-2000:])
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    step = _step(out / "last.pt")
    assert seen <= step < 400
    assert lines[0].startswith(f"kdd_train: stopped by SIGTERM after step {step}; checkpoint saved to {out / 'last.pt'}; "
                               "resume with: kdd_train teacher --preset tiny"), lines[0]
    assert lines[0].endswith(" --resume") and "Traceback" not in r.stderr
    assert not (out / LOCK_NAME).exists()                                  # the lock went with the process
    n = step + 2                                                           # resume a little further, not all 400 steps
    r = _run(BASE + ["--epochs", "100", "--max_steps", n, "--out_dir", out, "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(BASE + ["--epochs", "100", "--max_steps", n, "--out_dir", tmp_path / "b"], tmp_path)   # never stopped
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = (torch.load(d / "last.pt", weights_only=True) for d in (out, tmp_path / "b"))
    assert a["step"] == b["step"] == n
    for k, v in b["model"].items(): assert torch.equal(a["model"][k], v), k
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg"], b["optimizer"]["state"][0]["exp_avg"])
    drop = lambda h: [{k: v for k, v in rec.items() if k != "time_s"} for rec in h]
    assert drop(a["history"]) == drop(b["history"])


def test_sigusr1_exits_138(tmp_path):
    r, _ = _stop_midway(tmp_path / "a", tmp_path, signal.SIGUSR1)
    assert r.returncode == 138, r.stderr[-2000:]
    assert r.stderr.startswith("kdd_train: stopped by SIGUSR1 after step ") and r.stderr.count("\n") == 1


def test_a_live_lock_refuses_a_second_trainer(tmp_path):
    out = tmp_path / "run"; out.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "now"}))
        r = _run(BASE + ["--max_steps", 1, "--out_dir", out], tmp_path)
    finally:
        holder.kill(); holder.wait()
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr[-2000:]
    for phrase in (f"PID {holder.pid} on host {socket.gethostname()}", "--out_dir", "in use by another run"):
        assert phrase in lines[0], lines[0]
    assert not (out / "last.pt").exists() and read_lock(out / LOCK_NAME)["pid"] == holder.pid   # not touched


def test_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"; out.mkdir()
    dead = subprocess.Popen(["true"]); dead.wait()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}))
    r = _run(BASE + ["--max_steps", 1, "--out_dir", out], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"taking over {out / LOCK_NAME}, left by PID {dead.pid}" in r.stderr
    assert _step(out / "last.pt") == 1 and not (out / LOCK_NAME).exists()


def test_lock_from_another_host_is_reported(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(RuntimeError, match="PID 1 on host elsewhere"):
        with run_lock(tmp_path): pass


def test_lock_released_on_error(tmp_path):
    with pytest.raises(ValueError):
        with run_lock(tmp_path): raise ValueError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    p = atomic_write(tmp_path / "last.pt", lambda t: Path(t).write_text("old"))
    def enospc(t): Path(t).write_text("half"); raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match=f"could not write {p}: no space left on device") as e:
        atomic_write(p, enospc)
    assert e.value.errno == errno.ENOSPC
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["last.pt"]
    # torch.save on a full disk raises a RuntimeError about stream positions: read as a full disk too
    monkeypatch.setattr(core, "disk_free", lambda folder: 0)
    def torch_full(t): Path(t).write_bytes(b"x"); raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")
    with pytest.raises(OSError, match="no space left on device"): atomic_write(p, torch_full)
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_full_disk_in_kdd_train_is_one_line(tmp_path):
    prelude = ("import errno, torch\n"
               "def full(obj, f, *a, **k): open(f, 'wb').write(b'x'); raise OSError(errno.ENOSPC, 'No space left on device')\n"
               "torch.save = full\n")
    out = tmp_path / "run"
    r = _run(BASE + ["--max_steps", 2, "--out_dir", out], tmp_path, prelude=prelude)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith(f"kdd_train: error: could not write {out}/") and "no space left on device" in lines[0], lines[0]
    assert sorted(os.listdir(out)) == []                                   # no temp file, no lock left behind


DDP_SCRIPT = '''
import os, signal, sys
import kdd_semnoma.train as T
from kdd_semnoma.core import cli_errors
step_fn = T.train_step
def train_step(*a, **k):                                               # only rank 1 is signalled, during step 3
    if k.get('rank') == 1 and k['step'] == 2: os.kill(os.getpid(), signal.SIGTERM)
    return step_fn(*a, **k)
T.train_step = train_step
with cli_errors('ddp_train'):
    dev = T.init_distributed('cpu')
    cfg = T.train_config('teacher', 'tiny', max_steps=400, epochs=100, batch_size=8, val_every=2, val_groups=8, precision='fp32')
    T.train_stage(cfg, data='tiles', out_dir=sys.argv[1], device=dev, show_progress=False)
'''


def test_ddp_ranks_agree_on_a_stop(tmp_path):
    "SIGTERM reaching rank 1 alone stops both gloo ranks after the same step; rank 0 saves it and prints the one line."
    script = tmp_path / "ddp_stop.py"; script.write_text(DDP_SCRIPT)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                        str(tmp_path / "run")], capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "exitcode  : 143" in out, out[-3000:]
    assert out.count("ddp_train: stopped by SIGTERM after step 3; checkpoint saved to") == 1, out[-3000:]
    assert _step(tmp_path / "run" / "last.pt") == 3 and not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_second_signal_exits_at_once():
    from kdd_semnoma.core import graceful_stop
    with pytest.raises(SystemExit) as e:
        with graceful_stop() as stop:
            os.kill(os.getpid(), signal.SIGUSR1); time.sleep(0.05)
            assert stop.signum == signal.SIGUSR1                            # the first one only sets the flag
            os.kill(os.getpid(), signal.SIGUSR1); time.sleep(0.05)
    assert e.value.code == 138 and signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_cli_errors_phrases_any_enospc(capsys):
    from kdd_semnoma.core import cli_errors
    with pytest.raises(SystemExit) as e:
        with cli_errors("kdd_eval"): raise OSError(errno.ENOSPC, "No space left on device", "results/x.json")
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1
    assert err.startswith("kdd_eval: error: no space left on device writing results/x.json")
