#!/usr/bin/env python
"""Refine real SemNOMA reconstructions: the CGAN refiner (13_cgan) and DifFace-style diffusion refinement
(12_diffusion) on what the zoo's KD-SemNOMA decodes from the CIFAR-10 test pairs, judged by PSNR, SSIM, semantic
accuracy and fid/kid_cifarnet (the kit's CIFAR-10 classifier, 08_metrics), written as one results JSON
(cgan_results schema: one row per (SNR, method)).

1. decode CIFAR-10 training groups with the student at SNR ~ U[snr_low, snr_high] dB (seeded) -> CGAN training pairs;
2. train the CGAN on those pairs (once, for every test SNR);
3. decode the pixel-exact test pairs at each --snrs dB (10_evaluate.reconstruct seeding);
4. measure: the decoded images ("before"), the CGAN, and diffusion refinement at every --t0s (DDIM, exactly --steps model calls).

    KDD_SEMNOMA_DATA=/path/to/data python bench/refiners_semnoma.py      # zoo KD-SemNOMA, 0/5/10 dB, ~25 min on 2 cores
"""
from __future__ import annotations
import argparse, time
from dataclasses import asdict
from pathlib import Path
import torch


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', default='zoo:kd-semnoma-cifar10-awgn-long', help='a kdd_train checkpoint or zoo:NAME (the KD student)')
    p.add_argument('--prior', default=str(Path(__file__).resolve().parents[1] / 'zoo' / 'prior-cifar10-tiny'),
                   help='diffusers-format prior folder (diffusion.load_prior)')
    p.add_argument('--classifier', default='zoo:cifarnet-cifar10', help="semantic-metric network (zoo:NAME) or 'none'")
    p.add_argument('--data', default='cifar10-npz')
    p.add_argument('--snrs', default='0,5,10', help='test SNRs in dB')
    p.add_argument('--snr_low', type=float, default=0.); p.add_argument('--snr_high', type=float, default=20.)
    p.add_argument('--n_train_groups', type=int, default=5000)
    p.add_argument('--n_test_groups', type=int, default=0, help='0 = all test groups')
    p.add_argument('--cgan_steps', type=int, default=1500); p.add_argument('--batch_size', type=int, default=32)
    p.add_argument('--t0s', default='25,50,100,200'); p.add_argument('--eta', type=float, default=0.)
    p.add_argument('--steps', type=int, default=10, help='DDIM model calls per refinement (exactly; at most t0 + 1)')
    p.add_argument('--seed', type=int, default=0); p.add_argument('--device', default=None)
    p.add_argument('--out', default='results/refiners_semnoma_cifar10_cpu.json')
    a = p.parse_args(argv)
    from kdd_semnoma.core import cli_errors
    with cli_errors('refiners_semnoma'):
        return run(a)


