"""Time to quality on CPU (issue 24): training wall-minutes until SemNOMA (cpu-small, K = 2, AWGN, from scratch) first
reaches a fixed validation score, for today's settings against the alternatives, measured side by side in one process.

    KDD_SEMNOMA_DATA=/path/to/data python bench/time_to_quality.py --target 22.5 --threads 1 \
        --out results/time_to_quality_cpu.json

Every arm is the kit's own training loop (`train.start_run` + `train.train_loop`) in its own thread; a baton lets one
arm compute at a time for `--chunk` steps, round robin, so all arms see the same machine load (interleaved). An arm's
clock counts its training steps and batch loading only; validation (every `--val_every` steps, 256 validation groups
of the training export's held-out split at 0/10/20 dB, fp32 for every arm, the same seeded noise) is not counted.
An arm stops at its first validation at or above `--target`, or after `--max_steps`. The target is fixed before
measuring; the lr schedule is constant after warm-up, so the step at which an arm reaches it does not depend on a
planned run length. Dropout draws come from the global RNG, shared by the threads (the interleaving is deterministic).
"""
import argparse, sys, tempfile, threading, time
from pathlib import Path
import torch
from kdd_semnoma.core import cpu_info, data_path, resolve_precision
from kdd_semnoma.data import get_dls
from kdd_semnoma.results import save_results
from kdd_semnoma.train import Callback, build_model, start_run, train_config, train_loop, validate

# name: (precision, batch size in groups, peak lr); 'today' is the zoo's campaign setting before issue 24
ARMS = {'today': ('fp32', 32, 5e-4), 'bf16': ('bf16', 32, 5e-4), 'bf16-lr1e-3': ('bf16', 32, 1e-3),
        'bf16-b64-lr1e-3': ('bf16', 64, 1e-3)}


SPLIT = {'cifar10-npz': "training export (45,000 train / 5,000 validation); "}


class Baton:
    "Round robin over `n` threads: `wait(i)` blocks until it is thread i's turn; `pass_on(i)` gives the turn onwards."
    def __init__(self, n: int):
        self.cv, self.turn, self.n, self.done = threading.Condition(), 0, n, set()

    def wait(self, i: int) -> None:
        with self.cv: self.cv.wait_for(lambda: self.turn == i)

    def pass_on(self, i: int, finished: bool = False) -> None:
        with self.cv:
            if finished: self.done.add(i)
            live = [j for j in range(1, self.n + 1) if (i + j) % self.n not in self.done]
            self.turn = (i + live[0]) % self.n if live else -1
            self.cv.notify_all()


class TrainClock(Callback):
    "First callback: adds the time since the arm last got the CPU (its step and batch loading) to `seconds`."
    def __init__(self): self.seconds, self.t = 0., None
    def start(self): self.t = time.perf_counter()
    def after_step(self, run): self.seconds += time.perf_counter() - self.t


class ToTarget(Callback):
    "Last callback: validate every `every` steps (fp32), stop at `target`; hand the baton on every `chunk` steps."
    def __init__(self, i, baton, clock, *, target, every, chunk, val_groups, snrs, log):
        self.i, self.baton, self.clock, self.target, self.every, self.chunk = i, baton, clock, target, every, chunk
        self.val_groups, self.snrs, self.log, self.history, self.reached, self.finished = val_groups, snrs, log, [], None, False

    def before_fit(self, run):
        self.baton.wait(self.i); self.clock.start()

    def after_step(self, run):
        s = run.state.step
        if s % self.every == 0 or s >= run.total:
            t = time.perf_counter()
            v = validate(run.model, run.dls.valid, snrs_db=self.snrs, seed=run.cfg.seed, max_groups=self.val_groups,
                         precision='fp32')['psnr']
            self.history.append(dict(step=s, train_s=self.clock.seconds, val_psnr=v, val_s=time.perf_counter() - t))
            self.log(f"{self.i}: step {s} val {v:.3f} dB after {self.clock.seconds / 60:.2f} train-min")
            if v >= self.target and self.reached is None:
                self.reached = dict(step=s, train_s=self.clock.seconds, val_psnr=v); run.state.stopped = True
        if run.stop or s >= run.total or s % self.chunk == 0:
            self.finished = run.stop or s >= run.total
            self.baton.pass_on(self.i, self.finished)
            if not self.finished: self.baton.wait(self.i)
        self.clock.start()

    def after_fit(self, run):
        if not self.finished: self.finished = True; self.baton.pass_on(self.i, True)   # an error: do not block the others


