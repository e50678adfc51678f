#!/usr/bin/env python3
"""Draw the system block diagrams used at the top of index, 05_deepjscc and 06_semnoma (nbs/images/*.png).

    python tools/draw_system.py
"""
from pathlib import Path
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).resolve().parents[1] / 'nbs' / 'images'


def box(ax, x, y, w, h, text, color='#dde8f5', fs=8):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle='round,pad=0.02', fc=color, ec='#345', lw=1))
    ax.text(x, y, text, ha='center', va='center', fontsize=fs)


def arrow(ax, a, b, color='#345', style='-|>', ls='-', text=None, fs=7):
    ax.annotate('', xy=b, xytext=a, arrowprops=dict(arrowstyle=style, color=color, lw=1.2, ls=ls, shrinkA=2, shrinkB=2))
    if text: ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, text, ha='center', fontsize=fs, color=color)


def system(path):
    fig, ax = plt.subplots(figsize=(11, 4.6)); ax.set(xlim=(0, 11), ylim=(0, 4.6)); ax.axis('off')
    ys = (3.6, 2.4)
    for k, y in enumerate(ys):
        box(ax, 0.7, y, 1.0, 0.6, f'image $x_{k + 1}$', '#fff')
        box(ax, 2.3, y, 1.6, 0.7, f'shared ConvNeXt encoder\n+ device embedding {k + 1}\n+ AF-Module (SNR, |h|, ∠h)', fs=6.5)
        box(ax, 4.1, y, 1.2, 0.6, f'power norm.\n$P_{k + 1} = 1/K$', '#eef5dd', fs=7)
        arrow(ax, (1.2, y), (1.5, y)); arrow(ax, (3.1, y), (3.5, y))
        arrow(ax, (4.7, y), (5.6, 3.0), text=f'$h_{k + 1} z_{k + 1}$' if k == 0 else None)
    box(ax, 6.0, 3.0, 0.8, 0.8, '$\\Sigma$\n+ noise $n$', '#fde2c8')
    ax.text(6.0, 3.6, 'NOMA: one block, $y = \\sum_k h_k z_k + n$', ha='center', fontsize=7)
    for k, y in enumerate(ys):
        box(ax, 8.1, y, 1.8, 0.7, f'decoder {k + 1} (ConvNeXt,\nAF-Module on SNR, |h|, ∠h)', fs=6.5)
        box(ax, 10.2, y, 1.0, 0.6, f'$\\hat x_{k + 1}$', '#fff')
        arrow(ax, (6.4, 3.0), (7.2, y)); arrow(ax, (9.0, y), (9.7, y))
    # teacher
    box(ax, 4.1, 0.8, 3.4, 0.7,
        'orthogonal teacher: same encoder, one shared decoder,\nevery user on its own interference-free channel $y_k = h_k z_k + n_k$',
        '#f3e3f5', fs=6.5)
    arrow(ax, (5.8, 0.8), (8.1, 2.05), color='#93c', ls='--', text='FA on received latents,\nCrossKD through the teacher decoder')
    arrow(ax, (2.4, 0.8), (2.3, 2.05), color='#93c', ls='--')
    ax.text(1.6, 1.45, 'initialises\nthe student', fontsize=7, color='#93c', ha='center')
    ax.text(5.5, 4.4, 'KDD-SemNOMA: K users share one channel (K = 2 shown)', ha='center', fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def deepjscc(path):
    fig, ax = plt.subplots(figsize=(11, 1.9)); ax.set(xlim=(0, 11), ylim=(0, 1.9)); ax.axis('off')
    items = [('image + device\nembedding plane', '#fff'), ('stem conv\n(stride 2)', None), ('ConvNeXt stage\n+ AF + attention', None),
             ('downsample', None), ('ConvNeXt stage\n+ AF + attention', None), ('head: LN + 1×1\n→ latent (c, h, w)', '#eef5dd'),
             ('channel', '#fde2c8'), ('decoder: input, (stage, AF,\nattention, upsample) × 2', None),
             ('1×1 conv +\nsigmoid → $\\hat x$', '#fff')]
    xs = [0.65 + i * 1.22 for i in range(len(items))]
    for x, (t, c) in zip(xs, items): box(ax, x, 0.9, 1.08, 0.8, t, c or '#dde8f5', fs=6.5)
    for a, b in zip(xs[:-1], xs[1:]): arrow(ax, (a + 0.54, 0.9), (b - 0.54, 0.9))
    ax.text(5.5, 1.65, 'one user of the ConvNeXt DeepJSCC: SNR, |h| and ∠h drive every AF-Module', ha='center', fontsize=9)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


if __name__ == '__main__':
    OUT.mkdir(parents=True, exist_ok=True)
    system(OUT / 'system.png'); deepjscc(OUT / 'deepjscc.png')
    print('wrote', OUT / 'system.png', OUT / 'deepjscc.png')
