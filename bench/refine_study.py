#!/usr/bin/env python
"""The refinement study (issue 23, items 4-6): does refining KD-SemNOMA's decodings with a pretrained diffusion prior
(DifFace-style: diffuse the decoding to noise level sigma, then DDIM back to 0) earn its place? Seeds, intervals, the
paper's claim checked by the numbers.

Inputs: the zoo KD-SemNOMA systems at the KD study's long budget (AWGN: kd-semnoma-cifar10-awgn-long, kept under that
name when the AWGN zoo was retrained longer, so that every study refines the same decodings on both channels at one
budget; Rayleigh block fading: kd-semnoma-cifar10-rayleigh) decode the 466 pixel-exact CIFAR-10 test pairs at
0/5/10/15/20 dB with 10_evaluate's seeded `reconstruct` (decoding seed 0, the same decodings for every arm). Arms (ARMS):

  decoded        the decodings themselves
  cgan           SemNOMA-CGAN (13_cgan) trained once per channel on student decodings of *training* pairs (cached)
  sigma-S        DifFace from noise level S (0.03, 0.15, 0.3, 0.6), DDIM eta 0.5, 10 model calls
  reference      the reference's setting: sigma 0.075, eta 0.5, 10 calls (the sweep's 0.075 point)
  matched        sigma chosen per SNR from the decoder's residual error, measured on decodings of the JPEG *test
                 split* (the images that are also among the 932 exact ones left out; never the 466 pairs): the step
                 whose noise level equals the residual RMS in model space [-1, 1] (error-to-noise ratio 0 dB, the
                 paper's error-contraction argument); eta 0.5, 10 calls
  calls-N        sigma 0.15, eta 0.5, N = 5 or 25 model calls      eta-E   sigma 0.15, 10 calls, eta E = 0 or 1

Every DifFace arm is stochastic (the forward diffusion draws noise): noise seeds 0..S-1, each drawing with
diffusion.refine_generator(seed, setting) (the package's one seeding rule, the same draws at every SNR and channel).
A run = (channel, arm, seed) writes per-image PSNR, SSIM, CN-PD (08_metrics.cnpd, not LPIPS) and classifier
correctness/agreement, and per-user FID-CN / KID-CN (paired, with SE) at every SNR to
<out_dir>/refine_study/<prior>/<channel>/<arm>-s<seed>.npz (atomic); a run whose npz exists is skipped. Several workers
may run the same command at once (one per core: `OMP_NUM_THREADS=1`, started twice): each run is claimed
(core.run_lock), so they share the queue. Each run records its input system's checksum, and a study folder refuses new
runs once today's zoo system no longer makes its decodings (a retrained entry): priors compare on the same decodings.
`report` turns them into <out_dir>/refine_study_<prior>.json (+ .png, the perception-distortion figure): one results
file per prior, so that priors compare (the zoo's tiny prior, the cifar-cpu prior).

    KDD_SEMNOMA_DATA=/path/to/data python bench/refine_study.py run --prior zoo:prior-cifar10-tiny   # resumable
    python bench/refine_study.py report --prior zoo:prior-cifar10-tiny
    OMP_NUM_THREADS=1 ... run --prior zoo:prior-cifar10-cpu --snrs 0,5 --compile &   # a large prior on a CPU: started twice,
                                                                                     # one worker per core, compiled prior
    ... run --quick --out_dir /tmp/rs   # 4 pairs, 0 dB, 1 seed, a 10-step CGAN: a smoke test of the whole path
"""
from __future__ import annotations
import argparse, json, math, os, shlex, subprocess, sys, time, warnings
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get('KDD_STUDY_RESULTS', ROOT / 'results'))
SNRS = (0., 5., 10., 15., 20.)
SYSTEMS = {'awgn': 'zoo:kd-semnoma-cifar10-awgn-long', 'rayleigh': 'zoo:kd-semnoma-cifar10-rayleigh'}
CHANNELS = tuple(SYSTEMS)
DEFAULT_PRIOR = 'zoo:prior-cifar10-tiny'   # until the cifar-cpu prior is in the zoo
CALLS, ETA = 10, 0.5                       # the reference's DDIM: 10 model calls, eta 0.5
ABLATION_SIGMA = 0.15                      # the calls / eta ablations' start (t0 >= 24 on linear and cosine schedules)
ARMS = {'decoded': dict(kind='decoded'), 'cgan': dict(kind='cgan'),
        'sigma-0.03': dict(kind='difface', sigma=0.03, calls=CALLS, eta=ETA),
        'reference': dict(kind='difface', sigma=0.075, calls=CALLS, eta=ETA),
        'sigma-0.15': dict(kind='difface', sigma=0.15, calls=CALLS, eta=ETA),
        'sigma-0.3': dict(kind='difface', sigma=0.3, calls=CALLS, eta=ETA),
        'sigma-0.6': dict(kind='difface', sigma=0.6, calls=CALLS, eta=ETA),
        'matched': dict(kind='matched', calls=CALLS, eta=ETA),
        'calls-5': dict(kind='difface', sigma=ABLATION_SIGMA, calls=5, eta=ETA),
        'calls-25': dict(kind='difface', sigma=ABLATION_SIGMA, calls=25, eta=ETA),
        'eta-0': dict(kind='difface', sigma=ABLATION_SIGMA, calls=CALLS, eta=0.),
        'eta-1': dict(kind='difface', sigma=ABLATION_SIGMA, calls=CALLS, eta=1.)}
