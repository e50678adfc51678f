#!/usr/bin/env python
"""Train a UNet2DModel diffusion prior (DDPM epsilon loss, EMA) with `kdd_semnoma.prior_training.train_prior`, then
report held-out denoising error, a sample grid and (when the metrics module and Inception weights allow) FID.

Real CIFAR-10 prior on a GPU (about 10 minutes on an H100):
    KDD_SEMNOMA_DATA=/path/to/data python bench/train_prior.py --data cifar10-npz --size cifar \
        --steps 40000 --max_minutes 10 --out_dir $KDD_SEMNOMA_WEIGHTS/prior-cifar10 --results results/prior_cifar10.json
CPU smoke run:
    python bench/train_prior.py --data tiles --size tiny --steps 20 --batch_size 8 --out_dir /tmp/prior
The prior folder is diffusers format (unet/ safetensors + scheduler/) and loads with `diffusion.load_prior`.

The report is a results file in the kit's schema (`kdd_semnoma.results.save_results`, x = 'step', user -1): records
`loss` (training loss curve), `eps_mse_t<t>` and `eps_mse_sigma<s>` (held-out denoising error at the last step, per
step and per noise level), `fid`, and on CIFAR-10 `fid_cifarnet` / `kid_cifarnet` of the samples with their floors; the fields
device, params_M, steps_done, train_s, sample_s and `command` (this command line). It goes to OUT_DIR/train_report.json
and, with --results, to that file too.

Rewrite a report of the earlier ad-hoc layout (keys loss_curve, heldout, fid, fid_note, ...) into the schema without
retraining, in place (or into --results); every number is carried over unchanged:
    python bench/train_prior.py --restate results/prior_cifar10_tiny_cpu.json
"""
from __future__ import annotations
import argparse, json, math, shlex, sys, time
from dataclasses import replace, asdict
from pathlib import Path
import torch

HELDOUT_TS = (10, 40, 100, 200, 300, 500, 800)   # timesteps of the held-out denoising error (refinement lives below 300)
HELDOUT_N = 512                        # test images it averages over (fewer if the test set is smaller)
HELDOUT_SIGMAS = (0.03, 0.075, 0.15, 0.3, 0.6, 1.2)  # noise levels of the held-out error: priors with other schedules compare
DIST_N = 1000                          # samples (and test images) behind FID-CN / KID-CN
CONVENTIONS = {
    'step': 'x of every record: optimiser step; held-out and FID records sit at the last step (steps_done)',
    'user': '-1 on every record: one prior, no users',
    'loss': 'DDPM epsilon-prediction MSE on training batches, mean over the optimiser steps since the previous logged point '
            '(n = those steps), rounded to 5 decimals; about 50 points of the logged history plus the last',
    'eps_mse': 'eps_mse_t<t>: noise-prediction MSE of the EMA weights on the first n test images diffused to timestep t, '
               'fixed noise (generator seed 0)',
    'fid': 'FID of DDIM samples against test images (n = samples); value null when it was not computed (see the note)',
    'eps_mse_sigma': 'eps_mse_sigma<s>: the same error at the step t_for_sigma(s) of the prior\'s own schedule (record key t): '
                     'at one noise level sigma = sqrt((1 - abar) / abar) the task is the same for any schedule',
    'fid_cifarnet/kid_cifarnet': 'FID-CN / KID-CN (unpaired, KID with SE) of n DDIM samples against n JPEG test images, in '
                                 'the zoo classifier\'s features (08_metrics; not Inception); the test and training images are '
                                 'seeded random draws (the exports are sorted by class). Floors at the same n: '
                                 'floor_test = n other test images vs the same test images (what a perfect prior scores); '
                                 'train_vs_test = n training images vs them, higher than the floor because the classifier was '
                                 'trained on the training images and its features tell them apart (bench/fid_sample_bias.py)',
}


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
def heldout_eps_mse(unet, sch, x_test: torch.Tensor, ts=HELDOUT_TS, n: int = HELDOUT_N, bs: int = 256) -> dict:
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
def heldout_eps_mse_at_sigmas(unet, sch, x_test: torch.Tensor, sigmas=HELDOUT_SIGMAS, n: int = HELDOUT_N) -> dict:
    "Held-out noise-prediction error at fixed noise levels: {'eps_mse_sigma<s>': (t, value)} (t from the prior's own schedule)."
    from kdd_semnoma.diffusion import t_for_sigma
    ts = {s: t_for_sigma(sch, s) for s in sigmas}
    vals = heldout_eps_mse(unet, sch, x_test, ts=tuple(ts.values()), n=n)
    return {f'eps_mse_sigma{s:g}': (t, vals[f'eps_mse_t{t}']) for s, t in ts.items()}


