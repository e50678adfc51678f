#!/usr/bin/env python
"""The KD study (issue 10): does distillation from the orthogonal teacher make a better SemNOMA, with the reference's
*effective* loss, equal training conditions, several seeds and 95 % confidence intervals?

On CIFAR-10 (train on the shared JPEG npz, evaluate on the 466 pixel-exact test pairs), per channel (AWGN; Rayleigh
block fading with CSI), from ONE shared teacher, every arm gets the same optimiser, schedule, batch and student steps:

  scratch        SemNOMA (no KD) from scratch, S steps                       (the reference's baseline)
  scratch-total  SemNOMA (no KD) from scratch, T + S steps (equal total compute, teacher's steps included)
  nokd           SemNOMA (no KD) from the teacher, S steps
  kd             KD-SemNOMA, faithful: 10 L1 + 100 K/(hw)^2 FA + 1 CrossKD at the reference's cut point
  crosskd-only   10 L1 + CrossKD                      fa-only   10 L1 + reference FA
  fa-x0.1 … fa-x2000   faithful KD with the FA weight scaled (x2000 is the kit's old over-weighted objective)
  fa-dec         faithful KD + FA on the per-user decoder stages (weight 1; an extension, not in the references)

Each run is one process (1 thread) that trains with resumable checkpoints and writes per-image PSNR/SSIM at
0/5/10/15/20 dB to results/kd_study/<channel>/<arm>-s<seed>.npz; `report` turns those into
results/kd_study_cifar10_<channel>.json (means, bootstrap CIs over seeds and test pairs, KD gains).

    KDD_SEMNOMA_DATA=../shared/data python bench/kd_study.py all --jobs 2     # the whole queue, resumable
    python bench/kd_study.py report                                          # JSON from the committed npz files
    KDD_SEMNOMA_DATA=../shared/data python bench/kd_study.py run awgn kd 0   # one run
    ... all --budget long   # the issue's budget (6000 teacher / 9000 student steps) into results/kd_study_long/
    ... all --budget xlong --channels awgn --seeds 1 --arms kd scratch oma --jobs 1   # issue 24's longer zoo chain

The long study spans sessions. To train every run on the same code while the kit keeps changing, run the queue
from a frozen worktree and let it write into this checkout's results (each npz records its commit, meta 'code'):

    git worktree add --detach ../frozen HEAD
    PYTHONPATH=../frozen KDD_STUDY_RESULTS=$PWD/results python ../frozen/bench/kd_study.py all --budget long ...
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from kdd_semnoma.channel import fading_of
from kdd_semnoma.kd_study import BUDGETS, N_BOOT, bootstrap_mean, t_interval, run_dir, record_path, recorded_code, study_name as _study_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get('KDD_STUDY_RESULTS', ROOT / 'results'))   # a frozen copy of the code can write into main's results
NPZ_DIR = RESULTS / 'kd_study'
SNRS = (0., 5., 10., 15., 20.)
CHANNELS = ('awgn', 'rayleigh')   # channel names of channel.CHANNEL_NAMES studied here
STUDY = 'short'
BUDGET = BUDGETS[STUDY]
OUT_ACT = 'sigmoid'   # decoder output activation of the selected study's runs; 'none' (the reference's) is issue 28's arm
PRECISION = 'fp32'    # training precision of the selected study's runs; 'bf16' is issue 24's quality check (scores stay fp32)
MAIN_ARMS = ('scratch', 'nokd', 'kd')
EXTRA_ARMS = ('scratch-total', 'fa-x2000', 'crosskd-only', 'fa-only', 'fa-x100', 'fa-x10', 'fa-x0.1', 'fa-dec')


def arm_spec(arm: str, latent_hw=(8, 8), n_users: int = 2) -> dict:
    "Stage, init, KD weights and step count of an arm (steps: 'S' student, 'T+S' teacher + student, 'T' teacher)."
    from kdd_semnoma.kd import KDWeights, reference_fa_weight
    ref = reference_fa_weight(latent_hw, n_users)
    if arm == 'teacher': return dict(stage='teacher', steps='T')
    if arm == 'oma': return dict(stage='baseline', baseline='oma', steps='S')
    if arm == 'scratch': return dict(stage='semnoma', init='scratch', steps='S')
    if arm == 'scratch-total': return dict(stage='semnoma', init='scratch', steps='T+S')
    if arm == 'nokd': return dict(stage='semnoma', init='teacher', steps='S')
    if arm == 'kd': return dict(stage='student', kd=KDWeights(), steps='S')
    if arm == 'crosskd-only': return dict(stage='student', kd=KDWeights(fa=0.), steps='S')
    if arm == 'fa-only': return dict(stage='student', kd=KDWeights(crosskd=0.), steps='S')
    if arm == 'fa-dec': return dict(stage='student', kd=KDWeights(fa_dec=1.), steps='S')
    if arm.startswith('fa-x'): return dict(stage='student', kd=KDWeights(fa=ref * float(arm[4:])), steps='S')
    raise ValueError(f"unknown arm {arm!r}; choose teacher, oma, {', '.join(MAIN_ARMS + EXTRA_ARMS)} or fa-xN.")


def select_budget(name: str, out_act: str = 'sigmoid', precision: str = 'fp32') -> None:
    """Point BUDGET, NPZ_DIR and the results names at study `name` ('short': results/kd_study/, 'long': results/kd_study_long/,
    'xlong': results/kd_study_xlong/), with decoders ending in `out_act` ('none' adds '_outact-none' to the names), trained in
    `precision` ('bf16': '_bf16')."""
    global STUDY, BUDGET, NPZ_DIR, OUT_ACT, PRECISION
    if precision not in ('fp32', 'bf16'): raise SystemExit(f"unknown --precision {precision!r}; choose fp32 or bf16.")
    PRECISION = precision
    if name not in BUDGETS: raise SystemExit(f"unknown --budget {name!r}; choose {' or '.join(BUDGETS)}.")
    from kdd_semnoma.deepjscc import OUT_ACTS
    if out_act not in OUT_ACTS: raise SystemExit(f"unknown --out_act {out_act!r}; choose {' or '.join(OUT_ACTS)}.")
    STUDY, BUDGET, OUT_ACT = name, BUDGETS[name], out_act
    NPZ_DIR = RESULTS / study_name()


def study_name(study: str | None = None, out_act: str | None = None, precision: str | None = None) -> str:
    "Folder / results stem of a study (default: the selected one): kd_study (short), kd_study_long, kd_study_outact-none, ..."
    return _study_name(study or STUDY, out_act or OUT_ACT, precision or PRECISION)


def npz_path(channel: str, arm: str, seed: int) -> Path:
    "The per-image record of a run of the selected study."
    return record_path(NPZ_DIR, channel, arm, seed)


def test_pairs():
    "The 466 pixel-exact CIFAR-10 test pairs, (466, 2, 3, 32, 32), in the kit's fixed grouping."
    from kdd_semnoma.data import grouped_test_set
    return grouped_test_set('cifar10-npz', 2, seed=0)


def per_image_scores(model, x, snrs=SNRS, *, seed: int = 0, batch: int = 128, precision: str = 'fp32') -> dict:
    """PSNR and SSIM per image: arrays (n_snr, N, K); SNR point i draws all noise from make_generator(seed*1000 + i).
    Inference in `precision` (the studies' scores are fp32)."""
    import torch
    from kdd_semnoma.core import make_generator
    from kdd_semnoma.metrics import psnr, ssim
    from kdd_semnoma.semnoma import decode
    out = {'psnr': [], 'ssim': []}
    for i, snr in enumerate(snrs):
        g, p, s = make_generator(seed * 1000 + i), [], []
        for xb in x.split(batch):
            x_hat = decode(model, xb, snr, generator=g, precision=precision)
            p.append(psnr(x_hat, xb)); s.append(ssim(x_hat, xb))
        out['psnr'].append(torch.cat(p)); out['ssim'].append(torch.cat(s))
    return {k: torch.stack(v).numpy().astype(np.float32) for k, v in out.items()}


def outside_fraction(model, x, snrs=SNRS, *, seed: int = 0, batch: int = 128) -> np.ndarray:  # (n_snr,)
    """Fraction of the raw decoder outputs (before the metrics' clamp) outside [0, 1] at each SNR, with the noise draws
    of `per_image_scores` (0 by construction for a sigmoid output)."""
    import torch
    from kdd_semnoma.core import make_generator
    out = []
    with torch.no_grad():
        for i, snr in enumerate(snrs):
            g, n_out, n = make_generator(seed * 1000 + i), 0, 0
            for xb in x.split(batch):
                x_raw = model.eval()(xb, torch.full((len(xb),), float(snr)), generator=g).x_hat
                n_out += int(((x_raw < 0) | (x_raw > 1)).sum()); n += x_raw.numel()
            out.append(n_out / n)
    return np.array(out, np.float64)


def train_config_for(channel: str, arm: str, seed: int, budget: dict):
    from kdd_semnoma.train import train_config
    spec = arm_spec(arm)
    steps = {'T': budget['teacher_steps'], 'S': budget['student_steps'],
             'T+S': budget['teacher_steps'] + budget['student_steps']}[spec.pop('steps')]
    return train_config(spec.pop('stage'), budget['preset'], fading=fading_of(channel), max_steps=steps,
                        batch_size=budget['batch_size'], val_every=budget['val_every'],
                        seed=0 if arm == 'teacher' else seed, precision=PRECISION,   # fp32 unless the bf16 check
                        **spec, **({} if OUT_ACT == 'sigmoid' else {'out_act': OUT_ACT}))


def do_run(channel: str, arm: str, seed: int, runs: Path, budget: dict = BUDGET, data: str = 'cifar10-npz') -> Path:
    "Train (or resume) one run and write its per-image scores; a run whose npz exists is skipped."
    import torch
    torch.set_num_threads(int(os.environ.get('KDD_STUDY_THREADS', '1')))
    from kdd_semnoma.train import train_stage, load_model
    from kdd_semnoma.semnoma import read_checkpoint
    target = npz_path(channel, arm, seed)
    if target.exists(): return target
    cfg = train_config_for(channel, arm, seed, budget)
    out = run_dir(runs, channel, arm, seed)
    out.mkdir(parents=True, exist_ok=True); (out / 'RUNNING').write_text(str(os.getpid()))   # the scheduler's lock
    teacher = run_dir(runs, channel, 'teacher', 0) / 'best.pt' if cfg.init_from == 'teacher' else None
    t0 = time.time()
    train_stage(cfg, data=data, out_dir=out, teacher=teacher, resume=(out / 'last.pt').exists(),
                device='cpu', show_progress=False)
    ck, last = read_checkpoint(out / 'best.pt'), read_checkpoint(out / 'last.pt')
    model, x_test = load_model(out / 'best.pt'), test_pairs()
    scores = per_image_scores(model, x_test)
    scores['outside'] = outside_fraction(model, x_test)
    meta = dict(channel=channel, arm=arm, seed=seed, train_config=asdict(cfg), out_act=cfg.output_act, crosskd_index=cfg.crosskd_at,
                fa_weight_effective=(cfg.loss_weights.fa_weight((1, cfg.n_users, 16, 8, 8)) if cfg.stage == 'student' else 0.),
                best_step=int(ck['step']), steps=int(last['step']), train_time_s=float(last['time_s']),
                wall_s_this_call=time.time() - t0, history=last['history'], torch_threads=torch.get_num_threads(),
                code=code_version())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix('.tmp.npz')
    np.savez_compressed(tmp, snr_db=np.array(SNRS), meta=json.dumps(meta, default=str), **scores)
    os.replace(tmp, target)
    (out / 'RUNNING').unlink(missing_ok=True)
    print(f"{channel}/{arm}-s{seed}: best step {meta['best_step']}, {meta['train_time_s'] / 60:.1f} min, "
          f"PSNR {scores['psnr'].mean((1, 2)).round(2).tolist()}", flush=True)
    return target


def code_version() -> str:
    "The commit of the code that trained a run (`git describe --always --dirty` of the kit imported), for the results."
    import kdd_semnoma
    src = Path(kdd_semnoma.__file__).resolve().parents[1]
    try: return subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=src, capture_output=True, text=True,
                               timeout=10).stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError): return 'unknown'