SWEEP = ('sigma-0.03', 'reference', 'sigma-0.15', 'sigma-0.3', 'sigma-0.6')   # the DifFace curve, by sigma
CAPPED = (*SWEEP, 'matched')   # starts below t0 = calls - 1 (sigma 0.03 on a linear schedule) use t0 + 1 calls (recorded)
DIFFACE = tuple(a for a, s in ARMS.items() if s['kind'] in ('difface', 'matched'))
DECODE_SEED, FIT_SEED, CGAN_SEED = 0, 1, 0
FULL = dict(n_groups=None, snrs=SNRS, seeds=3, cgan_steps=1500, n_train_groups=5000, n_fit_groups=500)
QUICK = dict(n_groups=4, snrs=(0.,), seeds=1, cgan_steps=10, n_train_groups=16, n_fit_groups=16)
CLAIM_SNRS, CLAIM_REDUCTION, CLAIM_PSNR_COST = (0., 5.), 0.30, 0.5
PER_IMAGE = ('psnr', 'ssim', 'cnpd', 'sem_acc', 'sem_agree')
PER_SET = ('fid_cn', 'kid_cn')


# ---------------------------------------------------------------- inputs
def prior_tag(prior: str) -> str:
    "A folder name for a prior: its zoo name or its folder's name."
    return str(prior).split(':', 1)[1] if str(prior).startswith('zoo:') else Path(prior).expanduser().resolve().name


def results_path(out_dir, prior: str) -> Path:
    "The study's results JSON for one prior: <out_dir>/refine_study_<prior tag>.json (the figure beside it, .png)."
    return Path(out_dir) / f'refine_study_{prior_tag(prior)}.json'


@lru_cache(maxsize=None)
def load_prior_cached(prior: str, device: str):
    from kdd_semnoma.diffusion import load_prior, prior_dir
    return load_prior(prior_dir(prior), device=device)


@lru_cache(maxsize=None)
def compiled_unet(prior: str, device: str):
    "The prior's UNet compiled for inference (diffusion.compile_for_inference), once per worker process."
    from kdd_semnoma.diffusion import compile_for_inference
    return compile_for_inference(load_prior_cached(prior, device).unet)


@lru_cache(maxsize=None)
def system(channel: str, device: str):
    from kdd_semnoma import zoo
    return zoo.load(SYSTEMS[channel], device=device)


@lru_cache(maxsize=None)
def classifier(device: str):
    from kdd_semnoma import zoo
    from kdd_semnoma.metrics import CIFARNET
    return zoo.load(CIFARNET, device=device)


@lru_cache(maxsize=None)
def test_pairs(n_groups: int | None) -> tuple:
    "The pixel-exact test pairs (N, 2, 3, 32, 32) in [0, 1] and labels (N, 2), the kit's fixed grouping."
    from kdd_semnoma.data import grouped_test_set
    x, y = grouped_test_set('cifar10-npz', 2, seed=0, labels=True)
    return (x[:n_groups], y[:n_groups]) if n_groups else (x, y)


@lru_cache(maxsize=None)
def decoded(channel: str, snr: float, n_groups: int | None, device: str) -> torch.Tensor:  # (N, 2, 3, 32, 32) on the CPU
    "The decodings of the test pairs at `snr` (10_evaluate.reconstruct, decoding seed DECODE_SEED)."
    from kdd_semnoma.evaluate import reconstruct
    return reconstruct(system(channel, device), test_pairs(n_groups)[0], snr, seed=DECODE_SEED)[0]


def fit_images(n_groups: int, *, seed: int = FIT_SEED) -> tuple:  # ((n, 2, 3, 32, 32) in [0, 1], overlap count)
    """`n_groups` random pairs of the JPEG test split, leaving out the JPEG copies of the 932 exact evaluation images
    (nearest exact image by 8x8 means within 30 dB PSNR; the residual is never fitted on the evaluation images)."""
    from kdd_semnoma.data import cifar10_from_npz
    jp, ex = cifar10_from_npz('test'), cifar10_from_npz('test-exact')
    xj = jp.images[jp.indices].permute(0, 3, 1, 2).float() / 255                   # (10000, 3, 32, 32)
    xe = ex.images[ex.indices].permute(0, 3, 1, 2).float() / 255                   # (932, 3, 32, 32)
    a, b = (torch.nn.functional.avg_pool2d(v, 4).flatten(1) for v in (xj, xe))     # (M, 192) coarse descriptors
    d = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0) / a.shape[1]   # (10000, 932) MSE
    overlap = d.min(1).values < 1e-3                                               # PSNR > 30 dB: the same photo
    keep = torch.nonzero(~overlap).flatten()
    pick = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:2 * n_groups]]
    return xj[pick].reshape(-1, 2, 3, 32, 32), int(overlap.sum())