def reference_draws(n_test: int, n_train: int, n: int, seed: int = 0) -> tuple:  # (ref (n,), other (n,), train (n,)) indices
    "Seeded random images to score n samples against (the npz exports are sorted by class: their heads are one class)."
    g = torch.Generator().manual_seed(seed)
    te, tr = torch.randperm(n_test, generator=g)[:2 * n], torch.randperm(n_train, generator=g)[:n]
    return te[:n], te[n:], tr


def cifarnet_distances(fake: torch.Tensor,        # (n, 3, H, W) samples in [0, 1]
                       x_test: torch.Tensor,      # (M, 3, H, W) uint8 test images, M >= 2n
                       x_train: torch.Tensor,     # (N, 3, H, W) uint8 training images, N >= n
                       seed: int = 0) -> dict:    # {name: (value, se or None)}
    "FID-CN / KID-CN of the samples vs n test images, and the two floors at the same n (see CONVENTIONS)."
    from kdd_semnoma import zoo
    from kdd_semnoma.classifier import classifier_outputs
    from kdd_semnoma.metrics import feature_distances
    n = len(fake)
    if len(x_test) < 2 * n or len(x_train) < n:
        raise ValueError(f"{n} samples need {2 * n} test and {n} training images (have {len(x_test)}, {len(x_train)}): lower --n_samples.")
    clf = zoo.load('cifarnet-cifar10')
    feats = lambda x: classifier_outputs(clf, x)[1]
    ref, other, tr = reference_draws(len(x_test), len(x_train), n, seed)
    f_ref, f_other = feats(x_test[ref]), feats(x_test[other])
    out = {}
    for name, f in (('', feats(fake)), ('_floor_test', f_other), ('_train_vs_test', feats(x_train[tr]))):
        d = feature_distances(f, f_ref, seed=seed)
        out[f'fid_cifarnet{name}'] = (d['fid_cifarnet'], None)
        out[f'kid_cifarnet{name}'] = (d.get('kid_cifarnet'), d.get('kid_cifarnet_se'))
    return out


@torch.inference_mode()
def sample(unet, sch, n: int, steps: int = 50, bs: int = 256, seed: int = 0,
           precision: str = 'fp32') -> torch.Tensor:  # (n, 3, H, W) in [0, 1]
    "Unconditional DDIM samples from pure noise (the prior's own images), loop written out; the UNet under `precision`'s autocast."
    from kdd_semnoma.core import autocast
    from kdd_semnoma.diffusion import from_model
    dev = next(unet.parameters()).device; s = unet.config.sample_size
    g = torch.Generator().manual_seed(seed); outs = []
    sch.set_timesteps(steps)
    for i in range(0, n, bs):
        x = torch.randn(min(bs, n - i), 3, s, s, generator=g).to(dev)
        for t in sch.timesteps:
            with autocast(dev, precision): eps = unet(x, t).sample
            x = sch.step(eps.float(), t, x, eta=0.0).prev_sample
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


def _command(argv) -> str:
    "This script's command line (the arguments given to main, or the process's)."
    return 'python bench/train_prior.py ' + shlex.join(sys.argv[1:] if argv is None else list(argv))


