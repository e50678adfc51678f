"Demo contracts: headless figures for every model kind, channel swapping without side effects, lazy ipywidgets."
import subprocess, sys
import pytest
import torch
from kdd_semnoma.channel import ChannelConfig
from kdd_semnoma.deepjscc import get_config
from kdd_semnoma.semnoma import MODELS, make_model
from kdd_semnoma.testing import tiny_images
from kdd_semnoma.demo import DemoModel, demo_figure, run_demo, demo_channel, load_demo_models
from kdd_semnoma.semnoma import with_channel


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("fading", ["none", "rayleigh"])
def test_figure_for_every_kind(kind, fading, tmp_path):
    model = make_model(kind, get_config('tiny', n_users=2))
    models = {kind: DemoModel(model, 'untrained (test)')}
    fig = demo_figure(models, tiny_images(2, 2), model_name=kind, snr_db=5., fading=fading, csi_err_var=0.1, seed=0)
    assert len(fig.axes) == 2 * 3
    assert all('PSNR' in ax.get_title() for ax in fig.axes[-2:])
    assert 'untrained (test)' in fig._suptitle.get_text()
    fig.savefig(tmp_path / 'demo.png')                                   # renders headless (no pyplot needed)
    assert (tmp_path / 'demo.png').stat().st_size > 0


def test_with_channel_leaves_the_model_alone():
    model = make_model('semnoma', get_config('tiny')).train()
    copy = with_channel(model, demo_channel(model, fading='rician', csi_err_var=0.2))
    assert model.channel.cfg == ChannelConfig() and copy.channel.cfg.fading == 'rician'
    assert copy.encoder is model.encoder
    run_demo({'m': model}, tiny_images(1, 2), model_name='m', fading='rayleigh')
    assert model.training and all(m.training for m in model.modules())  # train/eval flags restored
    assert model.channel.cfg == ChannelConfig()


def test_same_seed_same_psnr_and_bad_inputs():
    models = {'m': make_model('semnoma', get_config('tiny', n_users=3))}
    x = tiny_images(2, 3)
    a = run_demo(models, x, model_name='m', fading='rayleigh', seed=7).psnr
    assert torch.equal(a, run_demo(models, x, model_name='m', fading='rayleigh', seed=7).psnr)
    assert not torch.equal(a, run_demo(models, x, model_name='m', fading='rayleigh', seed=8).psnr)
    with pytest.raises(ValueError, match="is not one of"): run_demo(models, x, model_name='nope')
    with pytest.raises(ValueError, match="n_users=3"): run_demo(models, x[:, :2], model_name='m')
    with pytest.raises(ValueError, match="no .cfg.n_users"): run_demo({'l': torch.nn.Linear(2, 2)}, x, model_name='l')


def test_checkpoint_round_trip(tmp_path):
    model = make_model('oma', get_config('tiny', n_users=2), ChannelConfig(fading='rayleigh'))
    loaded = load_demo_models([model.save(tmp_path / 'oma.pt')])
    assert list(loaded) == ['OMA-JSCC · K=2'] and 'checkpoint' in loaded['OMA-JSCC · K=2'].source
    x = tiny_images(2, 2)
    assert torch.equal(run_demo(loaded, x, model_name='OMA-JSCC · K=2', seed=1).psnr,
                       run_demo({'m': model}, x, model_name='m', seed=1).psnr)


def test_import_does_not_load_ipywidgets():
    code = "import sys, kdd_semnoma.demo; assert 'ipywidgets' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and 'ok' in r.stdout, r.stderr[-2000:]