def residual_rms(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    "RMS of the decoding error in the prior's model space [-1, 1] (twice the RMS in [0, 1])."
    return 2 * float((x_hat.double() - x.double()).pow(2).mean().sqrt())


def matched_start(scheduler, rms: float) -> int:  # the start step t0
    """The step whose noise level sigma_t is nearest the residual RMS (model space): diffusing there makes the added noise
    as large as the decoder's error (error-to-noise ratio 0 dB, diffusion.error_to_noise_db)."""
    from kdd_semnoma.diffusion import t_for_sigma
    if not rms > 0: raise ValueError(f"the residual RMS must be > 0, got {rms!r}: the decodings equal the originals.")
    return t_for_sigma(scheduler, rms)


def residual_doc(channel: str, fit: dict) -> dict:
    "The residual fit as a results file (the kit's schema): per-SNR RMS records, the fit itself under `results`."
    from kdd_semnoma.results import make_results
    return make_results(
        f'residual_{channel}',
        [dict(snr_db=float(s), user=-1, metric='residual_rms', value=v, n=fit['n_images']) for s, v in fit['rms'].items()],
        description=f"RMS of the decoding error of {SYSTEMS[channel]} per SNR, the matched arm's start (cached by the study's runs)",
        config=dict(system=SYSTEMS[channel], n_fit_groups=fit['n_fit_groups']), seed=fit['decode_seed'],
        data=f"{fit['n_images']} images of the {fit['split']} split, without the JPEG copies of the 932 exact evaluation images "
             f"({fit['excluded_overlap']} left out)",
        conventions=dict(residual_rms='RMS of decoded minus original in model space [-1, 1] (twice the RMS in [0, 1])'),
        results=fit, command='python bench/refine_study.py run (the matched arm writes it)')


def residual_fit(channel: str, snrs, n_fit_groups: int, scheduler, device: str, npz_dir: Path) -> dict:
    "Residual RMS per SNR on JPEG-test-split decodings, cached in <npz_dir>/<channel>/residual.json, with each SNR's matched step."
    from kdd_semnoma.results import save_results
    from kdd_semnoma.evaluate import reconstruct
    path = npz_dir / channel / 'residual.json'
    fit = json.loads(path.read_text()).get('results', {}) if path.exists() else {}
    if fit.get('n_fit_groups') != n_fit_groups or any(f'{s:g}' not in fit.get('rms', {}) for s in snrs):
        x, n_overlap = fit_images(n_fit_groups)
        rms = {f'{s:g}': residual_rms(reconstruct(system(channel, device), x, s, seed=FIT_SEED)[0], x) for s in snrs}
        fit = dict(n_fit_groups=n_fit_groups, n_images=2 * n_fit_groups, split='cifar10 test_jpeg_q75', excluded_overlap=n_overlap,
                   decode_seed=FIT_SEED, rms=rms)
        save_results(residual_doc(channel, fit), path)
    return fit


def cgan_for(channel: str, cfg: dict, device: str, npz_dir: Path):
    """The channel's CGAN generator, trained once on student decodings of training pairs (SNR ~ U[0, 20] dB) and cached
    beside the priors' folders (<out_dir>/refine_study/cgan/, not committed: *.pt), so that every prior's study shares it."""
    from kdd_semnoma.cgan import CGANConfig, train_cgan, save_cgan, load_cgan, decode_train_pairs
    from kdd_semnoma.data import get_dls
    path = npz_dir.parent / 'cgan' / f"{channel}-{cfg['cgan_steps']}steps-{cfg['n_train_groups']}groups.pt"
    if not path.exists():
        model = system(channel, device)
        xh, x = decode_train_pairs(model, get_dls('cifar10-npz', 2, 64, seed=CGAN_SEED).train, cfg['n_train_groups'], 0., 20.,
                                   seed=CGAN_SEED)
        m, hist = train_cgan(xh, x, CGANConfig(), steps=cfg['cgan_steps'], batch_size=32, seed=CGAN_SEED, device=device,
                             log_every=50, show_progress=False)
        save_cgan(m, path, step=cfg['cgan_steps'], history=hist)
    return load_cgan(path, device=device).gen


# ---------------------------------------------------------------- one run
def npz_path(npz_dir: Path, channel: str, arm: str, seed: int) -> Path:
    return npz_dir / channel / f'{arm}-s{seed}.npz'


def parse_snrs(text: str | None) -> tuple:
    "--snrs '0,5' -> (0.0, 5.0); None -> the full study's SNRs. Each must be one the zoo systems are evaluated at."
    if text is None: return SNRS
    try: snrs = tuple(float(v) for v in str(text).split(',') if v.strip())
    except ValueError:
        raise ValueError(f"--snrs takes comma-separated dB values from {', '.join(f'{s:g}' for s in SNRS)}, got {text!r}.") from None
    if not snrs or any(s not in SNRS for s in snrs) or len(set(snrs)) != len(snrs):
        raise ValueError(f"--snrs takes distinct values from {', '.join(f'{s:g}' for s in SNRS)} dB, got {text!r}.")
    return tuple(sorted(snrs))


def check_budget(npz_dir: Path, cfg: dict) -> None:
    "Refuse to add runs of another design (SNRs, pairs) to a study folder: one report compares like with like."
    have = npz_budget(npz_dir)
    if have is None: return
    if [float(s) for s in have['snrs']] != [float(s) for s in cfg['snrs']] or have['n_groups'] != cfg['n_groups']:
        raise ValueError(f"{npz_dir} holds runs at SNRs {[f'{s:g}' for s in have['snrs']]} dB on {have['n_groups'] or 'all'} pairs; "
                         f"this run asks for SNRs {[f'{s:g}' for s in cfg['snrs']]} on {cfg['n_groups'] or 'all'}: finish the study "
                         "with its own --snrs / --quick, or give another --out_dir.")


def system_sha256(channel: str) -> str:
    "The checksum of the channel's zoo system's weights (zoo/SHA256SUMS), recorded with every run."
    from kdd_semnoma.zoo import read_manifest, zoo_dir
    return read_manifest(zoo_dir()).get(f"{SYSTEMS[channel].split(':', 1)[1]}/model.safetensors", 'unknown')


def check_decodings(npz_dir: Path, channel: str, cfg: dict, device: str) -> None:
    """Refuse to add runs to a study whose decodings were made by another system (a retrained zoo entry): today's
    decodings at the study's first SNR must score the per-image PSNR its `decoded` arm recorded."""
    f = npz_path(npz_dir, channel, 'decoded', 0)
    if not f.exists(): return
    from kdd_semnoma.metrics import psnr
    have = np.load(f)['psnr'][0]                                                     # (N, K) at the first SNR
    now = psnr(decoded(channel, cfg['snrs'][0], cfg['n_groups'], device), test_pairs(cfg['n_groups'])[0]).numpy()
    if now.shape != have.shape or not np.allclose(now, have, atol=1e-3):
        raise ValueError(f"{f.parent} was decoded by another {SYSTEMS[channel]} (its decodings score differently today: the zoo "
                         "entry changed); give this prior's study another --out_dir, or rerun it from scratch in a new one.")


def check_choices(channels, arms) -> None:
    bad_c = [c for c in channels if c not in SYSTEMS]
    if bad_c: raise ValueError(f"unknown channel {bad_c[0]!r}; choose from {', '.join(CHANNELS)} (--channels).")
    bad_a = [a for a in arms if a not in ARMS]
    if bad_a: raise ValueError(f"unknown arm {bad_a[0]!r}; choose from {', '.join(ARMS)} (--arms).")


def settings_for(arm: str, snrs, scheduler, fit: dict | None) -> list:  # per SNR: a resolved setting or None
    "The DifFace setting of `arm` at each SNR on the prior's schedule (None for decoded / cgan)."
    from kdd_semnoma.diffusion import RefineConfig, start_step, NO_REFINEMENT
    spec = ARMS[arm]
    if spec['kind'] == 'decoded': return [NO_REFINEMENT.resolve(scheduler)] * len(snrs)   # t0 = 0, sigma = 0, alpha_bar = 1
    if spec['kind'] == 'cgan': return [None] * len(snrs)
    out = []
    for s in snrs:
        t0 = start_step(scheduler, sigma=spec['sigma']) if spec['kind'] == 'difface' else matched_start(scheduler, fit['rms'][f'{s:g}'])
        calls = min(spec['calls'], t0 + 1) if arm in CAPPED else spec['calls']    # low starts: one call per step at most
        out.append(RefineConfig(t0=t0, calls=calls, eta=spec['eta']).resolve(scheduler))
    return out


def scores(out: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, clf) -> dict:
    "Per-image (N, K) and per-user (K,) scores of outputs `out` (N, K, 3, H, W) against originals `x`."
    from kdd_semnoma.classifier import classifier_outputs
    from kdd_semnoma.metrics import psnr, ssim, cnpd, feature_distances, SmallSampleWarning
    N, K = x.shape[:2]
    (lo, fo), (lr, fr) = classifier_outputs(clf, out.flatten(0, 1)), classifier_outputs(clf, x.flatten(0, 1))
    po, pr = lo.argmax(1).reshape(N, K), lr.argmax(1).reshape(N, K)
    fo, fr = fo.reshape(N, K, -1), fr.reshape(N, K, -1)                           # (N, K, D)
    with warnings.catch_warnings():
        if N < 256: warnings.simplefilter('ignore', SmallSampleWarning)            # small (quick) runs: flagged in the report
        dist = [feature_distances(fo[:, k], fr[:, k], paired=True, seed=0) for k in range(K)]
    return dict(psnr=psnr(out, x).numpy(), ssim=ssim(out, x).numpy(), cnpd=cnpd(out, x, classifier=clf).numpy(),
                sem_acc=(po == labels).numpy(), sem_agree=(po == pr).numpy(),
                fid_cn=np.array([d['fid_cifarnet'] for d in dist]),
                kid_cn=np.array([d.get('kid_cifarnet', math.nan) for d in dist]),
                kid_cn_se=np.array([d.get('kid_cifarnet_se', math.nan) for d in dist]))


def do_run(channel: str, arm: str, seed: int, *, npz_dir: Path, **kwargs) -> Path | None:
    """One run, skipped if its npz exists. Workers of one study (e.g. one process per core, same command) share the
    queue: each run is claimed with core.run_lock on <npz_dir>/<channel>/.locks/<arm>-s<seed>, and a run that a live
    worker holds is skipped (None); a dead worker's claim is taken over."""
    from kdd_semnoma.core import run_lock
    target = npz_path(npz_dir, channel, arm, seed)
    if target.exists(): return target
    lock_dir = npz_dir / channel / '.locks' / f'{arm}-s{seed}'
    def remove_if_empty():                                                      # the claim's folder, once the lock is gone
        try: lock_dir.rmdir()
        except OSError: pass                                                    # not empty: another worker holds it
    with ExitStack() as held:
        held.callback(remove_if_empty)                                          # runs after the lock is released
        try: held.enter_context(run_lock(lock_dir))
        except RuntimeError:                                                     # run_lock: a live worker holds it
            print(f"{channel}/{arm}-s{seed}: another worker is running it, skipped", flush=True)
            return None
        return _do_run(channel, arm, seed, npz_dir=npz_dir, **kwargs)


def _do_run(channel: str, arm: str, seed: int, *, prior: str, cfg: dict, npz_dir: Path, device: str,
            batch_size: int = 64, precision: str = 'auto', compile: bool = False) -> Path:
    "Refine (arm) the channel's decodings at every SNR with noise seed `seed` and write the scores; skipped if the npz exists."
    from kdd_semnoma.core import atomic_write
    from kdd_semnoma.cgan import apply_cgan
    from kdd_semnoma.diffusion import refine_batched
    target = npz_path(npz_dir, channel, arm, seed)
    if target.exists(): return target
    t_start, pr = time.time(), load_prior_cached(prior, device)
    snrs, kind = cfg['snrs'], ARMS[arm]['kind']
    fit = residual_fit(channel, snrs, cfg['n_fit_groups'], pr.scheduler, device, npz_dir) if kind == 'matched' else None
    gen = cgan_for(channel, cfg, device, npz_dir) if kind == 'cgan' else None
    x, labels = test_pairs(cfg['n_groups'])
    rows, sets = [], settings_for(arm, snrs, pr.scheduler, fit)
    for snr, s in zip(snrs, sets):
        xh = decoded(channel, snr, cfg['n_groups'], device)                        # (N, K, 3, H, W)
        if kind == 'decoded': out = xh
        elif kind == 'cgan': out = apply_cgan(gen, xh).clamp(0, 1)
        else: out = refine_batched(xh.flatten(0, 1), compiled_unet(prior, device) if compile else pr.unet, pr.scheduler, s,
                                   seed=seed, batch_size=batch_size, precision=precision).reshape(xh.shape)
        rows.append(scores(out, x, labels, classifier(device)))
    arrays = {k: np.stack([r[k] for r in rows]).astype(np.float32 if rows[0][k].dtype != bool else bool) for k in rows[0]}
    for f in ('t0', 'sigma', 'alpha_bar', 'calls', 'eta'):
        arrays[f] = np.array([math.nan if s is None else s[f] for s in sets], np.float64)
    from kdd_semnoma.core import resolve_precision
    meta = dict(channel=channel, arm=arm, seed=seed, spec=ARMS[arm], prior=prior, prior_meta=pr.meta,
                precision=resolve_precision(precision, device), compiled=bool(compile and kind not in ('decoded', 'cgan')),
                beta_schedule=pr.scheduler.config.beta_schedule, num_train_timesteps=pr.scheduler.config.num_train_timesteps,
                system=SYSTEMS[channel], system_sha256=system_sha256(channel), decode_seed=DECODE_SEED, n_groups=len(x),
                residual=fit, budget=cfg,
                wall_s=round(time.time() - t_start, 1), torch_threads=torch.get_num_threads(), code=code_version())
    atomic_write(target, lambda p: np.savez_compressed(open(p, 'wb'), snr_db=np.array(snrs), meta=json.dumps(meta, default=str),
                                                       **arrays))
    print(f"{channel}/{arm}-s{seed}: PSNR {np.round(arrays['psnr'].mean((1, 2)), 2).tolist()}, "
          f"KID-CN {np.round(arrays['kid_cn'].mean(1), 4).tolist()} ({meta['wall_s']:.0f} s)", flush=True)
    return target


def code_version() -> str:
    "`git describe --always --dirty` of the kit imported, recorded with every run."
    import kdd_semnoma
    try: return subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=Path(kdd_semnoma.__file__).resolve().parents[1],
                               capture_output=True, text=True, timeout=10).stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError): return 'unknown'


