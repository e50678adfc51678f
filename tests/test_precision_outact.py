"Precision (issue 24) and the decoders' output activation (issue 28): the choice on any CPU, the CLI, checkpoints."
import os, subprocess, sys
import pytest
import torch
from kdd_semnoma import core
from kdd_semnoma.core import resolve_precision, make_generator
from kdd_semnoma.channel import ChannelConfig
from kdd_semnoma.deepjscc import get_config
from kdd_semnoma.semnoma import make_model, decode, read_checkpoint, build_from_checkpoint
from kdd_semnoma.train import train_config, train_stage, load_teacher, TrainConfig, train_step, make_optimizer
from kdd_semnoma.kd import KDLoss

CLI = "import sys; from kdd_semnoma.train import kdd_train; sys.exit(kdd_train())"
KINDS = ('semnoma', 'teacher', 'deepjscc-noma', 'oma', 'single', 'sic')


def _cli(args, tmp_path, timeout=300):
    script = tmp_path / "kdd_train_cli.py"; script.write_text(CLI)
    env = dict(os.environ, KDD_SEMNOMA_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("flags, want", [({'amx_bf16', 'avx512f'}, 'bf16'), ({'avx512_bf16'}, 'bf16'),
                                         ({'avx512f', 'avx512bw', 'avx2'}, 'fp32'), (set(), 'fp32')])
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, want):
    monkeypatch.setattr(core, 'cpu_flags', lambda: flags)
    assert resolve_precision('auto', 'cpu') == want
    assert resolve_precision('fp32', 'cpu') == 'fp32' and resolve_precision('bf16', 'cpu') == 'bf16'


def test_bad_precision_names_the_flag():
    with pytest.raises(ValueError, match='--precision'): resolve_precision('fp16', 'cpu')
    with pytest.raises(ValueError, match='--precision'): train_config('teacher', 'tiny', precision='half')


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_keeps_channel_and_loss_in_fp32_and_matches_fp32(kind):
    "Under bf16 the symbols are complex64 and the loss fp32; decoded images agree with fp32 to bf16 rounding."
    torch.manual_seed(0)
    m = make_model(kind, get_config('tiny'), ChannelConfig(fading='rayleigh')).eval()
    x = torch.rand(4, 2, 3, 32, 32)
    a = decode(m, x, 10., generator=make_generator(0), precision='fp32', full=True)
    b = decode(m, x, 10., generator=make_generator(0), precision='bf16', full=True)
    assert b.z.dtype == torch.complex64 and b.x_hat.dtype == torch.float32
    assert (a.x_hat - b.x_hat).abs().max() < 0.05
    cfg = train_config('teacher' if kind == 'teacher' else 'baseline' if kind not in ('semnoma',) else 'semnoma', 'tiny',
                       precision='bf16', **({'baseline': kind} if kind not in ('semnoma', 'teacher') else {}))
    model = make_model(kind, get_config('tiny'), ChannelConfig())
    terms = train_step(model.train(), x, make_optimizer(model, cfg), KDLoss(cfg.loss_weights), cfg, step=0)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())          # master weights stay fp32


def test_cli_precision_is_recorded_and_trains_in_bf16(tmp_path):
    out = tmp_path / "run"
    r = _cli(["teacher", "--preset", "tiny", "--data", "tiles", "--max_steps", "2", "--precision", "bf16", "--out_dir", str(out),
              "--device", "cpu", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(out / "last.pt")["train_config"]["precision"] == "bf16"
    r = _cli(["teacher", "--preset", "tiny", "--data", "tiles", "--max_steps", "2", "--precision", "fp16", "--out_dir",
              str(tmp_path / "bad"), "--quiet"], tmp_path)
    assert r.returncode != 0 and "--precision" in r.stderr and "Traceback" not in r.stderr


def test_old_train_configs_map_amp_to_precision():
    assert TrainConfig.from_dict({'amp': False}).precision == 'fp32'
    assert TrainConfig.from_dict({'amp': True}).precision == 'auto'


@pytest.mark.parametrize("kind", KINDS)
def test_out_act_none_is_the_raw_conv_for_every_model_kind(kind):
    torch.manual_seed(0)
    m_sig = make_model(kind, get_config('tiny'), ChannelConfig()).eval()
    m_raw = make_model(kind, get_config('tiny', out_act='none'), ChannelConfig()).eval()
    m_raw.load_state_dict(m_sig.state_dict())                          # same weights, different last step
    x, snr = torch.rand(2, 2, 3, 32, 32), torch.full((2,), 10.)
    with torch.no_grad():
        a = m_sig(x, snr, generator=make_generator(0)).x_hat
        b = m_raw(x, snr, generator=make_generator(0)).x_hat
    if kind != 'sic': torch.testing.assert_close(a, torch.sigmoid(b))   # SIC re-encodes its decodings: not a pure map
    assert b.min() < 0                                                 # raw outputs leave [0, 1] at initialisation
    d = decode(m_raw, x, 10., generator=make_generator(0))             # the metrics see clamped images
    assert d.min() >= 0 and d.max() <= 1


def test_bad_out_act_is_refused():
    with pytest.raises(ValueError, match='out_act'): get_config('tiny', out_act='tanh')
    with pytest.raises(ValueError, match='--out_act'): train_config('teacher', 'tiny', out_act='relu')


def test_checkpoints_record_out_act_and_old_ones_load_as_sigmoid(tmp_path):
    cfg = train_config('teacher', 'tiny', max_steps=1, out_act='none', precision='fp32')
    res = train_stage(cfg, data='tiles', out_dir=tmp_path / 't', device='cpu', show_progress=False)
    ck = read_checkpoint(tmp_path / 't' / 'best.pt')
    assert ck['config']['out_act'] == 'none' and build_from_checkpoint(ck).cfg.out_act == 'none'
    old = dict(ck, config={k: v for k, v in ck['config'].items() if k != 'out_act'})   # written before the option
    assert build_from_checkpoint(old).cfg.out_act == 'sigmoid'
    with pytest.raises(ValueError, match='--out_act'):                 # a sigmoid student cannot start from a raw teacher
        load_teacher(tmp_path / 't' / 'best.pt', train_config('student', 'tiny'))
    assert res.model.cfg.out_act == 'none'


def test_cli_out_act_none_trains_teacher_and_student(tmp_path):
    t = tmp_path / "t"
    r = _cli(["teacher", "--preset", "tiny", "--data", "tiles", "--max_steps", "1", "--out_act", "none", "--out_dir", str(t),
              "--device", "cpu", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli(["student", "--preset", "tiny", "--data", "tiles", "--max_steps", "1", "--out_act", "none", "--teacher",
              str(t / "best.pt"), "--out_dir", str(tmp_path / "s"), "--device", "cpu", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(tmp_path / "s" / "last.pt")["config"]["out_act"] == "none"
    ev = tmp_path / "ev.py"; ev.write_text("import sys; from kdd_semnoma.evaluate import kdd_eval; sys.exit(kdd_eval())")
    r = subprocess.run([sys.executable, str(ev), "--checkpoint", str(tmp_path / "s" / "last.pt"), "--data", "tiles", "--snrs", "0,20",
                        "--max_groups", "4", "--precision", "bf16", "--classifier", "none", "--out", str(tmp_path / "ev.json")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, KDD_SEMNOMA_HOME=str(tmp_path / "home")))
    assert r.returncode == 0, r.stderr
    import json
    doc = json.loads((tmp_path / "ev.json").read_text())
    assert doc["config"]["precision"] == "bf16" and 0 < doc["results"]["psnr"][0] < 60