def run_code(meta: dict) -> str:
    "The commit a run recorded (`meta['code']`), or what is known of the selected study's runs that predate that record."
    return recorded_code(meta, STUDY)


def queue(channels, seeds: int, extras: bool, oma: bool, arms=None) -> list:
    """Runs in priority order: teachers, seed 0 main arms and OMA (together the zoo's systems, `bench/make_zoo.py`),
    the main arms' other seeds, then the single-seed AWGN extras; only the `arms` named (the teacher always) when given."""
    if arms is not None:
        for a in arms: arm_spec(a)                                   # an unknown arm fails here, before any training
        return [r for r in queue(channels, seeds, extras, oma) if r[1] in set(arms) | {'teacher'}]
    q = [(c, 'teacher', 0) for c in channels]
    q += [(c, a, 0) for c in channels for a in MAIN_ARMS]
    if oma and 'awgn' in channels: q += [('awgn', 'oma', 0)]
    q += [(c, a, s) for s in range(1, seeds) for c in channels for a in MAIN_ARMS]
    if extras and 'awgn' in channels: q += [('awgn', a, 0) for a in EXTRA_ARMS]
    return q


def running_elsewhere(runs: Path, r: tuple) -> bool:
    "A live process holds the lock of run `r` (another scheduler or a manual `run`)."
    lock = run_dir(runs, *r) / 'RUNNING'
    try: os.kill(int(lock.read_text()), 0); return True
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError): return False