def queue(channels, arms, seeds: int) -> list:
    "Runs in order: per channel the deterministic arms once (seed 0), then every stochastic arm's seeds 0..seeds-1."
    return [(c, a, s) for s in range(seeds) for c in channels for a in arms if s == 0 or ARMS[a]['kind'] in ('difface', 'matched')]


# ---------------------------------------------------------------- report
def load_arm(npz_dir: Path, channel: str, arm: str) -> dict | None:
    "All seeds of an arm: per-image scores (S, n_snr, N, K), per-user (S, n_snr, K), settings (n_snr,), seeds, metas; or None."
    files = sorted((npz_dir / channel).glob(f'{arm}-s*.npz'), key=lambda p: int(p.stem.rsplit('-s', 1)[1]))
    if not files: return None
    zs = [dict(np.load(f)) for f in files]
    out = {k: np.stack([z[k] for z in zs]) for k in (*PER_IMAGE, *PER_SET, 'kid_cn_se')}
    out.update({f: zs[0][f] for f in ('snr_db', 't0', 'sigma', 'alpha_bar', 'calls', 'eta')})
    out['meta'] = [json.loads(str(z['meta'])) for z in zs]
    out['seeds'] = [m['seed'] for m in out['meta']]
    return out


def npz_budget(npz_dir: Path) -> dict | None:
    "The budget the runs in `npz_dir` recorded (FULL or QUICK, with the seeds asked for), or None."
    f = next(iter(sorted(npz_dir.glob('*/decoded-s0.npz'))), None)
    return None if f is None else json.loads(str(np.load(f)['meta']))['budget']


