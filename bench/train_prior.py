#!/usr/bin/env python
"""Train a UNet2DModel diffusion prior (DDPM epsilon loss, EMA) with `kdd_semnoma.diffusion.train_prior`, then
report held-out denoising error, a sample grid and (when the metrics module and Inception weights allow) FID.

Real CIFAR-10 prior on a GPU (about 10 minutes on an H100):
    KDD_SEMNOMA_DATA=/path/to/data python bench/train_prior.py --data cifar10-npz --size cifar \
        --steps 40000 --max_minutes 10 --out_dir $KDD_SEMNOMA_WEIGHTS/prior-cifar10 --results results/prior_cifar10.json
CPU smoke run:
    python bench/train_prior.py --data tiles --size tiny --steps 20 --batch_size 8 --out_dir /tmp/prior
The prior folder is diffusers format (unet/ safetensors + scheduler/) and loads with `diffusion.load_prior`.
"""
from __future__ import annotations
import argparse, json, math, time
from dataclasses import replace, asdict
from pathlib import Path
import torch


def load_data(name: str, size: int) -> tuple:  # (train uint8 (N, 3, H, W), test uint8 (M, 3, H, W))
    from kdd_semnoma.diffusion import as_image_tensor, load_npz_images
    from kdd_semnoma.core import data_path
    if name == 'tiles':
        from kdd_semnoma.data import sample_tiles
        ds = sample_tiles(size, per_side=8)
        imgs = as_image_tensor(ds.images[ds.indices])                              # (N, 3, H, W) uint8
        n_test = max(len(imgs) // 8, 8)
        return imgs[n_test:], imgs[:n_test]
    if name == 'cifar10-npz':
        try:
            from kdd_semnoma.data import cifar10_from_npz
            tr, te = cifar10_from_npz('train'), cifar10_from_npz('test')
            return as_image_tensor(tr.images[tr.indices]), as_image_tensor(te.images[te.indices])
        except ImportError:
            root = data_path() / 'cifar10'
            return load_npz_images(root / 'train_jpeg_q75.npz'), load_npz_images(root / 'test_jpeg_q75.npz')
    raise ValueError(f"--data must be 'tiles' or 'cifar10-npz', got {name!r}.")


@torch.inference_mode()
def heldout_eps_mse(unet, sch, x_test: torch.Tensor, ts=(10, 50, 200, 500, 800), n: int = 512, bs: int = 256) -> dict:
    "Noise-prediction MSE on held-out images at fixed t (fixed noise): a weight-free measure of the prior."
    from kdd_semnoma.diffusion import to_model
    dev = next(unet.parameters()).device
    g = torch.Generator().manual_seed(0)
    x = to_model(x_test[:n].float() / 255)
    out = {}
    for t in ts:
        err = []
        for i in range(0, len(x), bs):
            x0 = x[i:i + bs]; noise = torch.randn(x0.shape, generator=g)
            tt = torch.full((len(x0),), t, dtype=torch.long)
            xt = sch.add_noise(x0, noise, tt)
            err.append((unet(xt.to(dev), tt.to(dev)).sample.float().cpu() - noise).pow(2).mean((1, 2, 3)))
        out[f'eps_mse_t{t}'] = torch.cat(err).mean().item()
    return out


@torch.inference_mode()
def sample(unet, sch, n: int, steps: int = 50, bs: int = 256, seed: int = 0) -> torch.Tensor:  # (n, 3, H, W) in [0, 1]
    "Unconditional DDIM samples from pure noise (the prior's own images), loop written out."
    from kdd_semnoma.diffusion import from_model
    dev = next(unet.parameters()).device; s = unet.config.sample_size
    g = torch.Generator().manual_seed(seed); outs = []
    sch.set_timesteps(steps)
    for i in range(0, n, bs):
        x = torch.randn(min(bs, n - i), 3, s, s, generator=g).to(dev)
        for t in sch.timesteps:
            x = sch.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
        outs.append(from_model(x.float()).cpu())
    return torch.cat(outs)


def try_fid(fake: torch.Tensor, real: torch.Tensor) -> dict:
    "FID of samples vs test images with kdd_semnoma.metrics (local Inception weights); if they are absent, say why."
    from kdd_semnoma import metrics
    try:
        ext = metrics.inception_features_model(device=fake.device)
    except FileNotFoundError as e:       # no Inception weights on this machine: report, do not crash the run
        return {'fid': None, 'fid_note': f'not computed: {str(e)[:400]}'}
    f_fake, f_real = metrics.image_features(ext, fake), metrics.image_features(ext, real)
    return {'fid': metrics.fid_from_feats(f_fake, metrics.feature_stats(f_real)),
            'fid_note': f'{len(fake)} DDIM samples vs {len(real)} test images',
            'fid_conventions': metrics.fid_conventions(len(fake), len(real))}


def main(argv=None):
    from kdd_semnoma.diffusion import PRIOR_PRESETS, train_prior, load_prior
    from kdd_semnoma.core import default_device, set_seed
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='tiles', choices=['tiles', 'cifar10-npz'])
    p.add_argument('--size', default='tiny', choices=sorted(PRIOR_PRESETS), help="PriorConfig preset")
    p.add_argument('--steps', type=int, default=None, help="optimiser steps (default: the preset's)")
    p.add_argument('--batch_size', type=int, default=None)
    p.add_argument('--lr', type=float, default=None)
    p.add_argument('--max_minutes', type=float, default=None, help="stop and save after this wall-clock budget")
    p.add_argument('--out_dir', required=True, help="prior folder (diffusers format); rerun to resume")
    p.add_argument('--save_every', type=int, default=2000)
    p.add_argument('--device', default=None)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n_samples', type=int, default=2000, help="DDIM samples for the grid and FID (0: none)")
    p.add_argument('--sample_steps', type=int, default=50)
    p.add_argument('--results', default=None, help="also write the report JSON here")
    a = p.parse_args(argv)
    set_seed(a.seed)
    dev = default_device(a.device)
    if dev.type == 'cuda':  # entry point: speed flags are allowed here (never at import time in the library)
        torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    cfg = PRIOR_PRESETS[a.size]
    cfg = replace(cfg, **{k: v for k, v in dict(steps=a.steps, batch_size=a.batch_size, lr=a.lr).items() if v is not None})
    x_train, x_test = load_data(a.data, cfg.sample_size)
    print(f"data {a.data}: train {tuple(x_train.shape)}, test {tuple(x_test.shape)}; device {dev}; config {cfg}", flush=True)
    t0 = time.time()
    hist = train_prior(x_train.to(dev), cfg, out_dir=a.out_dir, device=dev, seed=a.seed, save_every=a.save_every,
                       max_minutes=a.max_minutes, log_every=max(1, min(100, cfg.steps // 50)), show_progress=False)
    train_s = time.time() - t0
    pr = load_prior(a.out_dir, device=dev)
    n_params = sum(p.numel() for p in pr.unet.parameters())
    report = {'name': Path(a.out_dir).name, 'description': f"UNet2DModel DDPM prior, preset {a.size}, EMA weights",
              'config': asdict(cfg), 'seed': a.seed, 'data': a.data, 'device': str(dev),
              'params_M': round(n_params / 1e6, 2), 'steps_done': pr.meta.get('step'), 'train_s': round(train_s, 1),
              'loss_curve': [(h['step'], round(h['loss'], 5)) for h in hist[:: max(1, len(hist) // 50)]] + [(hist[-1]['step'], round(hist[-1]['loss'], 5))],
              'heldout': heldout_eps_mse(pr.unet, pr.scheduler, x_test)}
    if a.n_samples:
        t1 = time.time(); fake = sample(pr.unet, pr.scheduler, a.n_samples, a.sample_steps, seed=a.seed)
        report['sample_s'] = round(time.time() - t1, 1)
        r = int(math.sqrt(min(64, len(fake)))); H, W = fake.shape[-2:]
        grid = fake[:r * r].reshape(r, r, 3, H, W).permute(0, 3, 1, 4, 2).reshape(r * H, r * W, 3)   # (rH, rW, 3)
        from PIL import Image
        Image.fromarray((grid * 255).round().byte().numpy()).save(Path(a.out_dir) / 'samples.png')
        report.update(try_fid(fake, x_test[:a.n_samples].float() / 255))
    text = json.dumps(report, indent=1)
    (Path(a.out_dir) / 'train_report.json').write_text(text)
    if a.results: Path(a.results).parent.mkdir(parents=True, exist_ok=True); Path(a.results).write_text(text)
    print(json.dumps({k: v for k, v in report.items() if k != 'loss_curve'}, indent=1))


if __name__ == '__main__':
    main()
