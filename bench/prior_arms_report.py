"""Equal-steps prior comparisons at the small-cpu size (issue 23): timesteps drawn only up to t_max = 400 against the full
range, and bf16 against fp32, from the held-out denoising error of each run's EMA weights.

    python bench/prior_arms_report.py --runs_dir ~/.cache/kdd_semnoma/runs --out results/prior_arms_small_cpu.json

Reads the results files `prior-small-<arm>-s<seed>.json` that `bench/train_prior.py --size small-cpu` wrote (arms:
`full` = bf16, all 1000 timesteps; `tmax400` = bf16, t < 400; `fp32` = fp32, all timesteps; same steps, batch,
optimiser, data and seeds), keeps their held-out values (`eps_mse_t<t>`, `eps_mse_sigma<s>`: mean ε-MSE over the same
held-out test images and noise at each level), and writes the paired differences by seed with a Student-t interval over
the seeds (few seeds: the interval, not the mean, says whether a difference is real). Only seeds both arms finished
are paired.

With `--refine_dir DIR` it also compares the arms on what they are for, refinement: `bench/refine_study.py` run on each
small prior into DIR (`refine_study_prior-small-<arm>-s<seed>.json`, same inputs, arms, SNRs and noise seeds), and the
change each prior's refinement makes to the decodings (PSNR, SSIM, CN-PD, semantic accuracy differences; KID-CN and
FID-CN relative changes; means over the noise seeds) is paired by prior seed, again with a t-interval over those seeds:

    python bench/refine_study.py run --prior ~/.cache/kdd_semnoma/runs/prior-small-tmax400-s0 --out_dir results/prior_arms_refine \
        --channels awgn --arms decoded reference matched --snrs 0,5      # and the same for full-s0, tmax400-s1, full-s1
    python bench/prior_arms_report.py --refine_dir results/prior_arms_refine
"""
import argparse, json, re, sys
from pathlib import Path
import numpy as np
from kdd_semnoma.kd_study import t_interval
from kdd_semnoma.results import save_results
from train_prior import final_values   # bench/train_prior.py, beside this script: the report's layout

COMPARISONS = {'tmax400 - full': ('tmax400', 'full'), 'fp32 - full': ('fp32', 'full')}   # name: (arm, baseline)
RUN = re.compile(r'prior-small-(?P<arm>[a-z0-9]+)-s(?P<seed>\d+)\.json$')
REFINE = re.compile(r'refine_study_prior-small-(?P<arm>[a-z0-9]+)-s(?P<seed>\d+)\.json$')
REFINE_METRICS = ('diff_psnr', 'diff_ssim', 'diff_cnpd', 'diff_sem_acc', 'rel_kid_cn', 'rel_fid_cn')   # change vs the decodings


def heldout_values(doc: dict) -> dict:  # {'eps_mse_sigma0.075': value, ...} at the run's last step
    "The held-out error values of a train_prior results file."
    return {k: v for k, (v, _) in final_values(doc).items() if k.startswith('eps_mse_')}


def load_runs(runs_dir: Path) -> dict:  # {(arm, seed): {'values': {...}, 'steps': n, 'precision': ..., 't_max': ...}}
    runs = {}
    for p in sorted(runs_dir.glob('prior-small-*-s*.json')):
        m = RUN.search(p.name)
        if not m: continue
        doc = json.loads(p.read_text())
        if doc.get('steps_done') != doc['config']['steps']: continue          # unfinished: not compared
        runs[(m['arm'], int(m['seed']))] = dict(values=heldout_values(doc), steps=doc['steps_done'], precision=doc.get('precision'),
                                                t_max=doc['config'].get('t_max'), train_s=doc.get('train_s'), command=doc.get('command'))
    return runs


def compare(runs: dict, arm: str, base: str) -> dict:  # {metric: {'seeds', 'diff', 'ci95_t', 'rel', arm, base}}
    "Paired differences arm − base per held-out metric over the seeds both finished."
    seeds = sorted(s for (a, s) in runs if a == arm and (base, s) in runs)
    if not seeds: return {}
    out, keys = {}, [k for k in runs[(arm, seeds[0])]['values'] if all(k in runs[(x, s)]['values'] for x in (arm, base) for s in seeds)]
    if all(k.startswith('eps_mse_') for k in keys):   # held-out error: by kind (t, sigma), then level
        keys.sort(key=lambda k: (k.split('_')[1][:1], float(re.sub(r'[^\d.]', '', k.split('_')[-1]))))
    for k in keys:
        a = np.array([runs[(arm, s)]['values'][k] for s in seeds]); b = np.array([runs[(base, s)]['values'][k] for s in seeds])
        m, lo, hi = t_interval(a - b)
        out[k] = dict(seeds=seeds, **{arm: a.mean(), base: b.mean()}, diff=m, ci95_t=[lo, hi],
                      rel=m / b.mean() if k.startswith('eps_mse_') else None,   # a change's change has no meaningful ratio
                      per_seed_diff=(a - b).tolist())
    return out


