"""Equal-steps prior comparisons at the small-cpu size (issue 23): timesteps drawn only up to t_max = 400 against the full
range, and bf16 against fp32, from the held-out denoising error of each run's EMA weights.

    python bench/prior_arms_report.py --runs_dir ~/.cache/kdd_semnoma/runs --out results/prior_arms_small_cpu.json

Reads the results files `prior-small-<arm>-s<seed>.json` that `bench/train_prior.py --size small-cpu` wrote (arms:
`full` = bf16, all 1000 timesteps; `tmax400` = bf16, t < 400; `fp32` = fp32, all timesteps; same steps, batch,
optimiser, data and seeds), keeps their held-out values (`eps_mse_t<t>`, `eps_mse_sigma<s>`: mean ε-MSE over the same
held-out test images and noise at each level), and writes the paired differences by seed with a Student-t interval over
the seeds (few seeds: the interval, not the mean, says whether a difference is real). Only seeds both arms finished
are paired.
"""
import argparse, json, re, sys
from pathlib import Path
import numpy as np
from kdd_semnoma.kd_study import t_interval
from kdd_semnoma.results import save_results
from train_prior import final_values   # bench/train_prior.py, beside this script: the report's layout

COMPARISONS = {'tmax400 - full': ('tmax400', 'full'), 'fp32 - full': ('fp32', 'full')}   # name: (arm, baseline)
RUN = re.compile(r'prior-small-(?P<arm>[a-z0-9]+)-s(?P<seed>\d+)\.json$')


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
    out = {}
    for k in sorted(runs[(arm, seeds[0])]['values'], key=lambda k: (k.split('_')[1][:1], float(re.sub(r'[^\d.]', '', k.split('_')[-1])))):
        a = np.array([runs[(arm, s)]['values'][k] for s in seeds]); b = np.array([runs[(base, s)]['values'][k] for s in seeds])
        m, lo, hi = t_interval(a - b)
        out[k] = dict(seeds=seeds, **{arm: a.mean(), base: b.mean()}, diff=m, ci95_t=[lo, hi], rel=m / b.mean(),
                      per_seed_diff=(a - b).tolist())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--runs_dir', default=str(Path.home() / '.cache' / 'kdd_semnoma' / 'runs'))
    p.add_argument('--out', default='results/prior_arms_small_cpu.json')
    a = p.parse_args(argv)
    runs = load_runs(Path(a.runs_dir).expanduser())
    if not runs:
        sys.exit(f"prior_arms_report: error: no finished prior-small-*-s*.json in {a.runs_dir}: "
                 "run bench/train_prior.py --size small-cpu first (or pass --runs_dir)")
    comps = {name: compare(runs, arm, base) for name, (arm, base) in COMPARISONS.items()}
    records = [dict(arm=arm, seed=seed, metric=k, value=v) for (arm, seed), r in sorted(runs.items()) for k, v in r['values'].items()]
    cfg = dict(size='small-cpu', arms={f"{arm}-s{seed}": {k: r[k] for k in ('steps', 'precision', 't_max', 'train_s', 'command')}
                                       for (arm, seed), r in sorted(runs.items())})
    save_results(a.out, name=Path(a.out).stem, records=records, x='metric', config=cfg, seed=None,
                 description=__doc__.split('\n\n')[0].replace('\n', ' '),
                 data='cifar10-npz: trained on the training export; held-out error on test-split images (never the 466 evaluation pairs)',
                 results=comps, command='python bench/prior_arms_report.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
    for name, c in comps.items():
        print(name, {k: f"{v['diff']:+.4f} [{v['ci95_t'][0]:+.4f}, {v['ci95_t'][1]:+.4f}] ({100 * v['rel']:+.1f} %, seeds {v['seeds']})"
                     for k, v in c.items() if 'sigma' in k})


if __name__ == '__main__':
    main()
