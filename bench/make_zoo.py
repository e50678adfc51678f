#!/usr/bin/env python
"""Export the KD study's seed-0 systems (and teachers) into zoo/ with measured model cards.

    KDD_SEMNOMA_DATA=../shared/data python bench/make_zoo.py --runs ~/.cache/kdd_semnoma/runs/kd_study
    KDD_SEMNOMA_DATA=../shared/data python bench/make_zoo.py --budget long --runs ~/.cache/kdd_semnoma/runs/kd_study_long
    KDD_SEMNOMA_DATA=../shared/data python bench/make_zoo.py --prior ~/.cache/kdd_semnoma/runs/prior-cifar10-cpu \
        --prior_name prior-cifar10-cpu --prior_results results/prior_cifar10_cpu.json
    python bench/make_zoo.py --keep kd-semnoma-cifar10-awgn kd-semnoma-cifar10-awgn-long --why "..."

Each entry: model.safetensors (weights only), config.json (kind, JSCCConfig, ChannelConfig, training config),
README.md (card: data, preset, steps, wall time, commit, and the PSNR/SSIM table measured here on the 466
pixel-exact CIFAR-10 test pairs with the seeded sweep of 10_evaluate). zoo/SHA256SUMS is rewritten.

A diffusion prior (`--prior RUN_DIR`, a bench/train_prior.py output folder) is exported in diffusers format: its EMA
UNet stored in float16 (the zoo holds at most 50 MB per entry; the card records how far float16 storage moves the
predicted noise on held-out images), the scheduler, kdd_prior.json, and a card built from its results file (recipe,
steps, epochs, wall time, CPU, held-out error, sample FID-CN/KID-CN when measured).

`--keep SRC NEW` copies today's entry SRC, byte for byte, to NEW before SRC is retrained, so that work built on SRC's
weights (the refinement studies' decodings) keeps its input under a name of its own; the card says so and why.
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


def time_words(wall_s: float, active_s: float, paused_s: float, n_pauses: int, unit: str = 'min', wall_what: str = 'wall time') -> str:
    "A training time for a card: the wall time, or the active time with the pauses (core.active_time_s) taken out where there were any."
    div = {'min': 60, 'h': 3600}[unit]
    if not n_pauses: return f"wall time: {wall_s / div:.1f} {unit}"
    return (f"training time: {active_s / div:.1f} {unit} ({wall_s / div:.1f} {unit} of {wall_what}, less {paused_s / div:.1f} {unit} "
            f"in {n_pauses} pause(s) while the process was stopped)")


def system_time_words(last: dict) -> str:
    "A study run's training time from its last checkpoint, in minutes (time_words over core.active_time_s of its history)."
    from kdd_semnoma.core import active_time_s
    a = active_time_s(last.get('history') or [])
    return time_words(last['time_s'], a['active_s'], a['paused_s'], a['n_pauses'], 'min')


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
{kd}- {system_time_words(last)} of training on one CPU thread (2-core machine, two runs side by side)
- commit: trained by `bench/kd_study.py` with the training code of commit {commit};
  exported at {git('rev-parse', '--short', 'HEAD')} by `bench/make_zoo.py`
- load: `kdd_semnoma.zoo.load('{name}')`, or `kdd_eval --checkpoint zoo:{name}`

## Measured

466 pixel-exact CIFAR-10 test pairs (932 images), the model's own channel, seeded sweep of `10_evaluate`
(SNR point i draws its noise and fading from generator(i)); PSNR is the mean of per-image PSNR.

{table}
"""


MAX_ENTRY_MB = 50


def cpu_words(cpu: dict | None) -> str:
    "A results file's `cpu` record (core.cpu_info) in words."
    if not cpu: return ''
    return (f"{cpu['cpu_model']} ({cpu['cpu_count']} cores, {cpu['torch_threads']} thread(s), bf16 flags: "
            f"{', '.join(cpu['bf16_flags']) or 'none'})")


def train_time_words(doc: dict) -> str:
    "The training time of a train_prior report, in hours (time_words over its train_active_s / train_paused_s / n_pauses)."
    wall = doc.get('train_wall_s_total', doc.get('train_s', 0)) or 0
    return time_words(wall, doc.get('train_active_s', wall), doc.get('train_paused_s', 0), doc.get('n_pauses', 0),
                      'h', 'wall time in training')


