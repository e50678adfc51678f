"""Training and inference speed of the kit's SemNOMA against the reference implementation's formulation, measured
side by side in one process: images/s, speed-up ratios, peak memory, FLOP rate (issue 12).

One command prints a table for the presets `paper` and `cpu-small`, K = 2 and 4, on CPU (2 threads by default) and
on CUDA when present. All variants of one (device, preset, K) run in one subprocess, interleaved step by step
(round r times every variant once), so that load from other processes affects them alike. Each row reports the
median step time and its spread (min-max over the timed rounds); each speed-up is the median over rounds of the
per-round ratio t_reference / t_variant, with its min-max. Peak memory: on CPU the peak RSS of a fresh process
running one step of that variant alone; on CUDA `max_memory_allocated`.

Workload (the reference's): a batch of 32 groups x K users of random 32x32 images, per-example SNR drawn from
U[0, 20] dB, AWGN NOMA channel, L1 loss, AdamW (lr 1e-4, weight decay 1e-4). "img/s" counts user images (B*K).

Variants:
  reference  the reference implementation's formulation on the same weights (bench/reference_impl.py): NCHW
             everywhere, its channels-first LayerNorm, dwconv -> permute -> nn.LayerNorm -> Linear -> GELU -> Linear
             -> gamma -> permute back, one encoder call per user, plain (non-fused, non-foreach) AdamW, no_grad inference;
  kit        the kit's one forward path: all B*K images through the encoder as one batch, channels-last memory,
             1x1-conv ConvNeXt blocks, fused AdamW, inference_mode;
  +compile   torch.compile of the encoder and decoders (inductor; --compile); +bf16 bf16 autocast (CUDA; and CPU, where it is
             the kit's default on CPUs with native bf16 — AMX-BF16 or AVX512-BF16 — and emulated elsewhere; --no_cpu_bf16 skips it).
             The results file names the CPU model and its bf16/AMX flags (core.cpu_info).

FLOP rates use the FlopCounterMode counts of `deepjscc.flops_per_image` (training = 3x forward) and are compared
with this machine's measured fp32 matmul throughput at the same thread count.

    python bench/train_speed.py                       # full CPU table (about 10 minutes on 2 idle cores)
    python bench/train_speed.py --quick               # 1 warm-up + 2 timed rounds per row
    python bench/train_speed.py --results results/train_speed_cpu.json   # the README's table
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys, time

def _matmul_gflops(device: str, n: int = 2048, reps: int = 10, dtype: str = 'float32') -> float:
    import torch
    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    best = float('inf')
    for _ in range(reps):
        if device == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter(); a @ b
        if device == 'cuda': torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9

def _build(spec: dict, v: dict):
    "Model, optimiser, forward function and autocast context for one variant (impl, bf16, compile)."
    import torch
    from contextlib import nullcontext
    from kdd_semnoma.deepjscc import get_config
    from kdd_semnoma.semnoma import SemNOMA
    from reference_impl import to_reference, reference_adamw   # bench/reference_impl.py, beside this script (outside the package)
    dev = torch.device(spec['device'])
    torch.manual_seed(0)
    kit = SemNOMA(get_config(spec['preset'], n_users=spec['users']))
    if v['impl'] == 'reference':
        model = to_reference(kit).to(dev); opt = reference_adamw(model)
    else:
        model = kit.to(dev).to(memory_format=torch.channels_last)
        try: opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=True)
        except (RuntimeError, TypeError): opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    if v['compile']:                     # compile the real-valued networks; the complex channel stays eager
        for net in [model.encoder, *model.decoders]: net.compile()
    amp = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if v['bf16'] else nullcontext
    return model, opt, model, amp

def run_one(spec: dict) -> list:
    "Time all variants of one (device, preset, K) in this process, alternating step by step (fair under load)."
    import torch
    if spec['device'] == 'cpu': torch.set_num_threads(spec['threads'])
    from kdd_semnoma.core import make_generator
    from kdd_semnoma.channel import sample_snr_db
    from kdd_semnoma.deepjscc import get_config, flops_per_image
    dev, K, B = torch.device(spec['device']), spec['users'], spec['batch']
    cfg = get_config(spec['preset'], n_users=K)
    g = make_generator(0, dev)
    x = torch.rand(B, K, 3, cfg.img_size, cfg.img_size, generator=g, device=dev)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    built = [_build(spec, v) for v in spec['variants']]

    def train_step(v, b):
        model, opt, fwd, amp = b
        snr = sample_snr_db(B, 0., 20., generator=g, device=dev)
        with amp(): out = fwd(x, snr, generator=g)
        loss = (out.x_hat.float() - x).abs().mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()

    def infer_step(v, b):
        model, opt, fwd, amp = b
        snr = sample_snr_db(B, 0., 20., generator=g, device=dev)
        with (torch.no_grad() if v['impl'] == 'reference' else torch.inference_mode()), amp(): fwd(x, snr, generator=g)

    res = [dict(spec, **v, train_s=[], infer_s=[], train_cpu_s=[], infer_cpu_s=[], peak_mem_mb=0.) for v in spec['variants']]
    for phase, fn, key in (('train', train_step, 'train_s'), ('eval', infer_step, 'infer_s')):
        for b in built: b[0].train(phase == 'train')
        if phase == 'eval' and dev.type == 'cpu' and any(v['compile'] for v in spec['variants']):
            import torch._inductor.config as inductor_config   # inference graphs only: weights folded in and prepacked (oneDNN)
            inductor_config.freezing = True                    # safe here: training is over, the weights no longer change
        for step in range(spec['warmup'] + spec['steps']):
            for r, v, b in zip(res, spec['variants'], built):      # alternate the variants step by step
                if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
                sync(); t, c = time.perf_counter(), time.process_time(); fn(v, b); sync()
                if step >= spec['warmup']:
                    r[key].append(time.perf_counter() - t); r[key.replace('_s', '_cpu_s')].append(time.process_time() - c)
                if dev.type == 'cuda': r['peak_mem_mb'] = max(r['peak_mem_mb'], torch.cuda.max_memory_allocated() / 2 ** 20)
    fl = flops_per_image(cfg); f_img = fl['encoder'] + fl['decoder']
    med = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v) // 2 - 1:len(v) // 2 + 1]) / 2
    for r in res:
        t_tr, t_in = med(r['train_s']), med(r['infer_s'])
        r.update(train_img_s=B * K / t_tr, infer_img_s=B * K / t_in, gflop_per_img=f_img / 1e9,
                 train_img_s_range=[B * K / max(r['train_s']), B * K / min(r['train_s'])],
                 infer_img_s_range=[B * K / max(r['infer_s']), B * K / min(r['infer_s'])],
                 train_img_per_cpu_s=B * K / med(r['train_cpu_s']), infer_img_per_cpu_s=B * K / med(r['infer_cpu_s']),
                 train_gflop_s=3 * f_img * B * K / t_tr / 1e9, infer_gflop_s=f_img * B * K / t_in / 1e9,
                 device_name=torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu')
    base = res[0]                                    # the first variant is the reference: per-round ratios against it
    for r in res:
        for key in ('train', 'infer'):
            ratios = [b / t for b, t in zip(base[f'{key}_s'], r[f'{key}_s'])]
            r[f'{key}_speedup'] = med(ratios); r[f'{key}_speedup_range'] = [min(ratios), max(ratios)]
    return res

def mem_one(spec: dict) -> float:
    "Peak RSS (MB) of a fresh process doing one training and one inference step of one CPU variant."
    import torch
    torch.set_num_threads(spec['threads'])
    spec = dict(spec, warmup=0, steps=1)
    run_one(spec)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='1 warm-up and 2 timed steps per row')
    p.add_argument('--presets', default='paper,cpu-small'); p.add_argument('--users', default='2,4')
    p.add_argument('--devices', default='cpu,cuda', help='cuda rows are skipped when no GPU is present')
    p.add_argument('--impls', default='reference,kit', help='reference first: ratios are taken against the first')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--no_cpu_bf16', dest='cpu_bf16', action='store_false', help='skip the CPU bf16 autocast row')
    p.add_argument('--batch', type=int, default=32); p.add_argument('--steps', type=int, default=7, help='timed rounds')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--compile', action='store_true',
                   help='also time torch.compile of the kit (slow to compile; on CPU: fp32 and bf16, inference with inductor freezing)')
    p.add_argument('--json', default=None, help='also write all rows (raw) to this JSON file')
    p.add_argument('--results', default=None, help='write the results file (kit schema, command inside) here')
    p.add_argument('--profile', default=None, help='only profile the kit\'s training step (paper preset, K=2) and write the op table here')
    p.add_argument('--profile_bf16', action='store_true', help='profile the step under CPU bf16 autocast')
    p.add_argument('--one', default=None, help=argparse.SUPPRESS)
    p.add_argument('--mem', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one is not None: print('RESULT ' + json.dumps(run_one(json.loads(a.one)))); return
    if a.mem is not None: print('RESULT ' + json.dumps(mem_one(json.loads(a.mem)))); return
    if a.profile: return profile_kit(a.profile, a.threads, a.batch, bf16=a.profile_bf16)
    if a.quick: a.steps, a.warmup = 2, 1
    import torch
    devices = [d for d in a.devices.split(',') if d == 'cpu' or torch.cuda.is_available()]
    torch.set_num_threads(a.threads)
    peak = {d: _matmul_gflops(d) for d in devices}
    env = dict(os.environ,
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    def child(flag, spec):
        r = subprocess.run([sys.executable, __file__, flag, json.dumps(spec)], capture_output=True, text=True, env=env)
        line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')]
        if r.returncode or not line: print(f"failed: {spec}\n{r.stderr[-3000:]}", file=sys.stderr); return None
        return json.loads(line[0][7:])
    rows = []
    print(_header(), flush=True)
    for d in devices:
        variants = [dict(impl=i, bf16=False, compile=False) for i in a.impls.split(',')]
        if d == 'cuda':
            variants += [dict(impl='kit', bf16=True, compile=False)] + ([dict(impl='kit', bf16=True, compile=True)] if a.compile else [])
        else:   # CPU bf16 autocast (the kit's default where the CPU has native bf16; emulated and slow elsewhere)
            variants += [dict(impl='kit', bf16=True, compile=False)] if a.cpu_bf16 else []
            if a.compile:
                variants += [dict(impl='kit', bf16=b, compile=True) for b in ((False, True) if a.cpu_bf16 else (False,))]
        for preset in a.presets.split(','):
            for k in (int(u) for u in a.users.split(',')):
                spec = dict(device=d, preset=preset, users=k, batch=a.batch, steps=a.steps, warmup=a.warmup, threads=a.threads,
                            variants=variants)
                res = child('--one', spec) or []
                for r in res:
                    if d == 'cpu':
                        mem_spec = dict(spec, variants=[{kk: r[kk] for kk in ('impl', 'bf16', 'compile')}])
                        r['peak_mem_mb'] = child('--mem', mem_spec) or float('nan')
                    r['matmul_gflop_s'] = peak[d]; rows.append(r); print(_fmt(r), flush=True)
    print(f"\nmeasured fp32 matmul throughput (2048x2048, best of 10; {a.threads} threads on CPU): "
          + ', '.join(f"{d}: {v:.0f} GFLOP/s" for d, v in peak.items()))
    for r in rows:
        if r['impl'] != 'reference' or r['bf16'] or r['compile']:
            print(f"speed-up {_name(r):>20} over reference, {r['device']} {r['preset']:9} K={r['users']}: "
                  f"train {r['train_speedup']:.2f}x ({r['train_speedup_range'][0]:.2f}-{r['train_speedup_range'][1]:.2f}), "
                  f"infer {r['infer_speedup']:.2f}x ({r['infer_speedup_range'][0]:.2f}-{r['infer_speedup_range'][1]:.2f})")
    print("notes: img/s counts user images (B*K per step); median of the timed rounds (range: min-max), variants interleaved\n"
          "step by step in one process; speed-up = median over rounds of t_reference / t_variant (range: min-max).\n"
          "% matmul = training FLOP rate (3x forward FLOPs) / measured matmul throughput.")
    if a.json:
        with open(a.json, 'w') as f: json.dump(rows, f, indent=1)
    if a.results: write_results(rows, a, peak)


def dtype_census(step) -> str:
    "Which aten ops of one call of `step` compute in which dtype (first tensor output), as table lines: what stays fp32 under bf16."
    import collections
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    counts = collections.Counter()
    class Census(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            t = next((o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)), None)
            if t is not None: counts[(str(func.overloadpacket.__name__), str(t.dtype).replace('torch.', ''))] += 1
            return out
    with Census(): step()
    heavy = ('convolution', 'mm', 'addmm', 'bmm', 'linear', 'matmul', 'native_layer_norm', 'gelu', 'mul', 'add', 'sigmoid')
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ['# dtype census of one training step (aten op, dtype of its first output: calls); heavy ops first']
    lines += [f'#   {op:34} {dt:10} {n:6d}' for (op, dt), n in rows if any(op.startswith(h) for h in heavy)]
    lines += [f'#   {op:34} {dt:10} {n:6d}' for (op, dt), n in rows if not any(op.startswith(h) for h in heavy)][:40]
    return '\n'.join(lines) + '\n'


def profile_kit(path: str, threads: int, batch: int, preset: str = 'paper', users: int = 2, bf16: bool = False) -> None:
    "torch.profiler table (self CPU time) of two training steps of the kit's path, after two warm-up steps (bf16: autocast)."
    import torch
    from torch.profiler import profile, ProfilerActivity
    torch.set_num_threads(threads)
    spec = dict(device='cpu', preset=preset, users=users, batch=batch)
    model, opt, fwd, amp = _build(spec, dict(impl='kit', bf16=bf16, compile=False))
    from kdd_semnoma.core import make_generator
    from kdd_semnoma.channel import sample_snr_db
    g = make_generator(0); x = torch.rand(batch, users, 3, 32, 32, generator=g)
    def step():
        with amp(): out = fwd(x, sample_snr_db(batch, 0., 20., generator=g), generator=g)
        loss = (out.x_hat.float() - x).abs().mean(); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(2): step()
    census = dtype_census(step)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2): step()
    table = prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=30)
    from kdd_semnoma.core import cpu_info
    head = (f"# torch.profiler: 2 training steps of the kit's path, {preset} preset, K={users}, batch {batch} groups, "
            f"{threads} threads, {'bf16 autocast' if bf16 else 'fp32'}, torch {torch.__version__}\n# cpu: {cpu_info()}\n"
            "# command: python bench/train_speed.py " + ' '.join(sys.argv[1:]) + "\n")
    with open(path, 'w') as f: f.write(head + census + table + '\n')
    print(head + table); print(f"-> {path}")


def write_results(rows: list, a, peak: dict) -> None:
    "The rows as a results file in the kit's schema (one record per row and metric), with the command inside."
    from kdd_semnoma.results import save_results
    from kdd_semnoma.core import cpu_info
    keep = ('train_img_s', 'infer_img_s', 'train_speedup', 'infer_speedup', 'peak_mem_mb', 'train_gflop_s', 'infer_gflop_s')
    recs = [dict(row=f"{r['device']} {r['preset']} K={r['users']}", user=-1, metric=f"{m}[{_name(r)}]", value=r[m], n=len(r['train_s']),
                 **({'range': r[f'{m}_range']} if f'{m}_range' in r else {}))
            for r in rows for m in keep]
    save_results(a.results, name='train_speed', records=recs, x='row', seed=0,
                 description='SemNOMA training / inference speed: the kit against the reference formulation, side by side in one process',
                 config=dict(batch_groups=a.batch, rounds=a.steps, warmup=a.warmup, threads=a.threads, optimiser='AdamW lr 1e-4 wd 1e-4',
                             workload='random 32x32 images, SNR ~ U[0, 20] dB, AWGN NOMA, L1 loss', **cpu_info()),
                 data='random images (speed only)', command='python bench/train_speed.py ' + ' '.join(sys.argv[1:]),
                 matmul_gflop_s=peak, rows=rows,
                 conventions={'img_s': 'user images per second (B*K per step), median over rounds',
                              'speedup': 'median over rounds of t_reference / t_variant, rounds interleaved in one process',
                              'peak_mem_mb': 'CPU: peak RSS of a fresh process running one step of the variant alone'})
    print(f"-> {a.results}")


def _name(r): return r['impl'] + ('+bf16' if r['bf16'] else '') + ('+compile' if r['compile'] else '')
def _header():
    return (f"{'device':6} {'preset':9} {'K':>2} {'impl':22} {'train img/s':>11} {'infer img/s':>11} {'peak MB':>8} "
            f"{'train GFLOP/s':>13} {'% matmul':>8} {'train img/cpu-s':>15} {'infer img/cpu-s':>15}")
def _fmt(r):
    pct = 100 * r['train_gflop_s'] / r['matmul_gflop_s']
    return (f"{r['device']:6} {r['preset']:9} {r['users']:>2} {_name(r):22} {r['train_img_s']:11.1f} {r['infer_img_s']:11.1f} "
            f"{r['peak_mem_mb']:8.0f} {r['train_gflop_s']:13.1f} {pct:7.1f}% "
            f"{r['train_img_per_cpu_s']:15.1f} {r['infer_img_per_cpu_s']:15.1f}")

if __name__ == '__main__': main()