def run_all(args) -> None:
    "Run the queue with `--jobs` worker processes; a run waits for its channel's teacher."
    q, running = queue(args.channels, args.seeds, not args.no_extras, not args.no_oma, args.arms), {}
    log = Path(args.runs) / 'kd_study.log'; log.parent.mkdir(parents=True, exist_ok=True)
    while q or running:
        for key, p in list(running.items()):
            if p.poll() is not None:
                running.pop(key)
                if p.returncode: print(f"FAILED {key} (exit {p.returncode}); see {log}", flush=True)
        ready = [r for r in q if npz_path(*r).exists() or r[1] == 'teacher' or npz_path(r[0], 'teacher', 0).exists()]
        elsewhere = sum(running_elsewhere(Path(args.runs), r) for r in q)      # runs of another scheduler count too
        for r in ready:
            if len(running) + elsewhere >= args.jobs: break
            q.remove(r)
            if npz_path(*r).exists(): continue
            if running_elsewhere(Path(args.runs), r): q.append(r); continue   # checked again next round
            cmd = [sys.executable, __file__, 'run', *map(str, r), '--runs', str(args.runs), '--budget', STUDY, '--out_act', OUT_ACT,
                   '--precision', PRECISION]
            running[r] = subprocess.Popen(cmd, stdout=open(log, 'a'), stderr=subprocess.STDOUT)
            print(f"{time.strftime('%H:%M:%S')} started {r}", flush=True)
        time.sleep(5)


