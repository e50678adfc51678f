#!/usr/bin/env python
"""Separation baseline (image codec at the channel's per-user bit budget) and capacity curves on real CIFAR-10.

Uses the 932 pixel-exact CIFAR-10 test images (all 466 fixed pairs for K=2) found through KDD_SEMNOMA_DATA:
    KDD_SEMNOMA_DATA=/path/to/data python bench/separation_cifar10.py --out_dir results
Writes <out_dir>/separation_cifar10_{awgn,rayleigh_csit,rayleigh_nocsit}.json and capacity_mac_k<K>_n<n>.json
in the kit's results schema, with the semantic accuracy (sem_acc) of the kit's CIFAR-10 classifier
(zoo:cifarnet-cifar10) on what the receiver shows. About 3 CPU-minutes for all groups (HEIF/x265 encoding dominates).
"""
from __future__ import annotations
import argparse, shlex, sys, time
from pathlib import Path
import numpy as np
from kdd_semnoma.bounds import capacity_records
from kdd_semnoma.separation import separation_results, SNRS_DB
from kdd_semnoma.data import cifar10_from_npz
from kdd_semnoma.results import save_results, records_to_table


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out_dir', default='results'); p.add_argument('--n_users', type=int, default=2)
    p.add_argument('--n_uses', type=int, default=512, help='complex channel uses shared by the K users')
    p.add_argument('--n_groups', type=int, default=None, help='first groups of the fixed grouping (default all)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--classifier', default='zoo:cifarnet-cifar10', help="semantic-accuracy network (zoo:NAME) or 'none'")
    a = p.parse_args()
    t0, command = time.time(), shlex.join(['python', 'bench/separation_cifar10.py', *sys.argv[1:]])
    classify, name = None, ''
    if a.classifier.lower() != 'none':
        from kdd_semnoma import zoo
        from kdd_semnoma.metrics import predict_classes
        clf, name = zoo.load(a.classifier), a.classifier
        classify = lambda x: predict_classes(clf, x).numpy()
    out = separation_results(cifar10_from_npz('test-exact'), n_users=a.n_users, n_uses=a.n_uses, n_groups=a.n_groups,
                             seed=a.seed, data='cifar10 test_exact_first932.npz (pixel-exact official test images)',
                             out_dir=a.out_dir, prefix='separation_cifar10', classify=classify, classifier_name=name,
                             command=command)
    for ch, r in out.items():
        print(f'## {ch}')
        shown = ['psnr', 'psnr_hdr', 'ssim', 'bits', 'fallback_rate'] + (['sem_acc'] if classify else [])
        print(records_to_table(r['records'], metrics=shown))
    cap = capacity_records(np.arange(-5, 30.1, 2.5), a.n_users, a.n_uses, n_draws=1 << 18, seed=a.seed)
    path = save_results(Path(a.out_dir) / f'capacity_mac_k{a.n_users}_n{a.n_uses}.json', name=f'capacity-mac-k{a.n_users}',
                        records=cap, seed=a.seed, data='none (closed form; Rayleigh by Monte Carlo, 2^18 draws)',
                        description=f'per-user rates of the {a.n_users}-user MAC: AWGN NOMA/OMA, Rayleigh with/without CSIT',
                        config=dict(n_users=a.n_users, n_uses=a.n_uses, snrs_db=list(SNRS_DB)),
                        conventions={'rate': 'bits per shared complex channel use per user', 'bits': 'n_uses * rate per user',
                                     'snr': 'total: sigma^2 = 10^(-SNR/10), per-user power 1/K'},
                        command=command)
    print(f'wrote {path} and {len(out)} separation files in {time.time() - t0:.0f} s')


if __name__ == '__main__':
    main()