def loss_points(hist: list) -> list:  # [(step, loss, n steps averaged)], about 50 of the history plus the last, no repeats
    "The loss curve written to the report, from train_prior's history [{'step', 'loss', ...}]."
    if not hist: return []
    idx = sorted(set(range(0, len(hist), max(1, len(hist) // 50))) | {len(hist) - 1})
    return [(hist[i]['step'], round(hist[i]['loss'], 5), hist[i]['step'] - (hist[i - 1]['step'] if i else 0)) for i in idx]


def final_values(doc: dict) -> dict:  # {metric: (value, se or None)} of the records at the report's last step
    "The held-out errors and sample distances of a prior report (`prior_results`), read from its records (with SE)."
    last = doc['steps_done']
    return {r['metric']: (r['value'], r.get('se')) for r in doc['records'] if r['step'] == last and r['metric'] != 'loss'}


def prior_results(*, name: str, description: str, config: dict, seed: int, data: str, steps_done: int,
                  loss: list,           # [(step, loss, n)] from loss_points
                  heldout: dict,        # {'eps_mse_t<t>': value} from heldout_eps_mse
                  heldout_n: int,       # test images behind each held-out value
                  fid: dict,            # {} (no samples) or try_fid's dict plus 'n' (samples compared; 0 if not computed)
                  command: str, command_note: str | None = None,
                  heldout_sigma: dict | None = None,   # heldout_eps_mse_at_sigmas
                  dists: dict | None = None,           # cifarnet_distances, with dists_n samples
                  dists_n: int = 0, **fields) -> dict:
    "The prior's report as a results dict in the kit's schema (records x = 'step', user -1)."
    from kdd_semnoma.results import make_results
    recs = [dict(step=s, user=-1, metric='loss', value=v, n=n) for s, v, n in loss]
    recs += [dict(step=steps_done, user=-1, metric=k, value=v, n=heldout_n, t=int(k.rsplit('_t', 1)[1])) for k, v in heldout.items()]
    recs += [dict(step=steps_done, user=-1, metric=k, value=v, n=heldout_n, t=t) for k, (t, v) in (heldout_sigma or {}).items()]
    recs += [dict(step=steps_done, user=-1, metric=k, value=v, n=dists_n, **({'se': se} if se is not None else {}))
             for k, (v, se) in (dists or {}).items()]
    conv = dict(CONVENTIONS)
    if fid:
        recs.append(dict(step=steps_done, user=-1, metric='fid', value=fid['fid'], n=fid['n'], note=fid.get('fid_note', '')))
        if fid.get('fid_conventions'): conv['fid_conventions'] = fid['fid_conventions']
    return make_results(name, recs, x='step', description=description, config=config, seed=seed, data=data, conventions=conv,
                        steps_done=steps_done, **fields, command=command, **({'command_note': command_note} if command_note else {}))


LEGACY_KEYS = ('name', 'description', 'config', 'seed', 'data', 'device', 'params_M', 'steps_done', 'train_s', 'loss_curve',
               'heldout', 'sample_s', 'fid', 'fid_note', 'fid_conventions', 'command')


def training_command(old: dict) -> str | None:
    "The training command of a legacy report: recorded in it, or rebuilt from its config, data and seed (None if no preset fits)."
    from kdd_semnoma.diffusion import PRIOR_PRESETS
    if old.get('command') or (old.get('config') or {}).get('command'): return old.get('command') or old['config']['command']
    cfg = json.loads(json.dumps(old.get('config') or {}))
    from kdd_semnoma.diffusion import PriorConfig
    for k, v in json.loads(json.dumps(asdict(PriorConfig()))).items():
        if k in ('t_max',): cfg.setdefault(k, v)    # fields added after the legacy layout: their defaults
    free = ('steps', 'batch_size', 'lr')           # the preset fields main() lets the command line change
    for size, preset in PRIOR_PRESETS.items():
        ref = json.loads(json.dumps(asdict(preset)))
        if set(ref) == set(cfg) and all(ref[k] == cfg[k] for k in ref if k not in free):
            args = ['--data', old['data'], '--size', size, '--steps', cfg['steps'], '--batch_size', cfg['batch_size']]
            if cfg['lr'] != ref['lr']: args += ['--lr', cfg['lr']]
            if old.get('seed'): args += ['--seed', old['seed']]
            return 'python bench/train_prior.py ' + shlex.join(map(str, args)) + f" --out_dir DIR/{old['name']}"
    return None


def restate(old_path, out_path=None, argv=None) -> Path:
    "Rewrite a legacy (ad-hoc layout) train_prior report into the results schema; every number carried over unchanged."
    from kdd_semnoma.results import save_results
    old_path = Path(old_path); old = json.loads(old_path.read_text())
    if 'records' in old and 'results' in old: raise SystemExit(f"{old_path} is already in the results schema: nothing to restate.")
    if missing := [k for k in ('name', 'config', 'data', 'steps_done', 'loss_curve', 'heldout') if k not in old]:
        raise SystemExit(f"{old_path} lacks {missing}: not a train_prior report of the earlier layout.")
    if old['data'] != 'cifar10-npz':   # the held-out count n is only known for the CIFAR-10 test split (10,000 >= HELDOUT_N)
        raise SystemExit(f"{old_path}: data {old['data']!r}: the held-out image count is not recorded; restate supports cifar10-npz.")
    le = max(1, min(100, old['config']['steps'] // 50))   # main()'s log_every for this config
    loss, seen = [], set()
    for s, v in old['loss_curve']:
        if (s, v) in seen: continue                         # the old writer appended the last point even when sampled
        seen.add((s, v)); loss.append((s, v, s % le or le))
    fid = {}
    if 'fid' in old:
        fid = dict(fid=old['fid'], fid_note=old.get('fid_note', ''), fid_conventions=old.get('fid_conventions'),
                   n=(old.get('fid_conventions') or {}).get('n_fake', 0) if old['fid'] is not None else 0)
    train_cmd = training_command(old)
    here = _command(argv)
    note = ('written by the restate command from a report in the earlier ad-hoc layout; numbers unchanged; '
            f'n of the loss records = steps since the previous logged point (log_every {le} of that run); '
            f'n of the held-out records = {HELDOUT_N}, the script\'s fixed count')
    if train_cmd and 'DIR/' in train_cmd:
        note += '; training command rebuilt from config, data and seed (DIR, the parent of the prior folder, was not recorded)'
    extra = {k: old[k] for k in ('device', 'params_M', 'train_s', 'sample_s') if k in old}
    extra.update({k: v for k, v in old.items() if k not in LEGACY_KEYS})   # anything else is kept as it was
    doc = prior_results(name=old['name'], description=old.get('description', ''), config=old['config'], seed=old.get('seed'),
                        data=old['data'], steps_done=old['steps_done'], loss=loss, heldout=old['heldout'], heldout_n=HELDOUT_N,
                        fid=fid, command='; '.join(c for c in (train_cmd, here) if c), command_note=note, **extra)
    out = save_results(doc, Path(out_path or old_path))
    print(f"restated {old_path} -> {out}: {len(doc['records'])} records")
    return out


def main(argv=None):
    from kdd_semnoma.diffusion import PRIOR_PRESETS, load_prior
    from kdd_semnoma.prior_training import train_prior
    from kdd_semnoma.core import active_time_s
    from kdd_semnoma.core import default_device, set_seed, cli_errors, resolve_precision
    from kdd_semnoma.results import save_results
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='tiles', choices=['tiles', 'cifar10-npz'])
    p.add_argument('--size', default='tiny', choices=sorted(PRIOR_PRESETS), help="PriorConfig preset")
    p.add_argument('--steps', type=int, default=None, help="optimiser steps (default: the preset's)")
    p.add_argument('--batch_size', type=int, default=None)
    p.add_argument('--lr', type=float, default=None)
    p.add_argument('--t_max', type=int, default=None, help="train on timesteps t < T_MAX only (default: the preset's, all)")
    p.add_argument('--precision', default='auto', choices=['auto', 'fp32', 'bf16'],
                   help='training and sampling; auto: bf16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16), else fp32')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    p.add_argument('--max_minutes', type=float, default=None, help="stop and save after this wall-clock budget")
    p.add_argument('--out_dir', default=None, help="prior folder (diffusers format); rerun to resume (needed unless --restate)")
    p.add_argument('--save_every', type=int, default=2000)
    p.add_argument('--device', default=None)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n_samples', type=int, default=2000, help="DDIM samples for the grid and FID (0: none)")
    p.add_argument('--sample_steps', type=int, default=50)
    p.add_argument('--results', default=None, help="also write the report JSON here (with --restate: write there, not in place)")
    p.add_argument('--heldout_only', action='store_true',
                   help="no training: write the held-out error (per t and per sigma) of the prior in --out_dir to --results")
    p.add_argument('--restate', default=None, metavar='OLD.json',
                   help="rewrite a report of the earlier ad-hoc layout into the results schema (in place unless --results); no training")
    a = p.parse_args(argv)
    if a.restate: return restate(a.restate, a.results, argv)
    if a.out_dir is None: p.error("--out_dir is required (unless --restate)")
    if a.heldout_only: return heldout_only(a, argv)
    set_seed(a.seed)
    if a.threads: torch.set_num_threads(a.threads)
    dev = default_device(a.device)
    if dev.type == 'cuda':  # entry point: speed flags are allowed here (never at import time in the library)
        torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    cfg = PRIOR_PRESETS[a.size]
    cfg = replace(cfg, **{k: v for k, v in dict(steps=a.steps, batch_size=a.batch_size, lr=a.lr, t_max=a.t_max).items()
                          if v is not None})
    x_train, x_test = load_data(a.data, cfg.sample_size)
    print(f"data {a.data}: train {tuple(x_train.shape)}, test {tuple(x_test.shape)}; device {dev}; config {cfg}", flush=True)
    t0 = time.time()
    with cli_errors('python bench/train_prior.py', debug=True):   # a stop signal: one line, exit 128 + signum; rerun resumes
        hist = train_prior(x_train.to(dev), cfg, out_dir=a.out_dir, device=dev, seed=a.seed, save_every=a.save_every,
                           max_minutes=a.max_minutes, log_every=max(1, min(100, cfg.steps // 50)), show_progress=False,
                           precision=a.precision)
    train_s = time.time() - t0
    pr = load_prior(a.out_dir, device=dev)
    if pr.meta.get('step', 0) < cfg.steps:        # a campaign call that ran out of --max_minutes: resume it later
        print(f"{a.out_dir}: {pr.meta.get('step')} of {cfg.steps} steps after {train_s / 60:.1f} min this call; "
              f"rerun the same command to continue (the report is written when all steps are done)", flush=True)
        return None
    n_params = sum(p.numel() for p in pr.unet.parameters())
    from kdd_semnoma.core import cpu_info
    steps_done = pr.meta.get('step')
    act = active_time_s(hist)                     # the training time with pauses (a stopped process) taken out
    fields = dict(device=str(dev), params_M=round(n_params / 1e6, 2), steps_done=steps_done, train_s=round(train_s, 1),
                  precision=pr.meta.get('precision'), epochs=round(steps_done * cfg.batch_size / len(x_train), 2),
                  train_wall_s_total=(hist[-1]['time_s'] if hist else None), n_train=len(x_train),
                  train_active_s=round(act['active_s'], 1), train_paused_s=round(act['paused_s'], 1), n_pauses=act['n_pauses'],
                  **({'cpu': cpu_info()} if dev.type == 'cpu' else {}))
    heldout = heldout_eps_mse(pr.unet, pr.scheduler, x_test)
    heldout_sigma = heldout_eps_mse_at_sigmas(pr.unet, pr.scheduler, x_test)
    fid, dists = {}, {}
    if a.n_samples:
        sample_prec = resolve_precision(a.precision, dev)     # the training's arithmetic (bf16 on a native-bf16 CPU)
        t1 = time.time(); fake = sample(pr.unet, pr.scheduler, a.n_samples, a.sample_steps, seed=a.seed, precision=sample_prec)
        fields.update(sample_s=round(time.time() - t1, 1), sample_precision=sample_prec)
        r = int(math.sqrt(min(64, len(fake)))); H, W = fake.shape[-2:]
        grid = fake[:r * r].reshape(r, r, 3, H, W).permute(0, 3, 1, 4, 2).reshape(r * H, r * W, 3)   # (rH, rW, 3)
        from PIL import Image
        Image.fromarray((grid * 255).round().byte().numpy()).save(Path(a.out_dir) / 'samples.png')
        ref = reference_draws(len(x_test), len(x_train), a.n_samples, a.seed)[0]
        fid = try_fid(fake, x_test[ref].float() / 255)            # the test images the FID-CN reference uses
        fid['n'] = len(fake) if fid['fid'] is not None else 0
        if a.data == 'cifar10-npz': dists = cifarnet_distances(fake, x_test, x_train, seed=a.seed)
    doc = prior_results(name=Path(a.out_dir).name, description=f"UNet2DModel DDPM prior, preset {a.size}, EMA weights",
                        config=asdict(cfg), seed=a.seed, data=a.data, loss=loss_points(hist), heldout=heldout,
                        heldout_n=min(HELDOUT_N, len(x_test)), fid=fid, command=_command(argv), heldout_sigma=heldout_sigma,
                        dists=dists, dists_n=a.n_samples if dists else 0, **fields)
    save_results(doc, Path(a.out_dir) / 'train_report.json')
    if a.results: save_results(doc, a.results)
    print(json.dumps({k: v for k, v in doc.items() if k not in ('records', 'results', 'conventions')}, indent=1))
    print(json.dumps({r['metric']: r['value'] for r in doc['records'] if r['metric'] != 'loss'}, indent=1))


def heldout_only(a, argv) -> dict:
    "The held-out error of an existing prior (any schedule), per t and per sigma, as a report (no training, no samples)."
    from kdd_semnoma.diffusion import load_prior
    from kdd_semnoma.results import save_results
    pr = load_prior(a.out_dir, device=a.device or 'cpu')
    _, x_test = load_data(a.data, pr.unet.config.sample_size)
    doc = prior_results(name=Path(a.out_dir).name, description='held-out denoising error of an existing prior (--heldout_only)',
                        config=dict(pr.meta.get('config') or {}), seed=a.seed, data=a.data, steps_done=pr.meta.get('step'),
                        loss=[], heldout=heldout_eps_mse(pr.unet, pr.scheduler, x_test), heldout_n=min(HELDOUT_N, len(x_test)),
                        fid={}, command=_command(argv), heldout_sigma=heldout_eps_mse_at_sigmas(pr.unet, pr.scheduler, x_test),
                        beta_schedule=pr.scheduler.config.beta_schedule)
    if a.results: save_results(doc, a.results)
    print(json.dumps({r['metric']: round(r['value'], 5) for r in doc['records']}, indent=1))
    return doc


if __name__ == '__main__':
    main()