def prior_card(name: str, doc: dict, storage_check: dict, samples: bool = False) -> str:
    "Model card of a diffusion prior from its bench/train_prior.py results file."
    from train_prior import final_values   # bench/train_prior.py, beside this script: the report's layout
    c, vals = doc['config'], final_values(doc)
    sig = sorted((float(k.split('sigma')[1]), v) for k, (v, _) in vals.items() if k.startswith('eps_mse_sigma') and v is not None)
    tmax = f", timesteps drawn below t = {c['t_max']}" if c.get('t_max') else ''
    lines = [f"# {name}", "",
             f"DDPM prior for diffusion refinement: diffusers `UNet2DModel` ({doc.get('params_M', '?')} M parameters), "
             f"EMA weights (decay {c['ema_decay']}), stored in float16.", "",
             f"- data: {doc['data']} (training export; never the test images)",
             f"- network: channels {tuple(c['block_out_channels'])}, {c['layers_per_block']} ResNet blocks per level, "
             f"attention at levels {tuple(c['attn_levels']) or 'none'}, GroupNorm groups {c['norm_num_groups']}",
             f"- schedule: {c['num_train_timesteps']} steps, `{c['beta_schedule']}`{tmax}; epsilon prediction",
             f"- training: {doc['steps_done']} steps of batch {c['batch_size']} ({doc.get('epochs', '?')} epochs), AdamW lr {c['lr']:g}, "
             f"{c['warmup']} warm-up steps, gradient clipping {c['grad_clip']}, random flips; precision {doc.get('precision', 'fp32')}",
             f"- {train_time_words(doc)} on {cpu_words(doc.get('cpu')) or doc.get('device', '?')}",
             f"- command: `{doc.get('command', '?')}`",
             f"- load: `kdd_semnoma.diffusion.load_prior(kdd_semnoma.diffusion.prior_dir('zoo:{name}'))`, or "
             f"`kdd_refine --prior zoo:{name} --inputs zoo:kd-semnoma-cifar10-awgn`", "", "## Measured", "",
             "Held-out noise-prediction error (mean ε-MSE over the same test images and noise at each noise level σ):", "",
             "| σ | " + " | ".join(f"{s:g}" for s, _ in sig) + " |", "|---|" + "---|" * len(sig),
             "| ε-MSE | " + " | ".join(f"{v:.4f}" for _, v in sig) + " |", ""]
    if vals.get('fid_cifarnet', (None,))[0] is not None:
        (fid, _), (kid, kid_se) = vals['fid_cifarnet'], vals.get('kid_cifarnet', (float('nan'), None))
        lines += [f"Samples (DDIM) against the JPEG test split: FID-CN {fid:.2f}, KID-CN {kid:.4f} ± {kid_se or float('nan'):.4f} "
                  "(CifarNet features, not Inception: see 08_metrics).", ""]
    if samples:
        lines += ["DDIM samples from pure noise (the first 64 of those scored above; `samples.png`, written by the training run):", "",
                  "![samples](samples.png)", ""]
    lines += [f"float16 storage: the predicted noise moves by at most {storage_check['max_abs']:.2e} (mean |Δ| "
              f"{storage_check['mean_abs']:.2e}) on {storage_check['n']} held-out images at σ {storage_check['sigmas']}.", ""]
    return "\n".join(lines)


def export_prior(run_dir: Path, name: str, results: Path, root: Path) -> Path:  # the entry folder
    "Copy a train_prior output folder into the zoo (EMA UNet in float16), write its card, rewrite SHA256SUMS."
    import json, shutil
    import torch
    from safetensors.torch import load_file, save_file
    from kdd_semnoma.diffusion import load_prior, t_for_sigma, to_model
    from kdd_semnoma.data import get_dls
    from kdd_semnoma.zoo import write_manifest
    if not (run_dir / 'unet').is_dir():
        raise SystemExit(f"make_zoo: error: {run_dir} holds no prior (unet/): pass --prior the --out_dir of bench/train_prior.py")
    if not results.is_file(): raise SystemExit(f"make_zoo: error: {results} not found: pass --prior_results the prior's results file")
    doc = json.loads(results.read_text())
    entry = root / name
    if entry.exists(): shutil.rmtree(entry)
    shutil.copytree(run_dir, entry, ignore=shutil.ignore_patterns('train_state.pt', '.*'))
    w = entry / 'unet' / 'diffusion_pytorch_model.safetensors'
    save_file({k: v.to(torch.float16).contiguous() for k, v in load_file(w).items()}, w, metadata={'format': 'pt'})
    mb = sum(p.stat().st_size for p in entry.rglob('*') if p.is_file()) / 2 ** 20
    if mb > MAX_ENTRY_MB:
        shutil.rmtree(entry)
        raise SystemExit(f"make_zoo: error: {name} would take {mb:.1f} MB (> {MAX_ENTRY_MB}): train a smaller prior preset")
    a, b = load_prior(run_dir), load_prior(entry)          # fp32 run against the float16 zoo copy, both computed in fp32
    x = get_dls('cifar10-npz', 2, 64, seed=0).test.dataset if (doc.get('data') == 'cifar10-npz') else None
    x0 = to_model(torch.stack([x[i][0][0] for i in range(16)]) if x is not None else torch.rand(16, 3, 32, 32))   # (16, 3, 32, 32)
    g, sigmas, diffs = torch.Generator().manual_seed(0), (0.075, 0.3), []
    with torch.no_grad():
        for s in sigmas:
            t = t_for_sigma(a.scheduler, s)
            noisy = a.scheduler.add_noise(x0, torch.randn(x0.shape, generator=g), torch.full((len(x0),), t))
            diffs.append((a.unet(noisy, t).sample - b.unet(noisy, t).sample).abs())
    d = torch.cat(diffs)
    check = dict(max_abs=d.max().item(), mean_abs=d.mean().item(), n=len(x0), sigmas=sigmas)
    (entry / 'README.md').write_text(prior_card(name, doc, check, samples=(entry / 'samples.png').is_file()))
    write_manifest(root)
    return entry


