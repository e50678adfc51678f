"Diffusion refinement contracts: identity at t0=0, determinism, validation messages, prior save/load, CLI."
import json, os, subprocess, sys
from dataclasses import replace
from pathlib import Path
import numpy as np
import pytest
import torch
from kdd_semnoma.core import make_generator
from kdd_semnoma.testing import tiny_images
from kdd_semnoma.diffusion import (PRIOR_PRESETS, make_unet, make_scheduler, refine, refine_timesteps, save_prior,
                                   load_prior, refine_sweep, refine_results, degrade)
from kdd_semnoma.prior_training import train_prior, prior_loss


@pytest.fixture(scope="module")
def unet():
    return make_unet(PRIOR_PRESETS['tiny'], seed=0).eval()


@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_t0_zero_is_identity(unet, kind):
    x = tiny_images(2, 2)
    assert torch.equal(refine(x, unet, make_scheduler(kind), t0=0, steps=5), x)


@pytest.mark.parametrize("kind,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0)])
def test_fixed_generator_is_deterministic_and_in_range(unet, kind, eta):
    x = tiny_images(1, 2)
    a = refine(x, unet, make_scheduler(kind), t0=50, steps=3, eta=eta, generator=make_generator(3))
    b = refine(x, unet, make_scheduler(kind), t0=50, steps=3, eta=eta, generator=make_generator(3))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_timestep_grid():
    ts = refine_timesteps(make_scheduler('ddim'), 400, 20)
    assert ts[0] == 400 and (ts[:-1] > ts[1:]).all() and 20 <= len(ts) <= 21


@pytest.mark.parametrize("kwargs,msg", [
    (dict(t0=-1, steps=1), "t0 must be an integer in [0, 999]"),
    (dict(t0=1000, steps=1), "t0 must be an integer in [0, 999]"),
    (dict(t0=10, steps=11), "steps must be an integer in [1, t0=10]"),
    (dict(t0=10, steps=0), "steps must be an integer in [1, t0=10]"),
])
def test_validation_messages(unet, kwargs, msg):
    with pytest.raises(ValueError, match=msg.replace('[', r'\[').replace(']', r'\]')):
        refine(tiny_images(1, 1), unet, make_scheduler('ddim'), **kwargs)


def test_wrong_scheduler_and_shape(unet):
    from diffusers import EulerDiscreteScheduler
    with pytest.raises(TypeError, match="DDIMScheduler or DDPMScheduler"):
        refine(tiny_images(1, 1), unet, EulerDiscreteScheduler(), t0=10, steps=2)
    with pytest.raises(ValueError, match=r"prior expects \(3, 32, 32\)"):
        refine(tiny_images(1, 1, 64), unet, make_scheduler('ddim'), t0=10, steps=2)
    with pytest.raises(ValueError, match="DDIM only"):
        refine(tiny_images(1, 1), unet, make_scheduler('ddpm'), t0=10, steps=2, eta=0.5)


def test_load_prior_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_prior(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_prior(tmp_path / "half")


def test_save_load_round_trip(tmp_path, unet):
    p = save_prior(unet, make_scheduler('ddpm'), tmp_path / "prior", meta={"step": 7})
    assert (p / "unet" / "diffusion_pytorch_model.safetensors").exists()
    pr = load_prior(p, scheduler='ddpm')
    assert type(pr.scheduler).__name__ == "DDPMScheduler" and pr.meta["step"] == 7
    for a, b in zip(unet.state_dict().values(), pr.unet.state_dict().values()): assert torch.equal(a, b)
    x = tiny_images(1, 1)
    # same weights; the reloaded module's kernels may differ in the last float bits (~1e-6)
    assert torch.allclose(refine(x, unet, make_scheduler('ddim'), t0=30, steps=2, generator=make_generator(0)),
                          refine(x, pr.unet, load_prior(p).scheduler, t0=30, steps=2, generator=make_generator(0)), atol=1e-4)


def test_flat_diffusers_layout(tmp_path, unet):
    "The google/ddpm-cifar10-32 layout: UNet files and scheduler_config.json in one folder."
    unet.save_pretrained(tmp_path / "flat"); make_scheduler('ddpm').save_pretrained(tmp_path / "flat")
    assert load_prior(tmp_path / "flat").unet.config.sample_size == 32


def test_train_prior_resumes(tmp_path):
    imgs = (tiny_images(16, 1)[:, 0] * 255).to(torch.uint8)
    cfg = replace(PRIOR_PRESETS['tiny'], steps=2, batch_size=2, warmup=1)
    h = train_prior(imgs, cfg, out_dir=tmp_path / "p", device="cpu", log_every=1, show_progress=False)
    assert [r["step"] for r in h] == [1, 2] and all(np.isfinite(r["loss"]) for r in h)
    h2 = train_prior(imgs, replace(cfg, steps=3), out_dir=tmp_path / "p", device="cpu", log_every=1, show_progress=False)
    assert [r["step"] for r in h2] == [1, 2, 3] and load_prior(tmp_path / "p").meta["step"] == 3
    assert sorted(os.listdir(tmp_path)) == ["p"]


def test_sweep_results_schema(unet):
    x = tiny_images(2, 1)
    recs = refine_sweep(degrade(x, generator=make_generator(0)), x, unet, make_scheduler('ddim'), t0s=[10], etas=[0.0],
                        steps=2, show_progress=False)
    res = refine_results(recs, name="t", description="d", config={}, seed=0, data="tiles")
    assert {"name", "description", "config", "seed", "data", "conventions", "results", "records"} <= set(res)
    assert res["results"]["t0"] == [0, 10] and len(res["results"]["psnr"]) == 2
    json.dumps(res)


def _cli(*args, cwd):
    "Run kdd_refine the way its console_scripts entry point does (a script file calling the function)."
    script = Path(cwd) / "kdd_refine"
    script.write_text("import sys\nfrom kdd_semnoma.diffusion import kdd_refine\nif __name__ == '__main__':\n    sys.exit(kdd_refine())\n")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=cwd)


def test_cli_help_and_run(tmp_path, unet):
    r = _cli("--help", cwd=tmp_path)
    assert r.returncode == 0 and "--t0" in r.stdout, r.stderr[-1000:]
    save_prior(unet, make_scheduler('ddim'), tmp_path / "prior")
    imgs = (tiny_images(2, 1)[:, 0] * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "in.npz", images=imgs)
    r = _cli("--prior", "prior", "--inputs", "in.npz", "--t0", "10", "--steps", "2", "--degrade", "--device", "cpu",
             "--out", "o.npz", "--results", "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["results"]["t0"] == [0, 10]
    with np.load(tmp_path / "o.npz") as f: assert f["t0=10,eta=0"].shape == (2, 32, 32, 3)


ZOO = Path(__file__).resolve().parents[1] / 'zoo'


def test_zoo_manifest_and_prior():
    "Committed weights match their sha256 manifest, load as a prior, and denoise far better than an untrained UNet."
    import hashlib
    lines = (ZOO / 'SHA256SUMS').read_text().split('\n')
    entries = [l.split(None, 1) for l in lines if l.strip()]
    assert entries and all((ZOO / f).is_file() for _, f in entries)
    for digest, f in entries:
        assert hashlib.sha256((ZOO / f).read_bytes()).hexdigest() == digest, f"{f} does not match zoo/SHA256SUMS"
    pr = load_prior(ZOO / 'prior-cifar10-tiny', device='cpu')
    x = tiny_images(8, 1)[:, 0]                                            # (8, 3, 32, 32) smooth test images
    losses = {}
    for name, net in (('trained', pr.unet), ('untrained', make_unet(PRIOR_PRESETS['tiny'], seed=0))):
        with torch.no_grad():
            losses[name] = float(sum(prior_loss(net, pr.scheduler, x, generator=make_generator(i)) for i in range(4)) / 4)
    assert losses['trained'] < 0.5 * losses['untrained'], losses


def test_load_prior_keeps_the_saved_schedule(tmp_path):
    "A cosine prior loads as cosine (the old filter on __init__.__code__.co_varnames dropped every key: it ran as linear)."
    from kdd_semnoma.diffusion import PriorConfig, make_unet, make_scheduler, save_prior, load_prior
    cfg = PriorConfig(beta_schedule='squaredcos_cap_v2')
    save_prior(make_unet(cfg, seed=0), make_scheduler('ddpm', beta_schedule='squaredcos_cap_v2'), tmp_path / 'p')
    for kind in ('ddim', 'ddpm'):
        sch = load_prior(tmp_path / 'p', scheduler=kind).scheduler
        assert sch.config.beta_schedule == 'squaredcos_cap_v2'
        assert abs(float(sch.alphas_cumprod[40]) - 0.9943) < 1e-3            # the reference's light start: t = 40 on cosine


def test_prior_loss_t_max_and_bf16_training(tmp_path):
    "t_max restricts the training timesteps; precision='bf16' trains (fp32 master weights) and is recorded."
    import torch
    from kdd_semnoma.diffusion import PriorConfig, make_scheduler, load_prior
    from kdd_semnoma.prior_training import prior_loss, train_prior
    with pytest.raises(ValueError, match='t_max'): PriorConfig(t_max=0)
    seen = []
    class Spy(torch.nn.Module):
        def forward(self, x, t): seen.append(t.clone()); return type('O', (), {'sample': torch.zeros_like(x)})()
    prior_loss(Spy(), make_scheduler('ddpm'), torch.rand(256, 3, 8, 8), generator=torch.Generator().manual_seed(0), t_max=50)
    assert seen[0].max() < 50 and seen[0].min() >= 0
    cfg = PriorConfig(steps=2, batch_size=2, t_max=300)
    train_prior(torch.rand(8, 3, 32, 32), cfg, out_dir=tmp_path / 'p', device='cpu', precision='bf16', show_progress=False)
    pr = load_prior(tmp_path / 'p')
    assert pr.meta['precision'] == 'bf16' and pr.meta['config']['t_max'] == 300 and pr.meta['step'] == 2
    assert all(p.dtype == torch.float32 for p in pr.unet.parameters())