def run_commands(npz_dir: Path, prior: str, out_dir) -> list:
    """The `run` commands that make the runs found in `npz_dir` (their design, --quick / --snrs, read from the runs' budget):
    one command when every channel has every arm, else one per channel."""
    b = npz_budget(npz_dir) or {}
    quick = b.get('n_groups') == QUICK['n_groups']
    flags = ' --quick' if quick else ''
    if any(json.loads(str(np.load(f)['meta'])).get('compiled') for f in npz_dir.glob('*/*.npz')): flags += ' --compile'
    if b.get('snrs') is not None and [float(s) for s in b['snrs']] != list((QUICK if quick else FULL)['snrs']):
        flags += ' --snrs ' + ','.join(f'{s:g}' for s in b['snrs'])
    found = {ch: [a for a in ARMS if any((npz_dir / ch).glob(f'{a}-s*.npz'))] for ch in CHANNELS}
    found = {ch: arms for ch, arms in found.items() if arms}
    out = '' if Path(out_dir).resolve() == RESULTS.resolve() else f' --out_dir {out_dir}'
    head = f'KDD_SEMNOMA_DATA=/path/to/data python bench/refine_study.py run --prior {prior}{out}{flags}'
    if all(arms == list(ARMS) for arms in found.values()) and len(found) == len(CHANNELS): return [head]
    return [head + f' --channels {ch}' + ('' if arms == list(ARMS) else ' --arms ' + ' '.join(arms)) for ch, arms in found.items()]


def _iv(lo, hi) -> list: return [float(lo), float(hi)]


def arm_stats(v: dict, dec: dict, i: int) -> dict:
    """Means over seeds of one arm at SNR index i, with a bootstrap over seeds and pairs (ci95_boot) and a t-interval over
    seed means (ci95_t); the paired difference to the decodings (diff_*); FID/KID: t over seeds and the relative change."""
    from kdd_semnoma.kd_study import bootstrap_mean, t_interval
    out, S = {}, len(v['seeds'])
    for m in PER_IMAGE:
        a = v[m][:, i].astype(np.float64)                                         # (S, N, K)
        b = np.broadcast_to(dec[m][0, i].astype(np.float64), a.shape)              # the decodings, one per seed
        mean, lo, hi, _ = bootstrap_mean(a); t = t_interval(a.mean((1, 2)))
        out[m] = dict(value=mean, ci95_boot=_iv(lo, hi), ci95_t=_iv(t[1], t[2]))
        d, dlo, dhi, _ = bootstrap_mean(a, b); dt = t_interval((a - b).mean((1, 2)))
        out[f'diff_{m}'] = dict(value=d, ci95_boot=_iv(dlo, dhi), ci95_t=_iv(dt[1], dt[2]))
    for m in PER_SET:
        per_seed, base = v[m][:, i].mean(-1), float(dec[m][0, i].mean())           # (S,) mean over users
        t = t_interval(per_seed); out[m] = dict(value=t[0], ci95_t=_iv(t[1], t[2]))
        if m == 'kid_cn': out[m]['se'] = float(np.sqrt((v['kid_cn_se'][:, i] ** 2).sum()) / v['kid_cn_se'][:, i].size)
        rel = t_interval(per_seed / base - 1) if base > 0 else (math.nan,) * 3
        out[f'rel_{m}'] = dict(value=rel[0], ci95_t=_iv(rel[1], rel[2]))
    out['setting'] = {f: (None if math.isnan(v[f][i]) else (int if f in ('t0', 'calls') else float)(v[f][i]))
                      for f in ('t0', 'sigma', 'alpha_bar', 'calls', 'eta')}
    out['n_seeds'] = S
    return out