def keep_entry(src: str, new: str, why: str, root: Path) -> Path:  # the new entry folder
    "Copy zoo entry `src` unchanged to `new` (same weights and config; the card renamed, with a line saying why); rewrite SHA256SUMS."
    import shutil
    from kdd_semnoma.zoo import verify, write_manifest, ZOO_FILES
    if not (root / src / 'config.json').is_file(): raise SystemExit(f"make_zoo: error: no zoo entry {src!r} in {root} to keep")
    if (root / new).exists(): raise SystemExit(f"make_zoo: error: {root / new} exists already: choose another name for --keep")
    verify(src, root)                                                   # a corrupted entry is not copied
    text = (root / src / 'README.md').read_text()
    lines = text.replace(f"'{src}'", f"'{new}'").replace(f"zoo:{src}`", f"zoo:{new}`").splitlines()
    if lines and lines[0] == f'# {src}': lines[0] = f'# {new}'
    i = next((j for j, ln in enumerate(lines) if ln.startswith('- ')), len(lines))   # the card's first list item
    lines.insert(i, f"- kept: `{src}` as it was before it was retrained, copied unchanged (same weights) by "
                    f"`bench/make_zoo.py --keep {src} {new}` at {git('rev-parse', '--short', 'HEAD') or 'an unknown commit'}: {why}")
    (root / new).mkdir()
    for f in ZOO_FILES:
        if f != 'README.md': shutil.copy2(root / src / f, root / new / f)
    (root / new / 'README.md').write_text('\n'.join(lines) + '\n')
    write_manifest(root)
    return verify(new, root)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', default=None, help='the kd_study checkpoint folder')
    p.add_argument('--prior', default=None, help='export this bench/train_prior.py output folder instead (diffusion prior)')
    p.add_argument('--prior_name', default='prior-cifar10-cpu'); p.add_argument('--prior_results', default=None)
    p.add_argument('--only', nargs='*', default=None, help='export only these entries')
    p.add_argument('--budget', default='short', choices=sorted(BUDGETS),
                   help='the study the runs belong to (bench/kd_study.py --budget)')
    p.add_argument('--out', default=str(ROOT / 'zoo'), help='zoo folder to write (default: this checkout\'s zoo/)')
    p.add_argument('--keep', nargs=2, metavar=('SRC', 'NEW'), default=None,
                   help='copy entry SRC unchanged to NEW (before SRC is retrained), nothing else')
    p.add_argument('--why', default='work built on these weights keeps its input', help="--keep: the reason, for NEW's card")
    args = p.parse_args(argv)
    if args.keep:
        print(f"kept {args.keep[0]} -> {keep_entry(*args.keep, args.why, Path(args.out))}")
        return
    if args.prior:
        res = Path(args.prior_results or ROOT / 'results' / (args.prior_name.replace('-', '_') + '.json'))
        print(f"{args.prior_name}: {args.prior} -> {export_prior(Path(args.prior).expanduser(), args.prior_name, res, Path(args.out))}")
        return
    if not args.runs: raise SystemExit("make_zoo: error: pass --runs the kd_study checkpoint folder (or --prior a prior folder)")
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