def run(a) -> dict:
    import sys
    from kdd_semnoma.core import default_device, make_generator
    from kdd_semnoma.channel import snr_grid
    from kdd_semnoma.data import get_dls
    from kdd_semnoma.evaluate import reconstruct, load_for_eval
    from kdd_semnoma.data import grouped_test_set
    from kdd_semnoma.cgan import CGANConfig, train_cgan, apply_cgan, evaluate_refiner, cgan_results, decode_train_pairs
    from kdd_semnoma.diffusion import load_prior, refine, prior_dir, sigma_at
    from kdd_semnoma.metrics import semantic_metric_fn, semantic_conventions
    from kdd_semnoma.results import save_results
    from kdd_semnoma import zoo
    t_start, device = time.time(), default_device(a.device)
    ck, model, _ = load_for_eval(a.checkpoint, data=a.data, seed=a.seed, device=device)
    dls = get_dls(a.data, model.n_users, 64, seed=a.seed)
    xh_tr, x_tr = decode_train_pairs(model, dls.train, a.n_train_groups, a.snr_low, a.snr_high, seed=a.seed)
    print(f"decoded {len(x_tr)} training images ({time.time() - t_start:.0f} s)", flush=True)
    cfg = CGANConfig()
    t0 = time.time()
    cg, hist = train_cgan(xh_tr, x_tr, cfg, steps=a.cgan_steps, batch_size=a.batch_size, seed=a.seed, device=device,
                          log_every=50, show_progress=False)
    cgan_s = time.time() - t0
    print(f"CGAN: {a.cgan_steps} steps in {cgan_s:.0f} s, final L1 {hist[-1]['l1']:.4f}", flush=True)
    test, labels = grouped_test_set(a.data, model.n_users, seed=a.seed, labels=True)  # (N, K, 3, H, W), (N, K)
    if a.n_test_groups: test, labels = test[:a.n_test_groups], labels[:a.n_test_groups]
    clf = None if a.classifier.lower() == 'none' else zoo.load(a.classifier, device=device)
    cifar = a.data in ('cifar10-npz', 'cifar10')                                  # class labels mean something only there
    sem_fn = semantic_metric_fn(clf, labels.flatten() if cifar else None, seed=a.seed) if clf is not None else None
    pr = load_prior(prior_dir(a.prior), device=device)
    t0s, snrs, recs = [int(t) for t in a.t0s.split(',')], snr_grid(a.snrs), []
    def diff(t, snr):
        g = make_generator(a.seed * 1000 + t + int(snr * 10) * 7919, device)
        return lambda z: torch.cat([refine(z[i:i + 128].to(device), pr.unet, pr.scheduler, t0=t, calls=min(a.steps, t + 1), eta=a.eta,
                                           generator=g).cpu() for i in range(0, len(z), 128)])
    for snr in snrs:
        xh, x = reconstruct(model, test, snr, seed=a.seed)                          # (N, K, 3, H, W)
        xh, x = xh.flatten(0, 1), x.flatten(0, 1)
        refiners = {'cgan': lambda z: apply_cgan(cg.gen, z.to(device)).cpu(), **{f'diffusion t0={t}': diff(t, snr) for t in t0s}}
        recs += evaluate_refiner(xh, x, refiners, semantic_fn=sem_fn, snr_db=snr)
        print(f"{snr:g} dB done ({(time.time() - t_start) / 60:.1f} min)", flush=True)
    res = cgan_results(recs, name=Path(a.out).stem, seed=a.seed,
                       description=f"CGAN and diffusion refinement of KD-SemNOMA ({a.checkpoint}) reconstructions at "
                                   f"{', '.join(f'{s:g}' for s in snrs)} dB AWGN; CGAN trained {a.cgan_steps} steps on {len(x_tr)} decoded "
                                   f"training images (SNR ~ U[{a.snr_low:g}, {a.snr_high:g}] dB); diffusion: prior {Path(a.prior).name}, "
                                   f"DDIM {a.steps} model calls, eta {a.eta:g}",
                       config=dict(checkpoint=str(a.checkpoint), train_config=ck.get('train_config'), cgan=asdict(cfg),
                                   cgan_steps=a.cgan_steps, cgan_train_s=round(cgan_s, 1), prior=Path(a.prior).name,
                                   prior_meta=pr.meta, t0s=t0s, eta=a.eta, steps=a.steps,
                                   sigmas=[sigma_at(pr.scheduler, t) for t in t0s],
                                   alpha_bars=[float(pr.scheduler.alphas_cumprod[t]) for t in t0s], snrs_db=snrs, device=str(device),
                                   torch_threads=torch.get_num_threads(),   # the CGAN's training differs with the thread count
                                   classifier=a.classifier, wall_minutes=round((time.time() - t_start) / 60, 1)),
                       data=f"{a.data}: {len(test)} fixed test groups ({len(test) * model.n_users} images), labels from the test file")
    if sem_fn is not None:
        res['conventions'].update(semantic_conventions(len(test) * model.n_users, 'the original test images', a.classifier))
    res['command'] = 'python ' + ' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    save_results(res, a.out)
    r = res['results']
    cols = ['psnr', 'ssim'] + [m for m in ('sem_acc', 'sem_agree', 'fid_cifarnet', 'kid_cifarnet') if m in r]
    print(f"{'SNR':>4} {'method':18} " + ' '.join(f'{c:>12}' for c in cols))
    for i, m in enumerate(r['method']):
        print(f"{r['snr_db'][i]:4g} {m:18} " + ' '.join(f'{r[c][i]:12.4f}' for c in cols))
    print(f"-> {a.out} ({(time.time() - t_start) / 60:.1f} min)")
    return res


if __name__ == '__main__':
    main()