# ---------------------------------------------------------------- report
def load_arm(channel: str, arm: str, npz_dir: Path | None = None) -> dict | None:
    """All seeds of an arm in `npz_dir` (default: the selected study's): {'psnr': (S, n_snr, N, K), 'ssim': ..., 'meta': [...]}
    and, where the runs recorded it, 'outside': (S, n_snr); or None."""
    files = list(((npz_dir or NPZ_DIR) / channel).glob('teacher.npz' if arm == 'teacher' else f'{arm}-s*.npz'))
    if not files: return None
    zs = [np.load(f) for f in files]
    meta = [json.loads(str(z['meta'])) for z in zs]
    order = np.argsort([m['seed'] for m in meta], kind='stable')           # by seed id ('s10' after 's9')
    out = dict(psnr=np.stack([zs[i]['psnr'] for i in order]), ssim=np.stack([zs[i]['ssim'] for i in order]),
               meta=[meta[i] for i in order], seeds=[meta[i]['seed'] for i in order])
    if all('outside' in z for z in zs): out['outside'] = np.stack([zs[i]['outside'] for i in order])
    return out


def pair_by_seed(a: dict, b: dict, metric: str) -> tuple:
    "Two arms' (S, n_snr, N, K) scores restricted to the seeds both have, in seed order, and those seed ids."
    common = sorted(set(a['seeds']) & set(b['seeds']))
    pick = lambda v: v[metric][[v['seeds'].index(s) for s in common]]
    return pick(a), pick(b), common


SUMMARY_GAINS = (('kd_vs_scratch', "kd − scratch (the paper's comparison)"),
                 ('nokd_vs_scratch', 'nokd − scratch (the initialisation alone)'),
                 ('kd_vs_nokd', 'kd − nokd (the distillation losses alone)'),
                 ('kd_vs_scratch-total', 'kd − scratch-total (equal total compute)'))


def gain_sentence(res: dict, paired_seeds: dict, key: str, label: str) -> str | None:
    """One line for a paired PSNR gain of a report: its value at every SNR and where its 95 % interval lies relative to
    zero. `paired_seeds`: the report's `config['paired_seeds']` (gain key -> the seed ids it pairs)."""
    k = f'gain_psnr_{key}'
    if k not in res: return None
    n = len(paired_seeds[key])
    side = {s: ('above' if lo > 0 else 'below' if hi < 0 else 'straddling') for s, (lo, hi) in zip(res['snr_db'], res[k + '_ci95'])}
    where = '; '.join(f"{w} zero at {', '.join(f'{s:g}' for s in side if side[s] == w)} dB"
                      for w in ('above', 'straddling', 'below') if w in side.values())
    return (f"{label}, {n} paired seed{'s' * (n > 1)}: " + ' / '.join(f'{v:+.2f}' for v in res[k])
            + f" dB at {' / '.join(f'{s:g}' for s in res['snr_db'])} dB SNR; 95 % interval {where}"
            + ('' if n > 1 else ' (one seed: the interval resamples test pairs only, not training randomness, so this is a '
                                'difference between two single systems, not a finding)'))


