#!/usr/bin/env python
"""Refine real SemNOMA reconstructions: the CGAN refiner (13_cgan) and DifFace-style diffusion refinement
(12_diffusion) on what a trained KD-SemNOMA student decodes from the CIFAR-10 test pairs, measured with the
same metrics, written as one results JSON (cgan_results schema: one entry per method).

1. decode CIFAR-10 training groups with the student at SNR ~ U[snr_low, snr_high] dB (seeded) -> CGAN training pairs;
2. train the CGAN on those pairs;
3. decode the first --n_test_groups pixel-exact test pairs at --snr dB (10_evaluate.reconstruct seeding);
4. measure: the decoded images ("before"), the CGAN, and diffusion refinement at every --t0 (DDIM, --steps).

    KDD_SEMNOMA_DATA=/path/to/data python bench/refiners_semnoma.py --checkpoint runs/kd/best.pt \
        --prior zoo/prior-cifar10-tiny --snr 5 --out results/refiners_semnoma_cifar10_cpu.json
"""
from __future__ import annotations
import argparse, time
from dataclasses import asdict
from pathlib import Path
import torch


def decode_train_pairs(model, loader, n_groups: int, snr_low: float, snr_high: float, seed: int) -> tuple:
    "Student reconstructions of training groups at random SNRs: (x_hat, x), each (N*K, 3, H, W) on CPU."
    from kdd_semnoma.core import make_generator, model_device
    from kdd_semnoma.channel import sample_snr_db
    device, g = model_device(model), make_generator(seed, model_device(model))
    xs, xhs, seen = [], [], 0
    model.eval()
    with torch.inference_mode():
        for x, _ in loader:
            x = x[:n_groups - seen].to(device).float(); seen += len(x)
            snr = sample_snr_db(len(x), snr_low, snr_high, generator=g, device=device)
            xhs.append(model(x, snr, generator=g).x_hat.float().clamp(0, 1).flatten(0, 1).cpu()); xs.append(x.flatten(0, 1).cpu())
            if seen >= n_groups: break
    return torch.cat(xhs), torch.cat(xs)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True, help='a kdd_train checkpoint (the KD student)')
    p.add_argument('--prior', required=True, help='diffusers-format prior folder (diffusion.load_prior)')
    p.add_argument('--data', default='cifar10-npz'); p.add_argument('--data_path', default=None)
    p.add_argument('--snr', type=float, default=5., help='test SNR in dB')
    p.add_argument('--snr_low', type=float, default=0.); p.add_argument('--snr_high', type=float, default=20.)
    p.add_argument('--n_train_groups', type=int, default=5000); p.add_argument('--n_test_groups', type=int, default=128)
    p.add_argument('--cgan_steps', type=int, default=1500); p.add_argument('--batch_size', type=int, default=32)
    p.add_argument('--t0s', default='25,50,100,200'); p.add_argument('--eta', type=float, default=0.)
    p.add_argument('--steps', type=int, default=10, help='DDIM reverse steps')
    p.add_argument('--seed', type=int, default=0); p.add_argument('--device', default=None)
    p.add_argument('--out', default='results/refiners_semnoma_cifar10.json')
    a = p.parse_args(argv)
    from kdd_semnoma.core import default_device, make_generator
    from kdd_semnoma.data import get_dls
    from kdd_semnoma.train import load_model, load_checkpoint
    from kdd_semnoma.evaluate import reconstruct
    from kdd_semnoma.cgan import CGANConfig, train_cgan, apply_cgan, evaluate_refiner, cgan_results
    from kdd_semnoma.diffusion import load_prior, refine
    from kdd_semnoma.metrics import save_results
    t_start, device = time.time(), default_device(a.device)
    model = load_model(a.checkpoint, device=device)
    dls = get_dls(a.data, model.n_users, 64, root=a.data_path, seed=a.seed)
    xh_tr, x_tr = decode_train_pairs(model, dls.train, a.n_train_groups, a.snr_low, a.snr_high, a.seed)
    print(f"decoded {len(x_tr)} training images ({time.time() - t_start:.0f} s)", flush=True)
    cfg = CGANConfig()
    t0 = time.time()
    cg, hist = train_cgan(xh_tr, x_tr, cfg, steps=a.cgan_steps, batch_size=a.batch_size, seed=a.seed, device=device,
                          log_every=50, show_progress=False)
    cgan_s = time.time() - t0
    print(f"CGAN: {a.cgan_steps} steps in {cgan_s:.0f} s, final L1 {hist[-1]['l1']:.4f}", flush=True)
    xh, x = reconstruct(model, dls.test, a.snr, seed=a.seed, max_groups=a.n_test_groups)     # (N, K, 3, H, W)
    xh, x = xh.flatten(0, 1), x.flatten(0, 1)
    pr = load_prior(a.prior, device=device)
    t0s = [int(t) for t in a.t0s.split(',')]
    def diff(t):
        return lambda z: torch.cat([refine(z[i:i + 128].to(device), pr.unet, pr.scheduler, t0=t, steps=min(a.steps, t), eta=a.eta,
                                           generator=make_generator(a.seed * 1000 + t, device)).cpu() for i in range(0, len(z), 128)])
    refiners = {'cgan': lambda z: apply_cgan(cg.gen, z.to(device)).cpu(), **{f'diffusion t0={t}': diff(t) for t in t0s}}
    recs = evaluate_refiner(xh, x, refiners)
    ck = load_checkpoint(a.checkpoint)
    res = cgan_results(recs, name=Path(a.out).stem, seed=a.seed,
                       description=f"CGAN and diffusion refinement of KD-SemNOMA reconstructions at {a.snr:g} dB AWGN "
                                   f"(student step {ck['step']}); CGAN trained {a.cgan_steps} steps on {len(x_tr)} decoded "
                                   f"training images (SNR ~ U[{a.snr_low:g}, {a.snr_high:g}] dB); diffusion: prior {a.prior}, "
                                   f"DDIM {a.steps} steps, eta {a.eta:g}",
                       config=dict(checkpoint=str(a.checkpoint), train_config=ck.get('train_config'), cgan=asdict(cfg),
                                   cgan_steps=a.cgan_steps, cgan_train_s=round(cgan_s, 1), prior=str(a.prior),
                                   prior_meta=pr.meta, t0s=t0s, eta=a.eta, steps=a.steps, snr_db=a.snr, device=str(device)),
                       data=f"{a.data}: first {a.n_test_groups} fixed test groups ({len(x)} images)")
    save_results(res, a.out)
    r = res['results']
    print(f"{'method':18} {'PSNR':>7} {'SSIM':>6} {'HF ratio':>8}")
    for i, m in enumerate(r['method']):
        print(f"{m:18} {r['psnr'][i]:7.2f} {r['ssim'][i]:6.3f} {r['hf_energy_ratio'][i]:8.2f}")
    print(f"-> {a.out} ({(time.time() - t_start) / 60:.1f} min)")
    return res


if __name__ == '__main__':
    main()