def claim_point(s: dict) -> dict:
    "One arm's statistics against the claim's thresholds at their point values: the reductions, the semantic gain (with its "
    "bootstrap interval, whose lower end must clear 0), the PSNR cost, each threshold's flag and whether all are met."
    kid, fid, cost = -s['rel_kid_cn']['value'], -s['rel_fid_cn']['value'], -s['diff_psnr']['value']
    sem_ci = s['diff_sem_acc']['ci95_boot']
    meets = dict(kid=kid >= CLAIM_REDUCTION, fid=fid >= CLAIM_REDUCTION, sem=sem_ci[0] > 0, psnr=cost <= CLAIM_PSNR_COST)
    return dict(kid_reduction=kid, fid_reduction=fid, sem_acc_gain=s['diff_sem_acc']['value'], sem_acc_gain_ci95=sem_ci,
                psnr_cost_db=cost, meets={k: bool(v) for k, v in meets.items()}, meets_all=bool(all(meets.values())))


AT_CLAIM_KEYS = ('diff_psnr', 'rel_kid_cn', 'rel_fid_cn', 'diff_sem_acc')


def at_claim(results: dict) -> dict:  # {arm: {key: [value per (channel, claim SNR)]}}
    """Each arm's mean changes against the decodings at the claim SNRs, over every channel (channel by channel, SNRs in
    order): the values the notebooks and the README quote as ranges, read from the report rather than re-selected."""
    out = {}
    for r in results.values():
        for s, st in zip(r['snr_db'], r['stats']):
            if s not in CLAIM_SNRS: continue
            for a, x in st.items():
                for k in AT_CLAIM_KEYS:
                    if k in x: out.setdefault(a, {}).setdefault(k, []).append(x[k]['value'])
    return out


def strongest(claim: dict, max_cost_db: float | None = None) -> dict | None:
    """The DifFace claim point (channel, snr, arm + claim_check's fields) with the largest KID-CN reduction over every channel
    and claim SNR, among the points that cost at most `max_cost_db` of PSNR when given: the notebooks and the README quote it
    from the report rather than re-selecting it."""
    pts = [dict(channel=ch, snr=s, arm=a, **x) for ch, c in claim.items() for s, v in c.items() for a, x in v['arms'].items()
           if max_cost_db is None or x['psnr_cost_db'] <= max_cost_db]
    return max(pts, key=lambda p: p['kid_reduction'], default=None)


def claim_check(stats: dict, snr: float) -> dict:
    """Item 6 at one SNR: for every DifFace arm, KID-CN and FID-CN reductions (>= 30 %?), semantic accuracy gain (interval above
    0?), PSNR cost (<= 0.5 dB?); and DifFace vs the CGAN at equal PSNR cost (the sigma-sweep curve interpolated at the CGAN's PSNR)."""
    out = {}
    for arm in (a for a in DIFFACE if a in stats):
        s, c = stats[arm], claim_point(stats[arm])
        kid_lo, fid_lo = -s['rel_kid_cn']['ci95_t'][1], -s['rel_fid_cn']['ci95_t'][1]   # the reduction's lower bound
        cost_hi = -s['diff_psnr']['ci95_boot'][0]
        strict = (None if math.isnan(kid_lo) or math.isnan(fid_lo) else
                  bool(kid_lo >= CLAIM_REDUCTION and fid_lo >= CLAIM_REDUCTION and c['meets']['sem'] and cost_hi <= CLAIM_PSNR_COST))
        out[arm] = dict(c, kid_reduction_lo=kid_lo, fid_reduction_lo=fid_lo, psnr_cost_ci95=[-s['diff_psnr']['ci95_boot'][1], cost_hi],
                        sigma=s['setting']['sigma'], meets_all_with_intervals=strict)
    res = dict(arms=out, met_by=[a for a, c in out.items() if c['meets_all']])
    if 'cgan' in stats:   # the same thresholds applied to the CGAN (one trained CGAN per channel: intervals over pairs only)
        res['cgan_thresholds'] = claim_point(stats['cgan'])
    if 'cgan' in stats and 'decoded' in stats:
        pts = sorted((stats[a]['psnr']['value'], stats[a]['kid_cn']['value']) for a in ('decoded', *SWEEP) if a in stats)
        p_c, k_c = stats['cgan']['psnr']['value'], stats['cgan']['kid_cn']['value']
        inside = len(pts) > 1 and pts[0][0] <= p_c <= pts[-1][0]
        k_d = float(np.interp(p_c, *zip(*pts))) if inside else None
        res['vs_cgan'] = dict(cgan_psnr=p_c, cgan_kid_cn=k_c, cgan_psnr_cost_db=stats['decoded']['psnr']['value'] - p_c,
                              difface_kid_cn_at_cgan_psnr=k_d, difface_better=None if k_d is None else bool(k_d < k_c),
                              note=None if inside else "the CGAN PSNR is outside the DifFace sigma sweep's PSNR range: "
                                                       'no equal-cost point')
    res['sentence'] = claim_sentence(res, snr)
    return res