def report_channel(channel: str) -> dict | None:
    arms = {a: load_arm(channel, a) for a in ('teacher', 'oma', *MAIN_ARMS, *EXTRA_ARMS)}
    arms = {a: v for a, v in arms.items() if v is not None}
    if not arms: return None
    res, records = {'snr_db': list(SNRS)}, []
    for a, v in arms.items():
        for m in ('psnr', 'ssim'):
            rows = [bootstrap_mean(v[m][:, i]) for i in range(len(SNRS))]
            res[f'{m}_{a}'] = [r[0] for r in rows]
            res[f'{m}_{a}_ci95'] = [[r[1], r[2]] for r in rows]
            records += [dict(snr_db=s, user=-1, metric=f'{m}_{a}', value=r[0], n=v[m].shape[2], ci95=[r[1], r[2]], n_seeds=r[3])
                        for s, r in zip(SNRS, rows)]
    gains = [('kd', 'nokd'), ('kd', 'scratch'), ('nokd', 'scratch'), ('kd', 'scratch-total'), ('scratch-total', 'nokd')]
    paired_seeds = {}
    for a, b in gains:
        if a not in arms or b not in arms: continue
        for m in ('psnr', 'ssim'):
            x, y, paired_seeds[f'{a}_vs_{b}'] = pair_by_seed(arms[a], arms[b], m)
            rows = [bootstrap_mean(x[:, i], y[:, i]) for i in range(len(SNRS))]
            key = f'gain_{m}_{a}_vs_{b}'
            res[key] = [r[0] for r in rows]; res[f'{key}_ci95'] = [[r[1], r[2]] for r in rows]
            records += [dict(snr_db=s, user=-1, metric=key, value=r[0], n=arms[a][m].shape[2], ci95=[r[1], r[2]], n_seeds=r[3])
                        for s, r in zip(SNRS, rows)]
    runs = {f"{a}-s{m['seed']}" if a != 'teacher' else 'teacher':
            dict(steps=m['steps'], best_step=m['best_step'], train_time_min=round(m['train_time_s'] / 60, 2),
                 init=m['train_config'].get('init'), stage=m['train_config']['stage'], kd=m['train_config']['kd'],
                 fa_weight_effective=m['fa_weight_effective'], crosskd_index=m['crosskd_index'],
                 code=run_code(m), threads_last_call=m.get('torch_threads'))
            for a, v in arms.items() for m in v['meta']}
    any_meta = next(iter(arms.values()))['meta'][0]['train_config']
    optim = {k: any_meta[k] for k in ('lr', 'weight_decay', 'grad_clip', 'lr_schedule', 'warmup_steps', 'batch_size')}
    optim['preset'] = any_meta.get('preset', any_meta.get('model'))      # 'model' in runs made before the rename
    from kdd_semnoma import __version__
    from kdd_semnoma.results import make_results
    doc = make_results(
        f'{study_name()}_cifar10_{channel}', [dict(r) for r in records], seed=None,
        data='cifar10-npz: trained on the 50k JPEG (q75) training export minus a validation split; evaluated on the '
             '932 pixel-exact CIFAR-10 test images as 466 fixed pairs (K = 2)',
        description=f"KD study on {channel}: every arm with one optimiser configuration ({optim}), the same data, "
                    f"batch and student steps; one shared teacher. Means over seeds, pairs and users; 95 % CIs by a "
                    f"bootstrap over seeds and test pairs ({N_BOOT} resamples; pairs only for single-seed arms). "
                    f"Gains are paired by seed and test pair.",
        config=dict(budget=BUDGET, optimiser=optim, channel=channel, fading=fading_of(channel), snr_db=list(SNRS),
                    eval_noise='SNR point i draws all noise/fading from make_generator(i) (identical for every model)',
                    seeds={a: v['seeds'] for a, v in arms.items()}, paired_seeds=paired_seeds,
                    total_train_time_min=round(sum(r['train_time_min'] for r in runs.values()), 1),
                    runs=runs, version=__version__,
                    teacher_note='the teacher is frozen and in eval mode during KD (the reference leaves it in train '
                                 'mode, drop-path active)'),
        command=f'KDD_SEMNOMA_DATA=../shared/data python bench/kd_study.py all --jobs 2 --budget {STUDY}; '
                f'python bench/kd_study.py report --budget {STUDY}')
    doc['results'] = res
    doc['summary'] = [line for k, lab in SUMMARY_GAINS if (line := gain_sentence(res, paired_seeds, k, lab))]
    return doc