def run_arms(arms: dict, *, target: float, max_steps: int, val_every: int, chunk: int, seed: int, val_groups: int,
             snrs: tuple, data: str = 'cifar10-npz', log=print) -> dict:  # {arm: {'reached': ..., 'history': [...], 'config': {...}}}
    "Train every arm of `arms` {name: (precision, batch, lr)} interleaved until `target` (see the module docstring)."
    baton, out, threads, errors = Baton(len(arms)), {}, [], []

    def one(i, name, precision, batch, lr, tmp):
        try:
            cfg = train_config('semnoma', 'cpu-small', n_users=2, fading='none', batch_size=batch, lr=lr,
                               lr_schedule='constant', warmup_steps=100, epochs=1000, max_steps=max_steps, seed=seed,
                               precision=precision, val_every=0)
            torch.manual_seed(seed)
            dls = get_dls(data, cfg.n_users, cfg.batch_size, seed=cfg.seed)
            model = build_model(cfg).to(memory_format=torch.channels_last)
            run = start_run(model, dls, cfg, out_dir=Path(tmp))
            clock = TrainClock()
            tt = ToTarget(i, baton, clock, target=target, every=val_every, chunk=chunk, val_groups=val_groups, snrs=snrs,
                          log=lambda m: log(f"[{name}] {m}"))
            train_loop(run, [clock, tt])
            out[name] = dict(reached=tt.reached, history=tt.history, steps=run.state.step,
                             config=dict(precision=resolve_precision(precision, 'cpu'), batch_groups=batch, lr=lr))
        except BaseException as e:   # noqa: BLE001 (reported below, the other arms go on)
            errors.append(f"{name}: {type(e).__name__}: {e}"); baton.pass_on(i, True)

    with tempfile.TemporaryDirectory() as d:
        for i, (name, (precision, batch, lr)) in enumerate(arms.items()):
            (tmp := Path(d) / name).mkdir()
            threads.append(threading.Thread(target=one, args=(i, name, precision, batch, lr, tmp), daemon=True))
        for t in threads: t.start()
        for t in threads: t.join()
    if errors: raise RuntimeError("; ".join(errors))
    return out


def summarise(out: dict, base: str = 'today') -> dict:  # {arm: train-minutes to target, speedup against `base`}
    ref = out[base]['reached']
    rows = {}
    for name in sorted(out, key=lambda n: list(ARMS).index(n)):   # the ARMS order, today first
        r = out[name]
        m = None if r['reached'] is None else r['reached']['train_s'] / 60
        rows[name] = dict(minutes_to_target=m, step_at_target=None if r['reached'] is None else r['reached']['step'],
                          images_to_target=None if r['reached'] is None else r['reached']['step'] * r['config']['batch_groups'] * 2,
                          speedup=None if (m is None or ref is None) else ref['train_s'] / 60 / m,
                          s_per_step=(r['history'][-1]['train_s'] / r['history'][-1]['step']) if r['history'] else None)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--target', type=float, default=22.5, help="validation score (dB): mean PSNR over 0/10/20 dB and users")
    p.add_argument('--max_steps', type=int, default=4000)
    p.add_argument('--val_every', type=int, default=250)
    p.add_argument('--chunk', type=int, default=50, help="steps an arm computes before handing the CPU on")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--arms', default=','.join(ARMS), help=f"comma-separated subset of {list(ARMS)}")
    p.add_argument('--val_groups', type=int, default=256)
    p.add_argument('--data', default='cifar10-npz', help="training data ('tiles' only to test this script)")
    p.add_argument('--out', default='results/time_to_quality_cpu.json')
    a = p.parse_args(argv)
    if a.data == 'cifar10-npz' and not (data_path() / 'cifar10').is_dir():
        sys.exit("time_to_quality: error: no CIFAR-10 export: set KDD_SEMNOMA_DATA to the data folder (see ../shared/data/README)")
    names = a.arms.split(',')
    if bad := [n for n in names if n not in ARMS]: sys.exit(f"time_to_quality: error: unknown arms {bad}: choose from {list(ARMS)}")
    if 'today' not in names: sys.exit("time_to_quality: error: --arms must include 'today' (the baseline)")
    torch.set_num_threads(a.threads)
    t0 = time.time()
    out = run_arms({n: ARMS[n] for n in names}, target=a.target, max_steps=a.max_steps, val_every=a.val_every,
                   chunk=a.chunk, seed=a.seed, val_groups=a.val_groups, snrs=(0., 10., 20.), data=a.data,
                   log=lambda m: print(m, flush=True))
    rows = summarise(out)
    cfg = dict(target_val_psnr=a.target, max_steps=a.max_steps, val_every=a.val_every, chunk=a.chunk, threads=a.threads,
               val_groups=a.val_groups, data=a.data,
               arms={n: dict(zip(('precision', 'batch_groups', 'lr'), ARMS[n])) for n in names},
               model='SemNOMA cpu-small, K = 2, AWGN, from scratch, L1 loss', schedule='constant lr after 100 warm-up steps',
               optimiser='AdamW, weight decay 1e-4, no clipping', wall_minutes=(time.time() - t0) / 60, **cpu_info())
    save_results(a.out, name=Path(a.out).stem, records=[dict(arm=n, **r) for n, r in rows.items()],
                 description=__doc__.split('\n\n')[0].replace('\n', ' '), config=cfg, seed=a.seed, x='arm',
                 data=f"{a.data}: " + SPLIT.get(a.data, "") + "never the test images",
                 results=dict(arms=rows, curves={n: r['history'] for n, r in out.items()}),
                 command='python bench/time_to_quality.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
    for n, r in rows.items(): print(n, r)


if __name__ == '__main__':
    main()
