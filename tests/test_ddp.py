"""Data-parallel training with torch.distributed (gloo on CPU, launched by torchrun): two ranks with half the global
batch each end at the weights of one process with the whole batch (fp32 tolerance), and a crashed rank leaves the
last checkpoint intact and resumable. The comparison runs without dropout and channel noise, the only draws that
differ by design between ranks (each rank draws its own, `step_generator(..., rank=r)`)."""
import os, subprocess, sys
import pytest
import torch

SCRIPT = '''
import os, sys
from dataclasses import replace
import kdd_semnoma.deepjscc as dj
dj.PRESETS['tiny'] = replace(dj.PRESETS['tiny'], af_dropout=0.)       # no dropout and (below) a noiseless channel:
import torch, kdd_semnoma.channel as C                                # the one-process run and the ranks then see
C.complex_noise = (lambda shape, var, *, generator=None, device=None:  # equal inputs
                   torch.zeros(shape, dtype=torch.complex64, device=device))
import kdd_semnoma.train as T
crash = int(os.environ.get('CRASH_AT_STEP', '0'))
if crash:                                                              # rank 1 dies before optimiser step `crash`
    step_fn = T.train_step
    def train_step(*a, **k):
        if k.get('rank') == 1 and k['step'] == crash: os._exit(3)
        return step_fn(*a, **k)
    T.train_step = train_step
dev = T.init_distributed('cpu')
cfg = T.train_config('teacher', 'tiny', max_steps=int(sys.argv[2]), batch_size=8, snr_low=60., snr_high=60.,
                     val_every=2, val_groups=8, lr=1e-3,
                     precision='fp32')   # the comparison with one process is exact maths: no bf16 autocast
T.train_stage(cfg, data='tiles', out_dir=sys.argv[1], device=dev, show_progress=False, resume=sys.argv[3:] == ['resume'])
'''


def test_ranks_draw_independent_channels():
    from kdd_semnoma.train import step_generator
    draw = lambda r: torch.randn(4, generator=step_generator(0, 5, torch.device('cpu'), rank=r))
    assert torch.equal(draw(0), torch.randn(4, generator=step_generator(0, 5, torch.device('cpu'))))   # rank 0 = one process
    assert not torch.equal(draw(0), draw(1))


def _run(tmp_path, out, steps, *, ranks=1, resume=False, crash=0):
    script = tmp_path / 'ddp_train.py'
    script.write_text(SCRIPT)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'KDD_SEMNOMA_HOME': str(tmp_path / 'home'), 'CRASH_AT_STEP': str(crash)}
    pre = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={ranks}'] if ranks > 1 else [sys.executable]
    return subprocess.run(pre + [str(script), str(tmp_path / out), str(steps)] + (['resume'] if resume else []),
                          capture_output=True, text=True, env=env, timeout=600)


def _weights(tmp_path, out):
    return torch.load(tmp_path / out / 'last.pt', weights_only=True, map_location='cpu')


def test_two_gloo_ranks_match_one_process_and_survive_a_crash(tmp_path):
    one, two = _run(tmp_path, 'one', 4), _run(tmp_path, 'two', 4, ranks=2)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _weights(tmp_path, 'one'), _weights(tmp_path, 'two')
    assert a['step'] == b['step'] == 4
    for k in a['model']:
        torch.testing.assert_close(a['model'][k], b['model'][k], atol=2e-5, rtol=1e-4, msg=k)
    assert a['history'][-1]['val_psnr'] == pytest.approx(b['history'][-1]['val_psnr'], abs=1e-3)   # seeded, identical evaluation

    crashed = _run(tmp_path, 'crash', 4, ranks=2, crash=3)                 # rank 1 dies in step 3: last.pt is step 2's
    assert crashed.returncode != 0
    ck = _weights(tmp_path, 'crash')
    assert ck['step'] == 2 and not list((tmp_path / 'crash').glob('.*tmp*'))
    resumed = _run(tmp_path, 'crash', 4, ranks=2, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    c = _weights(tmp_path, 'crash')
    assert c['step'] == 4
    for k in b['model']:
        torch.testing.assert_close(c['model'][k], b['model'][k], atol=2e-5, rtol=1e-4, msg=k)
