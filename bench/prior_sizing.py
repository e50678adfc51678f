#!/usr/bin/env python
"""Size the CPU diffusion prior by measurement (issue 23): time candidate UNet2DModel sizes on this machine, fp32 and bf16
autocast interleaved step by step in one process, and say which is the largest that sees >= 10 epochs of CIFAR-10 in the
campaign budget.

Each candidate trains a few DDPM steps (batch 64, random 32x32 images, the kit's `prior_loss`, AdamW) with `--threads`
torch threads (1: the campaign runs beside other work on a 2-core machine). Rows: parameters, median s/step and its
min-max over the timed steps, images/s, and the epochs of the 50,000-image training set one would see in `--budget_h`
hours at that speed. The results file names the CPU, its bf16/AMX flags and the thread count.

    python bench/prior_sizing.py --results results/prior_sizing_cpu.json
"""
from __future__ import annotations
import argparse, shlex, statistics, sys, time

CANDIDATES = {   # name: PriorConfig fields
    'S (32,64,128) x1': dict(block_out_channels=(32, 64, 128), layers_per_block=1, norm_num_groups=8),
    'M (64,128,128) x2': dict(block_out_channels=(64, 128, 128), layers_per_block=2, norm_num_groups=32),
    'M+attn16 (64,128,128) x2': dict(block_out_channels=(64, 128, 128), layers_per_block=2, attn_levels=(1,), norm_num_groups=32),
    'L (96,192,192) x2': dict(block_out_channels=(96, 192, 192), layers_per_block=2, norm_num_groups=32),
    'L+attn16 (96,192,192) x2': dict(block_out_channels=(96, 192, 192), layers_per_block=2, attn_levels=(1,), norm_num_groups=32),
    'XL (128,256,256) x2': dict(block_out_channels=(128, 256, 256), layers_per_block=2, norm_num_groups=32),
}
N_TRAIN = 50_000


def time_candidate(fields: dict, *, batch: int, steps: int, warmup: int) -> dict:
    "Median seconds per optimiser step of one size, fp32 and bf16 alternating step by step."
    import torch
    from kdd_semnoma.core import autocast
    from kdd_semnoma.diffusion import PriorConfig, make_unet, make_scheduler
    from kdd_semnoma.prior_training import prior_loss
    cfg = PriorConfig(**fields)
    unet = make_unet(cfg, seed=0).train(); opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    sch, x, g = make_scheduler('ddpm'), torch.rand(batch, 3, 32, 32), torch.Generator().manual_seed(0)
    times = {'fp32': [], 'bf16': []}
    for i in range(warmup + steps):
        for prec in times:
            t = time.perf_counter()
            with autocast('cpu', prec): loss = prior_loss(unet, sch, x, generator=g)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            if i >= warmup: times[prec].append(time.perf_counter() - t)
    return dict(params_M=round(sum(p.numel() for p in unet.parameters()) / 1e6, 2), config=fields,
                **{f's_per_step_{p}': statistics.median(v) for p, v in times.items()},
                **{f's_per_step_{p}_range': [min(v), max(v)] for p, v in times.items()})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=1); p.add_argument('--batch', type=int, default=64)
    p.add_argument('--steps', type=int, default=3); p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--budget_h', type=float, default=12., help='campaign budget in hours (one process, --threads threads)')
    p.add_argument('--min_epochs', type=float, default=10.)
    p.add_argument('--results', default=None)
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    from kdd_semnoma.core import cpu_info
    from kdd_semnoma.results import make_results, save_results
    rows, records = {}, []
    for name, fields in CANDIDATES.items():
        r = time_candidate(fields, batch=a.batch, steps=a.steps, warmup=a.warmup)
        for prec in ('fp32', 'bf16'):
            img_s = a.batch / r[f's_per_step_{prec}']
            r[f'img_s_{prec}'] = img_s; r[f'epochs_in_budget_{prec}'] = img_s * 3600 * a.budget_h / N_TRAIN
            records.append(dict(size=name, user=-1, metric=f'img_s_{prec}', value=img_s, n=a.steps))
        r['bf16_speedup'] = r['s_per_step_fp32'] / r['s_per_step_bf16']
        rows[name] = r
        print(f"{name:28} {r['params_M']:6.2f} M  fp32 {r['s_per_step_fp32']:6.2f} s/step {r['img_s_fp32']:6.1f} img/s "
              f"({r['epochs_in_budget_fp32']:5.1f} ep)  bf16 {r['s_per_step_bf16']:6.2f} s/step {r['img_s_bf16']:6.1f} img/s "
              f"({r['epochs_in_budget_bf16']:5.1f} ep)  x{r['bf16_speedup']:.2f}", flush=True)
    info = cpu_info()
    prec = 'bf16' if info['native_bf16'] else 'fp32'
    ok = [n for n, r in rows.items() if r[f'epochs_in_budget_{prec}'] >= a.min_epochs]
    pick = max(ok, key=lambda n: rows[n]['params_M']) if ok else None
    print(f"largest size with >= {a.min_epochs:g} epochs in {a.budget_h:g} h at {prec}: {pick}")
    if a.results:
        doc = make_results('prior_sizing_cpu', records, x='size', seed=0, data=f'random {a.batch}x3x32x32 batches (speed only)',
                           description=f'DDPM training speed of UNet2DModel sizes, fp32 and bf16 autocast interleaved step by step '
                                       f'in one process, {a.threads} thread(s), batch {a.batch}; median of {a.steps} timed steps '
                                       f'after {a.warmup} warm-up',
                           config=dict(threads=a.threads, batch=a.batch, steps=a.steps, warmup=a.warmup, budget_h=a.budget_h,
                                       min_epochs=a.min_epochs, n_train=N_TRAIN, **info),
                           conventions=dict(epochs_in_budget='img/s x 3600 x budget_h / 50,000 training images'),
                           command='python bench/prior_sizing.py ' + shlex.join(sys.argv[1:] if argv is None else argv))
        doc['sizes'] = rows; doc['choice'] = dict(precision=prec, size=pick)
        save_results(doc, a.results)


if __name__ == '__main__':
    main()