def load_refine(refine_dir: Path) -> dict:  # {(arm, seed): {'<channel> <snr> dB <refiner> <metric>': value}}
    "The refinement changes each small prior's refine_study report holds (means over its noise seeds)."
    out = {}
    for p in sorted(Path(refine_dir).glob('refine_study_prior-small-*-s*.json')):
        m = REFINE.search(p.name)
        if not m: continue
        doc, vals = json.loads(p.read_text()), {}
        for ch, r in doc['results'].items():
            for snr, st in zip(r['snr_db'], r['stats']):
                vals.update({f'{ch} {snr:g} dB {arm} {k}': v[k]['value'] for arm, v in st.items() if arm != 'decoded'
                             for k in REFINE_METRICS if k in v})
        out[(m['arm'], int(m['seed']))] = dict(values=vals, seeds=doc['config']['seeds'])
    return out


def refine_summary(comp: dict, name: str) -> list:
    "One line per (channel, SNR, refiner): the paired differences of the refinement changes, with their t-intervals."
    lines = []
    for key in dict.fromkeys(k.rsplit(' ', 1)[0] for k in comp):
        found = {k: comp[f'{key} {k}'] for k in REFINE_METRICS if f'{key} {k}' in comp}
        parts = [f"{k}: {c['diff']:+.3f} [{c['ci95_t'][0]:+.3f}, {c['ci95_t'][1]:+.3f}]" for k, c in found.items()]
        lines.append(f"refinement, {name}, {key} (prior seeds {comp[next(iter(comp))]['seeds']}): " + '; '.join(parts))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--runs_dir', default=str(Path.home() / '.cache' / 'kdd_semnoma' / 'runs'))
    p.add_argument('--out', default='results/prior_arms_small_cpu.json')
    p.add_argument('--refine_dir', default=None, help='also compare the arms\' refinement: refine_study reports of the small priors here')
    a = p.parse_args(argv)
    runs = load_runs(Path(a.runs_dir).expanduser())
    if not runs:
        sys.exit(f"prior_arms_report: error: no finished prior-small-*-s*.json in {a.runs_dir}: "
                 "run bench/train_prior.py --size small-cpu first (or pass --runs_dir)")
    comps = {name: compare(runs, arm, base) for name, (arm, base) in COMPARISONS.items()}
    summary = []
    if a.refine_dir is not None:
        refine = load_refine(Path(a.refine_dir))
        if not refine:
            sys.exit(f"prior_arms_report: error: no refine_study_prior-small-*-s*.json in {a.refine_dir}: "
                     "run bench/refine_study.py on the small priors first (see --help)")
        for name, (arm, base) in COMPARISONS.items():
            comps[f'refinement: {name}'] = c = compare(refine, arm, base)
            summary += refine_summary(c, name) if c else []
    records = [dict(arm=arm, seed=seed, metric=k, value=v) for (arm, seed), r in sorted(runs.items()) for k, v in r['values'].items()]
    cfg = dict(size='small-cpu', arms={f"{arm}-s{seed}": {k: r[k] for k in ('steps', 'precision', 't_max', 'train_s', 'command')}
                                       for (arm, seed), r in sorted(runs.items())})
    save_results(a.out, name=Path(a.out).stem, records=records, x='metric', config=cfg, seed=None,
                 description=__doc__.split('\n\n')[0].replace('\n', ' '),
                 data='cifar10-npz: trained on the training export; held-out error on test-split images (never the 466 evaluation pairs)',
                 results=comps, summary=summary,
                 command='python bench/prior_arms_report.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
    for name, c in comps.items():
        print(name, {k: f"{v['diff']:+.4f} [{v['ci95_t'][0]:+.4f}, {v['ci95_t'][1]:+.4f}] ({100 * v['rel']:+.1f} %, seeds {v['seeds']})"
                     for k, v in c.items() if 'sigma' in k})
    for line in summary: print(line)


if __name__ == '__main__':
    main()
