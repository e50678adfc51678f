"Model contracts (issue 3): shapes, power, gradients, teacher→student init, determinism, errors, checkpoints."
import copy
import pytest
import torch
from kdd_semnoma.core import make_generator, to_real
from kdd_semnoma.channel import ChannelConfig
from kdd_semnoma.testing import tiny_images, tiny_snr
from kdd_semnoma.testing import test_power as check_power, test_grads as check_grads
from kdd_semnoma.deepjscc import get_config, _unit_layer_scale
from kdd_semnoma.semnoma import (MODELS, make_model, build_from_checkpoint, init_student_from_teacher, SemNOMA,
                                 OrthogonalTeacher, JSCCOutput)
from kdd_semnoma.kd import KDLoss, KDWeights

KINDS = list(MODELS)

def cfg_for(k, **kw):  # tiny config whose latent splits evenly among 2, 3 and 4 users (OMA)
    return get_config('tiny', n_users=k, c_lat=12, **kw)

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [2, 3, 4])
def test_shapes_power_grads(kind, k):
    cfg = cfg_for(k)
    m = make_model(kind, cfg, ChannelConfig(fading='rayleigh'))
    x = tiny_images(2, k)
    out = m(x, tiny_snr(2), generator=make_generator(0))
    assert isinstance(out, JSCCOutput)
    assert out.x_hat.shape == x.shape and 0 <= out.x_hat.min() and out.x_hat.max() <= 1
    assert out.z.shape[:2] == (2, k) and out.z.is_complex()
    check_power(out.z, m.channel.tx_power(k))                       # per-user power at the channel input
    assert out.feats.rx.shape[:2] == (2, k) and out.feats.rx.ndim == 5
    assert out.feats.side.shape[:2] == (2, k)
    assert all(f.ndim == 5 and f.shape[:2] == (2, k) for f in out.feats.dec) and len(out.feats.dec) >= 1
    (out.x_hat - x).abs().mean().backward()
    check_grads(m)

@pytest.mark.parametrize("kind", KINDS)
def test_same_generator_same_output(kind):
    m = make_model(kind, cfg_for(2), ChannelConfig(fading='rayleigh', csi_err_var=0.01)).eval()
    x, s = tiny_images(2, 2), tiny_snr(2)
    with torch.no_grad():
        a = m(x, s, generator=make_generator(4)).x_hat
        b = m(x, s, generator=make_generator(4)).x_hat
        c = m(x, s, generator=make_generator(5)).x_hat
    assert torch.equal(a, b) and not torch.equal(a, c)

@pytest.mark.parametrize("kind", ['semnoma', 'teacher', 'single', 'oma'])
def test_decode_from_continues_decoder(kind):
    "CrossKD contract: decode_from(feats.seq[j], out, j) reproduces x_hat for every element j of the decoder sequence."
    m = make_model(kind, cfg_for(2)).eval()
    with torch.no_grad():
        out = m(tiny_images(2, 2), tiny_snr(2), generator=make_generator(0))
        assert len(out.feats.seq) == 4 * len(out.feats.dec) + 1
        for j, f in enumerate(out.feats.seq):
            torch.testing.assert_close(m.decode_from(f, out, j), out.x_hat, atol=1e-5, rtol=0)

def test_teacher_student_init_and_kd_loss():
    cfg = get_config('tiny')
    teacher, student = OrthogonalTeacher(cfg), SemNOMA(cfg)
    init_student_from_teacher(student, teacher)
    tsd = teacher.decoders[0].state_dict()
    for dec in student.decoders:
        for k, v in dec.state_dict().items(): assert torch.equal(v, tsd[k])
    for k, v in student.encoder.state_dict().items(): assert torch.equal(v, teacher.encoder.state_dict()[k])
    # the KD loss of 07_kd consumes the outputs of both models, CrossKD through the teacher's decoder tail
    x, s = tiny_images(2, 2), tiny_snr(2)
    teacher.eval().requires_grad_(False)
    out_t = teacher(x, s, generator=make_generator(0))
    out_s = student(x, s, generator=make_generator(1))
    terms = KDLoss(KDWeights())(out_s, x, out_t, teacher=teacher)
    terms.loss.backward()
    check_grads(student)
    assert all(p.grad is None for p in teacher.parameters())