def report(args) -> list:
    from kdd_semnoma.results import save_results
    out = []
    for c in CHANNELS:
        doc = report_channel(c)
        if doc is None: continue
        p = save_results(doc, RESULTS / f'{study_name()}_cifar10_{c}.json'); out.append(p)
        r = doc['results']
        print(f"== {c}: " + ', '.join(f"{k[5:]} ({len(doc['config']['seeds'][k[5:]])})" for k in r
                                       if k.startswith('psnr_') and not k.endswith('ci95')))
        for k in r:
            if k.startswith('gain_psnr') and not k.endswith('ci95'):
                print(f"  {k}: " + '  '.join(f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]" for v, (lo, hi) in zip(r[k], r[k + '_ci95'])))
        for line in doc['summary']: print('  ' + line)
    return out


# ---------------------------------------------------------------- issue 28: the decoders' output activation
OUT_ACT_ARMS = ('teacher', 'scratch', 'nokd', 'kd')


def out_act_arms(channel: str = 'awgn') -> dict:
    "{out_act: {arm: load_arm(...)}} of the short study (sigmoid, the committed runs) and its out_act 'none' twin."
    return {act: {a: v for a in OUT_ACT_ARMS if (v := load_arm(channel, a, RESULTS / study_name('short', act))) is not None}
            for act in ('sigmoid', 'none')}


def out_act_report(channel: str = 'awgn') -> dict:
    """Sigmoid vs the reference's raw output, everything else equal (short study: budget, optimiser, data, seeds): per arm
    and SNR the PSNR / SSIM of each activation and the paired difference none - sigmoid, with a t-interval over the seed
    means beside the hierarchical bootstrap, and the raw outputs' fraction outside [0, 1]."""
    arms = out_act_arms(channel)
    res, records, seeds = {'snr_db': list(SNRS)}, [], {}
    for arm in OUT_ACT_ARMS:
        if arm not in arms['sigmoid'] or arm not in arms['none']: continue
        for m in ('psnr', 'ssim'):
            for act in ('sigmoid', 'none'):
                v = arms[act][arm]
                boot = [bootstrap_mean(v[m][:, i]) for i in range(len(SNRS))]
                tint = [t_interval(v[m][:, i].mean((1, 2))) for i in range(len(SNRS))]
                res[f'{m}_{arm}_{act}'] = [b[0] for b in boot]
                res[f'{m}_{arm}_{act}_ci95_boot'] = [[b[1], b[2]] for b in boot]
                res[f'{m}_{arm}_{act}_ci95_t'] = [[t[1], t[2]] for t in tint]
            a, b, common = pair_by_seed(arms['none'][arm], arms['sigmoid'][arm], m)
            seeds[arm] = common
            boot = [bootstrap_mean(a[:, i], b[:, i]) for i in range(len(SNRS))]
            tint = [t_interval((a[:, i] - b[:, i]).mean((1, 2))) for i in range(len(SNRS))]
            key = f'diff_{m}_{arm}'
            res[key] = [x[0] for x in boot]
            res[f'{key}_ci95_boot'] = [[x[1], x[2]] for x in boot]; res[f'{key}_ci95_t'] = [[t[1], t[2]] for t in tint]
            records += [dict(snr_db=s, user=-1, metric=key, value=x[0], n=a.shape[2], n_seeds=len(common), ci95_boot=[x[1], x[2]],
                             ci95_t=[t[1], t[2]]) for s, x, t in zip(SNRS, boot, tint)]
            m_all = t_interval((a - b).mean((1, 2, 3)))                 # per seed: mean over SNRs, pairs and users
            res[f'{key}_all_snr'] = m_all[0]; res[f'{key}_all_snr_ci95_t'] = [m_all[1], m_all[2]]
        res[f'outside_{arm}_none'] = arms['none'][arm]['outside'].mean(0).tolist()   # (S, n_snr) recorded per run
    runs = {f"{act}/{arm}-s{mm['seed']}": dict(steps=mm['steps'], best_step=mm['best_step'],
                                               train_time_min=round(mm['train_time_s'] / 60, 2), code=run_code(mm),
                                               out_act=mm.get('out_act', 'sigmoid'))
            for act, d in arms.items() for arm, v in d.items() for mm in v['meta']}
    from kdd_semnoma.results import make_results
    doc = make_results(
        f'out_act_cifar10_{channel}', records, seed=None,
        data='cifar10-npz: trained on the 50k JPEG (q75) training export minus a validation split; evaluated on the 932 '
             'pixel-exact CIFAR-10 test images as 466 fixed pairs (K = 2); metrics on outputs clamped to [0, 1]',
        description="The decoders' output activation (issue 28): the kit's sigmoid against the reference's raw 1x1 conv, "
                    "on the short KD study's chain (one teacher per activation, then scratch / nokd / kd for each seed), "
                    f"everything else equal: budget {BUDGETS['short']}, the study's optimiser, data, seeds and evaluation "
                    "noise. The sigmoid runs are the committed short study (results/kd_study/), the none runs "
                    "results/kd_study_outact-none/. diff = none - sigmoid, paired by seed and test pair; 95 % intervals: "
                    f"t over the seed means (ci95_t) and a bootstrap over seeds and pairs ({N_BOOT} resamples, ci95_boot).",
        config=dict(channel=channel, budget=BUDGETS['short'], snr_db=list(SNRS), paired_seeds=seeds, runs=runs,
                    precision='fp32 (training and evaluation)',
                    outside='outside_<arm>_none: fraction of raw decoder outputs outside [0, 1] on the 466 pairs at each SNR, '
                            'mean over seeds (0 by construction for sigmoid)'),
        command='KDD_SEMNOMA_DATA=../shared/data python bench/kd_study.py all --channels awgn --no_extras --no_oma '
                '--out_act none --jobs 1; python bench/kd_study.py outact')
    doc['results'] = res
    doc['summary'] = [line for arm in OUT_ACT_ARMS if (line := out_act_sentence(res, seeds, arm))]
    return doc


def precision_report(channel: str = 'awgn', zoo_systems=('kd-semnoma-cifar10-awgn', 'semnoma-cifar10-awgn')) -> dict:
    """bf16 against fp32 (issue 24): (1) training, the short study's scratch arm trained in bf16 vs the committed fp32
    runs, same seeds, both scored in fp32 (t-interval over seed means beside the bootstrap); (2) evaluation, the same
    weights (zoo systems) scored in bf16 vs fp32 with the same noise draws (bootstrap over the test pairs)."""
    from kdd_semnoma import zoo
    from kdd_semnoma.core import cpu_info, resolve_precision
    arms = {prec: load_arm(channel, 'scratch', RESULTS / study_name('short', 'sigmoid', prec)) for prec in ('fp32', 'bf16')}
    res, records, summary = {'snr_db': list(SNRS)}, [], []
    if arms['bf16'] is not None:
        for m in ('psnr', 'ssim'):
            a, b, common = pair_by_seed(arms['bf16'], arms['fp32'], m)
            boot = [bootstrap_mean(a[:, i], b[:, i]) for i in range(len(SNRS))]
            tint = [t_interval((a[:, i] - b[:, i]).mean((1, 2))) for i in range(len(SNRS))]
            res[f'train_diff_{m}'] = [x[0] for x in boot]
            res[f'train_diff_{m}_ci95_boot'] = [[x[1], x[2]] for x in boot]; res[f'train_diff_{m}_ci95_t'] = [[t[1], t[2]] for t in tint]
            records += [dict(snr_db=s, user=-1, metric=f'train_diff_{m}', value=x[0], n=a.shape[2], n_seeds=len(common),
                             ci95_boot=[x[1], x[2]], ci95_t=[t[1], t[2]]) for s, x, t in zip(SNRS, boot, tint)]
        res['train_seeds'] = common
        worst = max(max(abs(lo), abs(hi)) for lo, hi in res['train_diff_psnr_ci95_t'])
        summary.append(f"training, scratch arm, {len(common)} paired seeds: bf16 − fp32 PSNR "
                       + ' / '.join(f'{v:+.3f}' for v in res['train_diff_psnr']) + f" dB at {' / '.join(f'{s:g}' for s in SNRS)} dB; "
                       f"the 95 % t-intervals reach {worst:.3f} dB from zero, so "
                       + ('|Δ| ≤ 0.05 dB is shown' if worst <= 0.05 else f'{len(common)} seeds cannot show the goal |Δ| ≤ 0.05 dB'))
    x = test_pairs()
    for name in zoo_systems:
        model = zoo.load(name).eval()
        sc = {p: per_image_scores(model, x, precision=p) for p in ('fp32', 'bf16')}
        for m in ('psnr', 'ssim'):
            rows = [bootstrap_mean(sc['bf16'][m][None, i], sc['fp32'][m][None, i]) for i in range(len(SNRS))]
            res[f'eval_diff_{m}_{name}'] = [r[0] for r in rows]; res[f'eval_diff_{m}_{name}_ci95_boot'] = [[r[1], r[2]] for r in rows]
            records += [dict(snr_db=s, user=-1, metric=f'eval_diff_{m}_{name}', value=r[0], n=x.shape[0], ci95_boot=[r[1], r[2]])
                        for s, r in zip(SNRS, rows)]
        summary.append(f"evaluation of the same weights ({name}): bf16 − fp32 PSNR "
                       + ' / '.join(f'{v:+.4f}' for v in res[f'eval_diff_psnr_{name}']) + ' dB (goal ≤ 0.02 dB)')
    from kdd_semnoma.results import make_results
    doc = make_results(
        f'precision_cifar10_{channel}', records, seed=None,
        data='cifar10-npz; evaluated on the 466 pixel-exact CIFAR-10 test pairs (K = 2)',
        description='bf16 autocast against fp32 on cpu-small (issue 24). Training: the short KD study\'s SemNOMA-from-scratch '
                    f'arm (budget {BUDGETS["short"]}) trained with precision bf16 vs the committed fp32 runs, same seeds, data, '
                    'optimiser and steps, both scored in fp32; diff = bf16 − fp32 paired by seed and test pair, 95 % t-interval over '
                    'the seed means (ci95_t) beside the hierarchical bootstrap (ci95_boot). Evaluation: the same zoo weights scored '
                    'with bf16 and fp32 autocast, identical noise draws; bootstrap over test pairs.',
        config=dict(channel=channel, budget=BUDGETS['short'], snr_db=list(SNRS), zoo_systems=list(zoo_systems),
                    auto_precision_here=resolve_precision('auto', 'cpu'), **cpu_info()),
        command='KDD_SEMNOMA_DATA=../shared/data python bench/kd_study.py all --channels awgn --no_extras --no_oma '
                '--precision bf16 ... (scratch arm); python bench/kd_study.py precision')
    doc['results'] = res; doc['summary'] = summary
    return doc


def out_act_sentence(res: dict, seeds: dict, arm: str) -> str | None:
    "One line: none - sigmoid PSNR of `arm` at every SNR, and where its t-interval (or bootstrap, one seed) lies."
    k = f'diff_psnr_{arm}'
    if k not in res: return None
    n = len(seeds[arm]); ci = res[k + ('_ci95_t' if n > 1 else '_ci95_boot')]
    side = ['above' if lo > 0 else 'below' if hi < 0 else 'straddling' for lo, hi in ci]
    where = '; '.join(f"{w} zero at {', '.join(f'{s:g}' for s, x in zip(res['snr_db'], side) if x == w)} dB"
                      for w in ('above', 'straddling', 'below') if w in side)
    return (f"{arm}: none − sigmoid, {n} seed{'s' * (n > 1)}: " + ' / '.join(f'{v:+.2f}' for v in res[k])
            + f" dB PSNR at {' / '.join(f'{s:g}' for s in res['snr_db'])} dB SNR; 95 % "
            + ('t-interval over seeds ' if n > 1 else 'bootstrap interval over pairs ') + where)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run', help='train and evaluate one run')
    r.add_argument('channel', choices=sorted(CHANNELS)); r.add_argument('arm'); r.add_argument('seed', type=int)
    a = sub.add_parser('all', help='the whole queue, resumable')
    a.add_argument('--jobs', type=int, default=2); a.add_argument('--seeds', type=int, default=3)
    a.add_argument('--channels', nargs='+', default=list(CHANNELS), choices=sorted(CHANNELS))
    a.add_argument('--no_extras', action='store_true'); a.add_argument('--no_oma', action='store_true')
    a.add_argument('--arms', nargs='+', default=None,
                   help="only these arms (and their teacher), e.g. the zoo chain: --arms kd scratch oma --seeds 1")
    for s in (r, a): s.add_argument('--runs', default=None, help='checkpoint folder (default: $KDD_SEMNOMA_HOME/runs/kd_study[_long])')
    rep = sub.add_parser('report', help='results JSON from results/kd_study[_long]/*.npz')
    sub.add_parser('outact', help="issue 28: sigmoid vs the reference's raw output -> results/out_act_cifar10_awgn.json")
    sub.add_parser('precision', help='issue 24: bf16 vs fp32 training and evaluation -> results/precision_cifar10_awgn.json')
    for s in (r, a, rep): s.add_argument('--budget', default='short', choices=sorted(BUDGETS),
                                         help="'short' (2000 T / 1000 S, committed), 'long' (6000 T / 9000 S) or "
                                              "'xlong' (12000 T / 18000 S, the zoo chain)")
    for s in (r, a, rep): s.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'],
                                         help="training precision of the study's runs (bf16: results/kd_study_bf16/; scores fp32)")
    for s in (r, a, rep): s.add_argument('--out_act', default='sigmoid', choices=['sigmoid', 'none'],
                                         help="decoder output activation of the study's runs (none: the reference's raw conv; "
                                              "its own folder, results/kd_study_outact-none/)")
    args = p.parse_args(argv)
    if args.cmd == 'outact':
        from kdd_semnoma.results import save_results
        doc = out_act_report('awgn'); out = save_results(doc, RESULTS / 'out_act_cifar10_awgn.json')
        for line in doc['summary']: print(line)
        print(f'-> {out}'); return out
    if args.cmd == 'precision':
        from kdd_semnoma.results import save_results
        doc = precision_report('awgn'); out = save_results(doc, RESULTS / 'precision_cifar10_awgn.json')
        for line in doc['summary']: print(line)
        print(f'-> {out}'); return out
    select_budget(args.budget, args.out_act, args.precision)
    if args.cmd == 'report': return report(args)
    from kdd_semnoma.core import runs_path
    args.runs = Path(args.runs) if args.runs else runs_path() / study_name()
    if args.cmd == 'run': return do_run(args.channel, args.arm, args.seed, args.runs, BUDGET)
    run_all(args); report(args)


if __name__ == '__main__':
    main()
