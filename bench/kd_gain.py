#!/usr/bin/env python
"""Measure the KD gain: teacher (orthogonal channel), then the KD student and SemNOMA without KD trained with the
same budget from the same teacher, evaluated on the fixed CIFAR-10 test grouping (932 pixel-exact images ->
466 pairs) over AWGN at 0, 5, 10, 15, 20 dB. Writes results_{teacher,kd,nokd}.json, kd_gain.json and kd_gain.png.

Full cpu-small run (about 30 minutes of training on 2 CPU cores; faster on a GPU):
    KDD_SEMNOMA_DATA=/path/to/data python bench/kd_gain.py --out_dir runs/kd_gain
Quick run (a few minutes on CPU; checks the pipeline, too short to settle the claim):
    KDD_SEMNOMA_DATA=/path/to/data python bench/kd_gain.py --quick --out_dir /tmp/kd_gain_quick
Re-running with the same --out_dir resumes interrupted stages (a finished stage is not retrained).
"""
from __future__ import annotations
import argparse

QUICK = dict(teacher_steps=150, student_steps=100, val_every=50)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--preset', default='cpu-small', help='training preset: tiny | cpu-small | paper')
    p.add_argument('--quick', action='store_true', help=f'short budget {QUICK}')
    p.add_argument('--teacher_steps', type=int, default=None, help="teacher steps (default: the preset's max_steps)")
    p.add_argument('--student_steps', type=int, default=None, help='steps of each student (KD and no-KD: equal budgets)')
    p.add_argument('--batch_size', type=int, default=None)
    p.add_argument('--val_every', type=int, default=None)
    p.add_argument('--data', default='cifar10-npz', help='cifar10-npz (shared npz, test = 466 exact pairs) | cifar10 | tiles | folder')
    p.add_argument('--data_path', default=None, help='data folder (default: $KDD_SEMNOMA_DATA)')
    p.add_argument('--out_dir', default=None, help='output folder (default: $KDD_SEMNOMA_HOME/runs/kd_gain-PRESET)')
    p.add_argument('--snrs', default='0,5,10,15,20', help='test SNRs in dB, comma separated')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default=None, help='cpu | cuda (default: CUDA if available)')
    p.add_argument('--quiet', action='store_true')
    a = p.parse_args(argv)
    from kdd_semnoma.kd_gain import run_kd_gain
    budget = dict(QUICK) if a.quick else {}
    budget.update({k: v for k, v in dict(teacher_steps=a.teacher_steps, student_steps=a.student_steps,
                                         val_every=a.val_every).items() if v is not None})
    doc = run_kd_gain(preset=a.preset, batch_size=a.batch_size, data=a.data, data_path=a.data_path,
                      out_dir=a.out_dir, snrs_db=tuple(float(s) for s in a.snrs.split(',')), seed=a.seed,
                      device=a.device, show_progress=not a.quiet, **budget)
    r, c = doc['results'], doc['config']
    print(f"{'SNR (dB)':>9} {'teacher':>8} {'KD':>8} {'no KD':>8} {'gain':>7}")
    for i, s in enumerate(r['snr_db']):
        print(f"{s:9.1f} {r['psnr_teacher'][i]:8.2f} {r['psnr_kd'][i]:8.2f} {r['psnr_nokd'][i]:8.2f} {r['gain_db'][i]:+7.2f}")
    print(f"{doc['data']}; budget: teacher {c['teacher_steps']} steps, {c['student_steps']} steps per student, batch {c['batch_size']}; "
          f"best checkpoints at steps {c['teacher']['best_step']} / {c['kd']['best_step']} / {c['nokd']['best_step']}; "
          f"training time {sum(c[m]['train_time_s'] for m in ('teacher', 'kd', 'nokd')) / 60:.1f} min on {c['device']}")
    return doc


if __name__ == '__main__':
    main()