@pytest.mark.parametrize("bad", [dict(c_lat=8), dict(n_users=3), dict(dims=(8, 32)), dict(af='adjscc')])
def test_init_mismatch_errors(bad):
    with pytest.raises(ValueError, match='same JSCCConfig'):
        init_student_from_teacher(SemNOMA(get_config('tiny', **bad)), OrthogonalTeacher(get_config('tiny')))

def test_input_errors():
    m = SemNOMA(get_config('tiny'))
    x, s = tiny_images(2, 2), tiny_snr(2)
    with pytest.raises(ValueError, match='n_users=2'): m(tiny_images(2, 3), s)
    with pytest.raises(ValueError, match=r'\[0, 1\]'): m(x * 3, s)
    with pytest.raises(ValueError, match='B, K, 3, H, W'): m(x[:, 0], s)
    with pytest.raises(TypeError, match='uint8'): m((x * 255).to(torch.uint8), s)
    with pytest.raises(ValueError, match='matching preset'): m(tiny_images(2, 2, size=64), s)
    with pytest.raises(ValueError, match='not linear'): m(x, torch.tensor([5., 1000.]))
    with pytest.raises(ValueError, match='NaN'): m(x, torch.tensor([5., float('nan')]))
    with pytest.raises(ValueError, match='SingleUserJSCC'): SemNOMA(get_config('tiny', n_users=1))
    with pytest.raises(ValueError, match='one of'): make_model('transformer', get_config('tiny'))

def test_checkpoints(tmp_path):
    for kind in KINDS:
        m = make_model(kind, cfg_for(2), ChannelConfig(fading='rician')).eval()
        p = m.save(tmp_path / f'{kind}.pt', step=3)
        ck = torch.load(p, weights_only=True)
        assert {'model', 'config', 'channel', 'kind', 'version', 'step'} <= set(ck) and ck['step'] == 3
        m2 = build_from_checkpoint(p).eval()
        assert type(m2) is type(m) and m2.cfg == m.cfg and m2.channel.cfg == m.channel.cfg
        x, s = tiny_images(2, 2), tiny_snr(2)
        with torch.no_grad():
            assert torch.equal(m(x, s, generator=make_generator(0)).x_hat, m2(x, s, generator=make_generator(0)).x_hat)
    with pytest.raises(ValueError, match='n_users'):
        SemNOMA(cfg_for(3)).load_weights(tmp_path / 'semnoma.pt')
    with pytest.raises(ValueError, match='kind'):
        OrthogonalTeacher(cfg_for(2)).load_weights(tmp_path / 'semnoma.pt')
    with pytest.raises(ValueError, match='not a SemNOMA'):
        SemNOMA.from_checkpoint(tmp_path / 'teacher.pt')

def test_noma_receives_superposition():
    "With noise-free AWGN the received latent is exactly the sum of the users' symbols."
    m = SemNOMA(get_config('tiny')).eval()
    with torch.no_grad():
        out = m(tiny_images(2, 2), 60., generator=make_generator(0))
    rx = to_real(out.z.sum(1), m.cfg.latent_shape)
    torch.testing.assert_close(out.feats.rx[:, 0], rx, atol=5e-3, rtol=0)
    torch.testing.assert_close(out.feats.rx[:, 1], out.feats.rx[:, 0])

@pytest.mark.cuda
def test_cuda_matches_cpu():
    cfg = get_config('tiny')
    m = _unit_layer_scale(SemNOMA(cfg)).eval()
    g = copy.deepcopy(m).cuda()
    x, side = tiny_images(2, 2), torch.rand(2, 2, 3) * torch.tensor([20., 2., 3.])
    with torch.no_grad():
        z = m.encode(x, side)
        torch.testing.assert_close(g.encode(x.cuda(), side.cuda()).cpu(), z, atol=1e-4, rtol=1e-4)
        rx = m.receive(z.sum(1))
        torch.testing.assert_close(g.decode(rx.cuda(), side.cuda())[0].cpu(), m.decode(rx, side)[0], atol=1e-4, rtol=1e-4)
        a = g(x.cuda(), tiny_snr(2).cuda(), generator=make_generator(0, 'cuda')).x_hat
        b = g(x.cuda(), tiny_snr(2).cuda(), generator=make_generator(0, 'cuda')).x_hat
    assert torch.equal(a, b)
