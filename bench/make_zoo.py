#!/usr/bin/env python
"""Export the KD study's seed-0 systems (and teachers) into zoo/ with measured model cards.

    KDD_SEMNOMA_DATA=../shared/data python bench/make_zoo.py --runs ~/.cache/kdd_semnoma/runs/kd_study
    KDD_SEMNOMA_DATA=../shared/data python bench/make_zoo.py --budget long --runs ~/.cache/kdd_semnoma/runs/kd_study_long

Each entry: model.safetensors (weights only), config.json (kind, JSCCConfig, ChannelConfig, training config),
README.md (card: data, preset, steps, wall time, commit, and the PSNR/SSIM table measured here on the 466
pixel-exact CIFAR-10 test pairs with the seeded sweep of 10_evaluate). zoo/SHA256SUMS is rewritten.
"""
from __future__ import annotations
import argparse, os, subprocess
from pathlib import Path
from kdd_semnoma.kd_study import BUDGETS, run_dir, record_path, recorded_code, study_name   # the study's layout

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get('KDD_STUDY_RESULTS', ROOT / 'results'))   # as bench/kd_study.py: where the study's records are
TRAIN_COMMIT = 'bdd6c37'   # the training code of the short study's runs (they predate the per-run record of the commit)
ENTRIES = {  # zoo name -> (channel, study arm, seed, what)
    'teacher-cifar10-awgn': ('awgn', 'teacher', 0, 'orthogonal teacher: shared encoder and decoder, '
                                                   'every user on its own interference-free channel'),
    'kd-semnoma-cifar10-awgn': ('awgn', 'kd', 0, 'KD-SemNOMA: SemNOMA distilled from the teacher '
                                                 '(faithful KD: 10 L1 + 100K/(hw)^2 FA + 1 CrossKD)'),
    'semnoma-cifar10-awgn': ('awgn', 'scratch', 0, 'SemNOMA without KD, trained from scratch (the reference baseline)'),
    'oma-cifar10-awgn': ('awgn', 'oma', 0, 'OMA/TDMA DeepJSCC: each user gets half the channel uses, power boosted'),
    'teacher-cifar10-rayleigh': ('rayleigh', 'teacher', 0, 'orthogonal teacher on Rayleigh block fading with CSI'),
    'kd-semnoma-cifar10-rayleigh': ('rayleigh', 'kd', 0, 'KD-SemNOMA on Rayleigh block fading with CSI (faithful KD)'),
    'semnoma-cifar10-rayleigh': ('rayleigh', 'scratch', 0, 'SemNOMA without KD from scratch, Rayleigh block fading with CSI'),
}


def git(*args) -> str:
    return subprocess.run(['git', *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def trained_by(channel: str, arm: str, seed: int, budget: str) -> str:
    "The commit whose code trained a study run (recorded in its per-image record); the short study's runs predate that record."
    import json
    import numpy as np
    npz = record_path(RESULTS / study_name(budget), channel, arm, seed)
    meta = json.loads(str(np.load(npz)['meta'])) if npz.is_file() else {}
    return meta.get('code') or (TRAIN_COMMIT if budget == 'short' else recorded_code(meta, budget))


def card(name: str, what: str, ck: dict, last: dict, table: str, cfg, commit: str = TRAIN_COMMIT) -> str:
    from kdd_semnoma.train import TrainConfig
    tc, jc = ck['train_config'], ck['config']
    init = TrainConfig.from_dict(tc).init_from
    lat = cfg.latent_shape
    bw = cfg.bandwidth_ratio_per_user
    chan = 'AWGN' if ck['channel']['fading'] == 'none' else ck['channel']['fading'] + ' block fading, CSI at transmitter and receiver'
    kd = ''
    if tc['stage'] == 'student':
        from kdd_semnoma.train import TrainConfig
        t = TrainConfig.from_dict(tc)
        kd = (f"- KD objective: 10·L1 + {t.loss_weights.fa_weight((1, t.n_users, *lat)):.4f}·FA (the reference's effective weight "
              f"100·K/(h·w)²) + {t.kd.crosskd:g}·CrossKD at decoder-sequence index {t.crosskd_at}; frozen eval-mode teacher\n")
    return f"""# {name}

{what}.

- data: CIFAR-10 training images from the shared JPEG (q≈75) export (50,000 minus a 10 % validation split);
  model selection on that validation split; never on the test images
- preset: `cpu-small` (ConvNeXt dims {tuple(jc['dims'])}, depths {tuple(jc['depths'])}, latent {lat[0]}×{lat[1]}×{lat[2]} =
  {cfg.n_symbols} complex channel uses per block, K = {cfg.n_users} users: bandwidth ratio {bw:.4f} = 1/{round(1 / bw)} per user)
- channel: {chan}, training SNR ~ U[{tc['snr_low']:g}, {tc['snr_high']:g}] dB
- training: stage `{tc['stage']}`{', init ' + init if tc['stage'] in ('semnoma', 'student') else ''}, {last['step']} steps
  (best validation checkpoint: step {ck['step']}), batch {tc['batch_size']} groups, AdamW lr {tc['lr']:g} ({tc['lr_schedule']},
  {tc['warmup_steps']} warm-up steps), weight decay {tc['weight_decay']:g}, gradient clipping {tc['grad_clip'] or 'none'}, seed {tc['seed']}
{kd}- wall time: {last['time_s'] / 60:.1f} min of training on one CPU thread (2-core machine, two runs side by side)
- commit: trained by `bench/kd_study.py` with the training code of commit {commit};
  exported at {git('rev-parse', '--short', 'HEAD')} by `bench/make_zoo.py`
- load: `kdd_semnoma.zoo.load('{name}')`, or `kdd_eval --checkpoint zoo:{name}`

## Measured

466 pixel-exact CIFAR-10 test pairs (932 images), the model's own channel, seeded sweep of `10_evaluate`
(SNR point i draws its noise and fading from generator(i)); PSNR is the mean of per-image PSNR.

{table}
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', required=True, help='the kd_study checkpoint folder')
    p.add_argument('--only', nargs='*', default=None, help='export only these entries')
    p.add_argument('--budget', default='short', choices=sorted(BUDGETS),
                   help='the study the runs belong to (bench/kd_study.py --budget)')
    p.add_argument('--out', default=str(ROOT / 'zoo'), help='zoo folder to write (default: this checkout\'s zoo/)')
    args = p.parse_args(argv)
    from kdd_semnoma.semnoma import read_checkpoint, build_from_checkpoint
    from kdd_semnoma.data import get_dls
    from kdd_semnoma.evaluate import evaluate
    from kdd_semnoma.results import records_to_table
    from kdd_semnoma.zoo import export_entry
    test = get_dls('cifar10-npz', 2, 64, seed=0).test
    for name, (channel, arm, seed, what) in ENTRIES.items():
        if args.only and name not in args.only: continue
        d = run_dir(Path(args.runs), channel, arm, seed)
        if not (d / 'best.pt').is_file(): print(f"skip {name}: {d}/best.pt not there yet"); continue
        ck, last = read_checkpoint(d / 'best.pt'), read_checkpoint(d / 'last.pt')
        model = build_from_checkpoint(ck).eval()
        recs = evaluate(model, test, '0:20:5', seed=0)
        table = records_to_table(recs, metrics=['psnr', 'ssim'], per_user=True, digits=3)
        text = card(name, what, ck, last, table, model.net_cfg if arm == 'oma' else model.cfg, trained_by(channel, arm, seed, args.budget))
        print(f"{name}: {d} -> {export_entry(ck, name, text, args.out)}")


if __name__ == '__main__':
    main()
