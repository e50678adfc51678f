"Diffusion refinement contracts: identity at t0=0, determinism, validation messages, prior save/load, CLI."
import json, os, re, subprocess, sys
from dataclasses import replace
from pathlib import Path
import numpy as np
import pytest
import torch
from kdd_semnoma.core import make_generator
from kdd_semnoma.testing import tiny_images
from kdd_semnoma.diffusion import (PRIOR_PRESETS, make_unet, make_scheduler, refine, refine_timesteps, save_prior,
                                   load_prior, refine_sweep, refine_results, degrade, sigma_at, t_for_sigma, RefineConfig,
                                   REFERENCE_SETTING, refine_settings, run_refine, setting_key)
from kdd_semnoma.prior_training import train_prior, prior_loss


@pytest.fixture(scope="module")
def unet():
    return make_unet(PRIOR_PRESETS['tiny'], seed=0).eval()


@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_t0_zero_is_identity(unet, kind):
    x = tiny_images(2, 2)
    assert torch.equal(refine(x, unet, make_scheduler(kind), t0=0, calls=5), x)
    assert torch.equal(refine(x, unet, make_scheduler(kind), sigma=0.0, calls=5), x)


@pytest.mark.parametrize("kind,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.5)])
def test_fixed_generator_is_deterministic_and_in_range(unet, kind, eta):
    x = tiny_images(1, 2)
    a = refine(x, unet, make_scheduler(kind), t0=50, calls=3, eta=eta, generator=make_generator(3))
    b = refine(x, unet, make_scheduler(kind), t0=50, calls=3, eta=eta, generator=make_generator(3))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_timestep_grid():
    ts = refine_timesteps(400, 20)
    assert ts[0] == 400 and ts[-1] == 0 and (ts[:-1] > ts[1:]).all() and len(ts) == 20
    assert refine_timesteps(25, 10).tolist() == [25, 22, 19, 17, 14, 11, 8, 6, 3, 0]


class CallSpy(torch.nn.Module):
    "A stand-in prior that records the steps it is called at and predicts zero noise."
    def __init__(self, like):
        super().__init__(); self.config, self.ts, self.p = like.config, [], torch.nn.Parameter(torch.zeros(()))
    def forward(self, x, t):
        self.ts.append(int(t)); return type('Out', (), {'sample': torch.zeros_like(x)})()


def test_exact_calls_from_t0(unet):
    "t0 = 25 with 10 calls makes exactly 10 model calls, the first at t = 25, and the records say 10 (was 13 from 24)."
    spy = CallSpy(unet)
    refine(tiny_images(1, 1), spy, make_scheduler('ddim'), t0=25, calls=10, eta=0.5, generator=make_generator(0))
    assert spy.ts == [25, 22, 19, 17, 14, 11, 8, 6, 3, 0]
    spy.ts.clear(); x = tiny_images(2, 1)
    recs = refine_sweep(x, x, spy, make_scheduler('ddim'), settings=[RefineConfig(t0=25, calls=10)], show_progress=False)
    assert spy.ts == [25, 22, 19, 17, 14, 11, 8, 6, 3, 0]                   # one batch, the no-refinement row calls nothing
    assert {(r['t0'], r['calls']) for r in recs if r['t0'] > 0} == {(25, 10)}


def test_noise_level_view():
    "sigma = sqrt((1 - abar)/abar): the reference's cosine t = 40 and the former linear t0 = 100."
    cos, lin = make_scheduler('ddpm', beta_schedule='squaredcos_cap_v2'), make_scheduler('ddim')
    assert abs(float(cos.alphas_cumprod[40]) - 0.994) < 1e-3 and abs(sigma_at(cos, 40) - 0.075) < 1e-3
    assert abs(float(lin.alphas_cumprod[100]) - 0.895) < 1e-3 and abs(sigma_at(lin, 100) - 0.342) < 1e-3
    assert t_for_sigma(cos, 0.075) == 40 and t_for_sigma(lin, sigma_at(lin, 100)) == 100
    ref = REFERENCE_SETTING.resolve(cos)
    assert (ref['t0'], ref['calls'], ref['eta']) == (40, 10, 0.5) and abs(ref['sigma'] - sigma_at(cos, 40)) < 1e-12
    with pytest.raises(ValueError, match="largest noise level"): t_for_sigma(lin, 1e4)


def test_refine_takes_sigma(unet):
    sch = make_scheduler('ddim')
    x = tiny_images(1, 1)
    a = refine(x, unet, sch, sigma=0.2, calls=3, generator=make_generator(1))
    b = refine(x, unet, sch, t0=t_for_sigma(sch, 0.2), calls=3, generator=make_generator(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(t0=-1, calls=1), "t0 must be an integer in [0, 999]"),
    (dict(t0=1000, calls=1), "t0 must be an integer in [0, 999]"),
    (dict(t0=10, calls=12), "calls must be an integer in [1, t0 + 1 = 11]"),
    (dict(t0=10, calls=0), "calls must be an integer in [1, t0 + 1 = 11]"),
    (dict(calls=2), "exactly one of sigma= (a noise level, --sigmas) or t0= (a step, --t0s)"),
    (dict(t0=10, sigma=0.1, calls=2), "exactly one of sigma="),
    (dict(sigma=-0.1, calls=2), "sigma must be a noise level >= 0"),
    (dict(t0=10, calls=2, eta=-0.5), "eta must be >= 0"),
])
def test_validation_messages(unet, kwargs, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        refine(tiny_images(1, 1), unet, make_scheduler('ddim'), **kwargs)


def test_wrong_scheduler_and_shape(unet):
    from diffusers import EulerDiscreteScheduler
    with pytest.raises(TypeError, match="DDIMScheduler or DDPMScheduler"):
        refine(tiny_images(1, 1), unet, EulerDiscreteScheduler(), t0=10, calls=2)
    with pytest.raises(ValueError, match=r"prior expects \(3, 32, 32\)"):
        refine(tiny_images(1, 1, 64), unet, make_scheduler('ddim'), t0=10, calls=2)


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
    assert torch.allclose(refine(x, unet, make_scheduler('ddim'), t0=30, calls=2, generator=make_generator(0)),
                          refine(x, pr.unet, load_prior(p).scheduler, t0=30, calls=2, generator=make_generator(0)), atol=1e-4)


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
    "Every record and the results arrays carry the setting: t0, alpha_bar, sigma, calls, eta."
    x = tiny_images(2, 1)
    recs = refine_sweep(degrade(x, generator=make_generator(0)), x, unet, make_scheduler('ddim'),
                        settings=refine_settings(t0s=[10], calls=[2]), show_progress=False)
    assert all({'t0', 'alpha_bar', 'sigma', 'calls', 'eta'} <= set(r) for r in recs)
    res = refine_results(recs, name="t", description="d", config={}, seed=0, data="tiles")
    assert {"name", "description", "config", "seed", "data", "conventions", "results", "records"} <= set(res)
    r = res["results"]
    assert r["t0"] == [0, 10] and r["calls"] == [0, 2] and r["sigma"][0] == 0.0 and len(r["psnr"]) == 2
    assert abs(r["sigma"][1] - sigma_at(make_scheduler('ddim'), 10)) < 1e-12 and r["alpha_bar"][0] == 1.0
    json.dumps(res)


def test_run_refine_saves_the_images_it_scores(tmp_path, unet):
    "One seeding rule: run_refine's saved images are the ones refine_sweep scores (same seed), with or without --results."
    save_prior(unet, make_scheduler('ddim'), tmp_path / "prior")
    x = tiny_images(3, 1)[:, 0]
    torch.save({'x_hat': degrade(x, generator=make_generator(0)), 'x': x}, tmp_path / "in.pt")
    settings = refine_settings(t0s=[20, 40], calls=[3], etas=[0.0, 0.5])
    kw = dict(settings=settings, device='cpu', show_progress=False, seed=4, batch_size=2)
    run_refine(tmp_path / "prior", tmp_path / "in.pt", out=tmp_path / "a.npz", results=tmp_path / "r.json", **kw)
    run_refine(tmp_path / "prior", tmp_path / "in.pt", out=tmp_path / "b.npz", **kw)
    imgs = {}
    pr = load_prior(tmp_path / "prior")
    recs = refine_sweep(degrade(x, generator=make_generator(0)), x, pr.unet, pr.scheduler, settings=settings[::-1], seed=4,
                        batch_size=2, show_progress=False, images=imgs)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert sorted(a.keys()) == sorted(b.keys()) == sorted(imgs) and len(imgs) == 5
        for k, v in imgs.items():
            u8 = (v * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            assert np.array_equal(a[k], u8) and np.array_equal(b[k], u8), k
    saved = json.loads((tmp_path / "r.json").read_text())
    psnr = {(r['t0'], r['eta']): r['value'] for r in saved['records'] if r['metric'] == 'psnr'}
    assert psnr == {(r['t0'], r['eta']): r['value'] for r in recs if r['metric'] == 'psnr'}


def _cli(*args, cwd):
    "Run kdd_refine the way its console_scripts entry point does (a script file calling the function)."
    script = Path(cwd) / "kdd_refine"
    script.write_text("import sys\nfrom kdd_semnoma.diffusion import kdd_refine\nif __name__ == '__main__':\n    sys.exit(kdd_refine())\n")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=cwd)


def test_cli_help_and_run(tmp_path, unet):
    r = _cli("--help", cwd=tmp_path)
    assert r.returncode == 0 and all(f in r.stdout for f in ("--sigmas", "--t0s", "--calls", "--etas")), r.stderr[-1000:]
    save_prior(unet, make_scheduler('ddim'), tmp_path / "prior")
    imgs = (tiny_images(2, 1)[:, 0] * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "in.npz", images=imgs)
    r = _cli("--prior", "prior", "--inputs", "in.npz", "--t0s", "10", "--calls", "2", "--etas", "0", "--degrade",
             "--device", "cpu", "--out", "o.npz", "--results", "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "r.json").read_text())["results"]
    assert res["t0"] == [0, 10] and res["calls"] == [0, 2] and res["eta"] == [0.0, 0.0] and len(res["sigma"]) == 2
    key = setting_key(RefineConfig(t0=10, calls=2).resolve(make_scheduler('ddim')))
    with np.load(tmp_path / "o.npz") as f: assert f[key].shape == (2, 32, 32, 3)
    r = _cli("--prior", "prior", "--inputs", "in.npz", "--t0s", "10", "--calls", "20", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 1 and "--calls" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_cli_zoo_prior_and_inputs(tmp_path):
    "--prior zoo:NAME and --inputs zoo:SYSTEM work from any folder (were: 'prior folder zoo:... does not exist')."
    r = _cli("--prior", "zoo:prior-cifar10-tiny", "--inputs", "zoo:kd-semnoma-cifar10-awgn", "--data", "tiles", "--max_groups", "2",
             "--snr", "5", "--calls", "2", "--reference", "--device", "cpu", "--out", "o.npz", "--results", "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    js = json.loads((tmp_path / "r.json").read_text())
    res = js["results"]
    assert res["t0"][0] == 0 and len(res["t0"]) == 3 and sorted(res["calls"]) == [0, 2, 10]        # 0.075 x 2 calls + the reference
    assert all(abs(s - 0.075) < 0.01 for s in res["sigma"][1:]) and sorted(res["eta"]) == [0.0, 0.5, 0.5]
    with np.load(tmp_path / "o.npz") as f: assert all(v.shape == (4, 32, 32, 3) for v in f.values())  # 2 groups x 2 users
    r = _cli("--prior", "zoo:nope", "--inputs", "zoo:kd-semnoma-cifar10-awgn", cwd=tmp_path)
    assert r.returncode == 1 and "zoo:prior-cifar10-tiny" in r.stderr, r.stderr[-2000:]


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


def test_zoo_campaign_prior_by_name():
    "The campaign's prior (issue 23) loads by name, fp32, on its cosine schedule, with the preset's network, a card with its sample scores."
    from dataclasses import asdict
    from kdd_semnoma.diffusion import prior_dir
    pr = load_prior(prior_dir('zoo:prior-cifar10-cpu'), device='cpu')
    assert pr.scheduler.config.beta_schedule == 'squaredcos_cap_v2' and next(pr.unet.parameters()).dtype == torch.float32
    want = {k: v for k, v in json.loads(json.dumps(asdict(PRIOR_PRESETS['cifar-cpu']))).items() if k != 'steps'}
    assert {k: v for k, v in pr.meta['config'].items() if k != 'steps'} == want and pr.meta['step'] == pr.meta['config']['steps']
    card = (ZOO / 'prior-cifar10-cpu' / 'README.md').read_text()
    assert 'FID-CN' in card and 'KID-CN' in card and '![samples](samples.png)' in card


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