def claim_sentence(res: dict, snr: float) -> str:
    "The claim at one SNR in words, from the numbers."
    best = max(res['arms'].items(), key=lambda kv: kv[1]['kid_reduction'], default=None)
    if best is None: return f"{snr:g} dB: no DifFace arm measured."
    a, c = best
    head = (f"{snr:g} dB: " + (f"DifFace meets the claim with {', '.join(res['met_by'])}" if res['met_by'] else
                               "no DifFace arm meets the claim (KID-CN and FID-CN -30 %, semantic accuracy up beyond noise, "
                               "<= 0.5 dB PSNR)")
            + f"; the largest KID-CN reduction is {a} (sigma {c['sigma']:.3g}): KID-CN {-100 * c['kid_reduction']:+.0f} %, "
              f"FID-CN {-100 * c['fid_reduction']:+.0f} % (vs decoded), semantic accuracy {100 * c['sem_acc_gain']:+.1f} points "
              f"[{100 * c['sem_acc_gain_ci95'][0]:+.1f}, {100 * c['sem_acc_gain_ci95'][1]:+.1f}], PSNR cost {c['psnr_cost_db']:.2f} dB")
    v = res.get('vs_cgan')
    if v: head += ('; vs the CGAN: ' + (v['note'] if v['difface_better'] is None else
                   f"at the CGAN's PSNR ({v['cgan_psnr']:.2f} dB) the DifFace sweep has KID-CN "
                   f"{v['difface_kid_cn_at_cgan_psnr']:.4f} vs the "
                   f"CGAN's {v['cgan_kid_cn']:.4f} ({'DifFace' if v['difface_better'] else 'the CGAN'} lower)"))
    return head


def perception_distortion_figure(results: dict, path: Path) -> Path:
    "PSNR vs KID-CN per (channel, SNR): the DifFace sigma sweep as a curve from the decodings, the CGAN, matched and ablations as points."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    chans = list(results)
    snrs = results[chans[0]]['snr_db']
    fig, axs = plt.subplots(len(chans), len(snrs), figsize=(3.2 * len(snrs), 2.9 * len(chans)), squeeze=False)
    for r, ch in enumerate(chans):
        for j, snr in enumerate(snrs):
            ax, st = axs[r, j], results[ch]['stats'][j]
            pk = lambda a: (st[a]['psnr']['value'], st[a]['kid_cn']['value'])
            curve = [a for a in ('decoded', *SWEEP) if a in st]
            if curve:
                ax.plot(*zip(*[pk(a) for a in curve]), 'o-', color='C0', label='DifFace (sigma sweep)')
                for a in curve[1:]: ax.annotate(f"{st[a]['setting']['sigma']:.2g}", pk(a), fontsize=7)
            for a, style in (('decoded', dict(color='k', marker='s')), ('cgan', dict(color='C3', marker='*', ms=11)),
                             ('matched', dict(color='C2', marker='D'))):
                if a in st: ax.plot(*pk(a), ls='none', label=a, **style)
            for a in ('calls-5', 'calls-25', 'eta-0', 'eta-1'):
                if a in st: ax.plot(*pk(a), ls='none', marker='x', color='0.5'); ax.annotate(a, pk(a), fontsize=6, color='0.4')
            ax.set_title(f'{ch}, {snr:g} dB', fontsize=9); ax.set_xlabel('PSNR (dB)'); ax.set_ylabel('KID-CN (lower: closer)')
    axs[0, 0].legend(fontsize=7)
    fig.tight_layout(); path.parent.mkdir(parents=True, exist_ok=True)
    from kdd_semnoma.core import atomic_write
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format='png')); plt.close(fig)
    return path


def report(npz_dir: Path, out: Path, prior: str, command: str) -> dict:
    "The results JSON (and figure) of every run in `npz_dir`."
    from kdd_semnoma.results import save_results, make_results, portable_command
    from kdd_semnoma.metrics import CNPD_NOTE, CIFARNET, semantic_conventions, DIST_MIN_N
    from kdd_semnoma.kd_study import N_BOOT
    results, records, claim, runs, summary = {}, [], {}, {}, []
    for ch in CHANNELS:
        arms = {a: v for a in ARMS if (v := load_arm(npz_dir, ch, a)) is not None}
        if 'decoded' not in arms: continue
        snrs = [float(s) for s in arms['decoded']['snr_db']]
        stats = [{a: arm_stats(v, arms['decoded'], i) for a, v in arms.items()} for i in range(len(snrs))]
        results[ch] = dict(snr_db=snrs, stats=stats, seeds={a: v['seeds'] for a, v in arms.items()},
                           residual=next((m['residual'] for v in arms.values() for m in v['meta'] if m.get('residual')), None))
        for snr, st in zip(snrs, stats):
            for a, s in st.items():
                for m, d in s.items():
                    if isinstance(d, dict) and 'value' in d:
                        records.append(dict(channel=ch, snr_db=snr, arm=a, metric=m, **d, n_seeds=s['n_seeds'],
                                            n=int(arms[a]['psnr'].shape[2]), **s['setting']))
        claim[ch] = {f'{snr:g}': claim_check(st, snr) for snr, st in zip(snrs, stats) if snr in CLAIM_SNRS}
        summary += [f"{ch}, {c['sentence']}" for c in claim[ch].values()]
        runs.update({f"{ch}/{a}-s{m['seed']}": dict(wall_s=m['wall_s'], code=m['code'], n_groups=m['n_groups'])
                     for a, v in arms.items() for m in v['meta']})
    if not results: raise FileNotFoundError(f"no decoded runs in {npz_dir}: run `python bench/refine_study.py run` first.")
    meta = next(m for ch in results for v in [load_arm(npz_dir, ch, 'decoded')] for m in v['meta'])
    n_img = meta['n_groups']
    doc = make_results(
        out.stem, records, seed=None, results=results,
        data=f"cifar10-npz: {n_img} of the 466 pixel-exact CIFAR-10 test pairs (K = 2), decoded by the zoo KD-SemNOMA systems "
             f"({', '.join(SYSTEMS.values())}) with evaluate.reconstruct (seed {DECODE_SEED}); the matched arm's residual on the "
             "JPEG test split without the evaluation images; the CGAN on decodings of training pairs",
        description="DifFace-style refinement of KD-SemNOMA decodings with a diffusion prior against the decodings and the "
                    "SemNOMA-CGAN, with noise seeds. Per (channel, SNR, arm): means over seeds, pairs and users with a 95 % "
                    f"bootstrap over seeds and pairs ({N_BOOT} resamples, ci95_boot) and a 95 % t-interval over the seed means "
                    "(ci95_t; nan for one seed); diff_* = arm - decoded paired by image; rel_fid_cn / rel_kid_cn = arm / decoded - 1 "
                    "per seed. The claim (issue 23 item 6) is checked per SNR in `claim`.",
        config=dict(prior=portable_command(prior), prior_meta=meta['prior_meta'], beta_schedule=meta['beta_schedule'],
                    num_train_timesteps=meta['num_train_timesteps'], systems=SYSTEMS, arms=ARMS, sweep=list(SWEEP),
                    budget=meta['budget'], decode_seed=DECODE_SEED, fit_seed=FIT_SEED, cgan_seed=CGAN_SEED,
                    claim=dict(snrs_db=list(CLAIM_SNRS), reduction=CLAIM_REDUCTION, psnr_cost_db=CLAIM_PSNR_COST),
                    runs=runs, total_wall_min=round(sum(r['wall_s'] for r in runs.values()) / 60, 1),
                    seeds={ch: r['seeds'] for ch, r in results.items()}),
        conventions=dict(**semantic_conventions(n_img, 'the originals of the same test images (per user)', CIFARNET),
                         cnpd=CNPD_NOTE.format(classifier=CIFARNET),
                         sigma='start noise level sqrt((1 - alpha_bar)/alpha_bar) in model space [-1, 1]; t0 its step on the '
                               "prior's own schedule; every record carries t0, sigma, alpha_bar, calls, eta (nan/None: no diffusion)",
                         sem_acc='per-image top-1 correctness, mean = semantic accuracy; sem_agree = same class as on the original',
                         small_sample=None if n_img * 1 >= DIST_MIN_N else
                         f'FID-CN / KID-CN on {n_img} images per user (< {DIST_MIN_N}): unreliable (a quick run)'),
        command=command)
    doc['claim'], doc['summary'], doc['at_claim'] = claim, summary, at_claim(results)
    doc['strongest'] = dict(any_cost=strongest(claim), within_cost=strongest(claim, CLAIM_PSNR_COST))
    save_results(doc, out)
    perception_distortion_figure(results, out.with_suffix('.png'))
    return doc


