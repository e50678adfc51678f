#!/usr/bin/env python
"""Train the kit's CIFAR-10 classifier (`kdd_semnoma.classifier.CifarNet`) on the CIFAR-10 training images, measure it
and export it to the zoo with a card: the network behind semantic accuracy, fid_cifarnet and kid_cifarnet.

    KDD_SEMNOMA_DATA=../shared/data python bench/train_classifier.py            # 10 epochs, ~25 min on 2 CPU cores
    KDD_SEMNOMA_DATA=../shared/data python bench/train_classifier.py --epochs 1 --n_train 2048 --no-export  # smoke

Trains on the seeded 45k 'train' split of cifar10/train_jpeg_q75.npz, reports the held-out 5k 'val' split after each
epoch (never the test images), then measures top-1 accuracy (flip TTA and without) on the JPEG test split (10k) and
on the 932 pixel-exact test images. Resumable: an interrupted run continues from its last epoch (--ckpt).
Writes results/classifier_cifar10.json and zoo/cifarnet-cifar10/ (safetensors, config.json, card, SHA256SUMS).
"""
from __future__ import annotations
import argparse, dataclasses, platform, subprocess, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
NAME = 'cifarnet-cifar10'


def images_labels(ds) -> tuple:  # (N, 3, 32, 32) uint8, (N,) int64
    return ds.images[ds.indices].permute(0, 3, 1, 2).contiguous(), ds.labels[ds.indices]


def measure(model, splits: dict) -> list:
    from kdd_semnoma.classifier import classifier_accuracy
    return [{'split': s, 'user': -1, 'metric': f'accuracy{"" if tta else "_no_tta"}', 'n': len(y),
             'value': classifier_accuracy(model, x, y, tta=tta)} for s, (x, y) in splits.items() for tta in (True, False)]


def card(res: dict, cfg, minutes: float, commit: str) -> str:
    acc = {(r['split'], r['metric']): r['value'] for r in res['records']}
    return f"""# {NAME}: CifarNet CIFAR-10 classifier (the kit's semantic-metric network)

A small fast-training CNN (`kdd_semnoma.classifier.CifarNet`, widths {list(cfg.widths)}, 2×2 patch whitening,
{res['n_parameters'] / 1e6:.2f} M parameters) trained by `python bench/train_classifier.py` on the seeded 45k
training split of the CIFAR-10 JPEG export (`cifar10/train_jpeg_q75.npz`), {cfg.epochs} epochs, batch {cfg.batch_size},
Nesterov SGD (peak lr {cfg.lr}, triangular), label smoothing {cfg.label_smoothing}, flips and ±{cfg.shift} px shifts,
seed {cfg.seed}; {minutes:.1f} min on {res['hardware']}; commit {commit}.

| test images | n | top-1 (flip TTA) | top-1 (no TTA) |
|---|---|---|---|
| 932 pixel-exact CIFAR-10 test images | 932 | {acc[('test-exact', 'accuracy')]:.4f} | {acc[('test-exact', 'accuracy_no_tta')]:.4f} |
| CIFAR-10 test split, JPEG export (q≈75) | 10000 | {acc[('test-jpeg', 'accuracy')]:.4f} | {acc[('test-jpeg', 'accuracy_no_tta')]:.4f} |
| held-out validation split (5k of the training file) | 5000 | {acc[('val', 'accuracy')]:.4f} | {acc[('val', 'accuracy_no_tta')]:.4f} |

Use: `kdd_semnoma.zoo.load('{NAME}')` → `CifarNet` in eval mode; `metrics.semantic_accuracy`, `metrics.fid_cifarnet`
and `metrics.kid_cifarnet` compute in its logits / 256-d penultimate features. These distances are **not** Inception
FID/KID: they are comparable only with numbers computed with this same network. Report: `results/classifier_cifar10.json`.
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n_train', type=int, default=None, help='use only the first N training images (smoke runs)')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--ckpt', default=None, help='resumable training checkpoint (default: $KDD_SEMNOMA_HOME/runs/classifier/train.pt)')
    p.add_argument('--results', default=str(ROOT / 'results' / 'classifier_cifar10.json'))
    p.add_argument('--no-export', dest='export', action='store_false', help='do not write the zoo entry')
    a = p.parse_args(argv)
    from kdd_semnoma.core import cli_errors
    with cli_errors('train_classifier'):
        run(a)


def run(a):
    from kdd_semnoma.classifier import ClassifierConfig, train_classifier, classifier_checkpoint
    from kdd_semnoma.data import cifar10_from_npz
    from kdd_semnoma.results import save_results, make_results
    from kdd_semnoma.core import runs_path
    if a.threads: torch.set_num_threads(a.threads)
    a.ckpt = a.ckpt or str(runs_path() / 'classifier' / 'train.pt')
    cfg = ClassifierConfig(epochs=a.epochs, seed=a.seed)
    xtr, ytr = images_labels(cifar10_from_npz('train'))
    if a.n_train: xtr, ytr = xtr[:a.n_train], ytr[:a.n_train]
    val = images_labels(cifar10_from_npz('val'))
    t0 = time.time()
    model = train_classifier(xtr, ytr, cfg, ckpt=a.ckpt, valid=val, log=lambda s: print(s, flush=True))
    minutes = model.history[-1]['seconds'] / 60
    splits = {'test-exact': images_labels(cifar10_from_npz('test-exact')), 'test-jpeg': images_labels(cifar10_from_npz('test')), 'val': val}
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    hardware = f"{torch.get_num_threads()} CPU threads ({platform.machine()})"
    res = make_results('classifier_cifar10', measure(model, splits), x='split',
                       description='CifarNet top-1 accuracy (flip TTA and without) on CIFAR-10 test images; trained on the 45k train split',
                       config=dataclasses.asdict(cfg), seed=cfg.seed, data='cifar10-npz (train_jpeg_q75 45k train / 5k val)',
                       command='python ' + ' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) if sys.argv[0] else '',
                       commit=commit, hardware=hardware, train_minutes=minutes, n_train=len(xtr),
                       n_parameters=sum(p.numel() for p in model.parameters()), history=model.history,
                       wall_seconds=time.time() - t0)
    save_results(res, a.results)
    print(f"wrote {a.results}: " + ', '.join(f"{r['split']} {r['metric']} {r['value']:.4f}" for r in res['records']))
    if a.export:
        from kdd_semnoma.zoo import export_entry
        entry = export_entry(classifier_checkpoint(model, cfg), NAME, card(res, cfg, minutes, commit))
        print(f"exported {entry}")


if __name__ == '__main__':
    main()