# ---------------------------------------------------------------- CLI
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    r, rep = sub.add_parser('run', help='every (channel, arm, seed) run, resumable'), sub.add_parser('report', help='results JSON + figure')
    for s in (r, rep):
        s.add_argument('--prior', default=DEFAULT_PRIOR, help='diffusers prior folder or zoo:NAME')
        s.add_argument('--out_dir', default=str(RESULTS),
                       help='writes <out_dir>/refine_study/<prior>/ and <out_dir>/refine_study_<prior>.json')
        s.add_argument('--debug', action='store_true', help='show the traceback on an error')
    r.add_argument('--channels', nargs='+', default=list(CHANNELS)); r.add_argument('--arms', nargs='+', default=list(ARMS))
    r.add_argument('--seeds', type=int, default=None, help='noise seeds per stochastic arm (default 3; --quick: 1)')
    r.add_argument('--quick', action='store_true', help=f'smoke test: {QUICK}')
    r.add_argument('--snrs', default=None, help='SNRs in dB, comma-separated, from 0,5,10,15,20 (default all; the claim '
                                                "SNRs '0,5' make a smaller study, e.g. for a large prior on a CPU)")
    r.add_argument('--device', default='cpu'); r.add_argument('--batch_size', type=int, default=64)
    r.add_argument('--precision', default='auto', choices=['auto', 'fp32', 'bf16'],
                   help="the prior's arithmetic: auto = bf16 on CUDA and on CPUs with native bf16 (recorded in every run)")
    r.add_argument('--compile', action='store_true',
                   help="compile the prior for inference (diffusion.compile_for_inference: faster on a oneDNN CPU after a "
                        "minute or two of compiling per worker; outputs differ from eager only at bf16 rounding; recorded in every run)")
    r.add_argument('--no_report', action='store_true', help='skip the report after the runs')
    a = p.parse_args(argv)
    from kdd_semnoma.core import cli_errors
    with cli_errors('refine_study', a.debug):
        npz_dir = Path(a.out_dir) / 'refine_study' / prior_tag(a.prior)
        out = results_path(a.out_dir, a.prior)
        if a.cmd == 'run':
            check_choices(a.channels, a.arms)
            if 'decoded' not in a.arms: raise ValueError("--arms must include 'decoded' (every difference is against it).")
            cfg = dict(QUICK if a.quick else FULL); cfg['seeds'] = a.seeds or cfg['seeds']
            if a.snrs is not None: cfg['snrs'] = parse_snrs(a.snrs)
            check_budget(npz_dir, cfg)
            load_prior_cached(a.prior, a.device)                                  # a missing prior fails before any work
            for c in a.channels: check_decodings(npz_dir, c, cfg, a.device)     # and a changed system
            for c, arm, s in queue(a.channels, a.arms, cfg['seeds']):
                do_run(c, arm, s, prior=a.prior, cfg=cfg, npz_dir=npz_dir, device=a.device, batch_size=a.batch_size,
                       precision=a.precision, compile=a.compile)
            if a.no_report: return npz_dir
        from kdd_semnoma.diffusion import prior_dir
        prior_dir(a.prior)                                                        # a bad prior name fails with the zoo's message
        cmd = shlex.join(['python', 'bench/refine_study.py', *(sys.argv[1:] if argv is None else argv)])
        if a.cmd == 'report':   # how the runs were made, then this report
            cmd = '; '.join([*run_commands(npz_dir, a.prior, a.out_dir), cmd])
        doc = report(npz_dir, out, a.prior, cmd)
        for line in doc['summary']: print(line)
        print(f'-> {out} (+ {out.with_suffix(".png").name})')
        return doc


if __name__ == '__main__':
    main()
