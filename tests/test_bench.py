"Smoke test of bench/train_speed.py (timings themselves are never asserted: speed lives in the benchmark)."
import importlib.util, json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench_module(name: str):
    "bench/<name>.py imported as a module (the bench scripts are not a package)."
    spec = importlib.util.spec_from_file_location(name, ROOT / 'bench' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_train_speed_quick_runs(tmp_path):
    out = tmp_path / 'rows.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_speed.py'), '--quick', '--presets', 'tiny', '--users', '2',
                        '--devices', 'cpu', '--batch', '4', '--json', str(out), '--results', str(tmp_path / 'res.json')],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'speed-up' in r.stdout and 'matmul throughput' in r.stdout
    import json
    rows = json.loads(out.read_text())
    assert {row['impl'] for row in rows} == {'reference', 'kit'}
    assert sorted((row['impl'], row['bf16']) for row in rows) == [('kit', False), ('kit', True), ('reference', False)]  # CPU bf16 row
    cfg = json.loads((tmp_path / 'res.json').read_text())['config']          # every speed file names its CPU and bf16 flags
    assert cfg['cpu_model'] and 'native_bf16' in cfg and isinstance(cfg['bf16_flags'], list)
    assert all(row['train_img_s'] > 0 and row['infer_img_s'] > 0 and row['peak_mem_mb'] > 0 for row in rows)

def test_help():
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_speed.py'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--quick' in r.stdout


def test_refiners_semnoma_smoke(tmp_path):
    "bench/refiners_semnoma.py end to end at toy size: a tiny checkpoint on tiles, an untrained prior."
    import json
    from kdd_semnoma.diffusion import make_unet, make_scheduler, save_prior, PRIOR_PRESETS
    from kdd_semnoma.train import train_config, train_stage
    save_prior(make_unet(PRIOR_PRESETS['tiny'], seed=0), make_scheduler('ddim'), tmp_path / 'prior')
    train_stage(train_config('teacher', 'tiny', max_steps=1), data='tiles', out_dir=tmp_path / 't', show_progress=False, device='cpu')
    out = tmp_path / 'ref.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'refiners_semnoma.py'), '--checkpoint', str(tmp_path / 't' / 'best.pt'),
                        '--prior', str(tmp_path / 'prior'), '--data', 'tiles', '--n_train_groups', '8', '--cgan_steps', '1',
                        '--n_test_groups', '3', '--t0s', '10', '--steps', '2', '--device', 'cpu', '--out', str(out), '--snrs', '5'],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={**__import__('os').environ, 'KDD_SEMNOMA_HOME': str(tmp_path / 'home')})
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res['results']['method'] == ['before', 'cgan', 'diffusion t0=10'] and res['results']['snr_db'] == [5.0] * 3
    assert all(v is not None for v in res['results']['psnr']) and res['config']['snrs_db'] == [5.0]
    assert res['config']['torch_threads'] >= 1                          # the CGAN's training depends on it: recorded
    assert 'sem_acc' not in res['results']                             # tiles carry no labels: agreement and distances only
    assert all(v is not None for v in res['results']['sem_agree'] + res['results']['fid_cifarnet'] + res['results']['kid_cifarnet'])


def test_train_prior_restate(tmp_path):
    "bench/train_prior.py --restate: a report of the old ad-hoc layout becomes a results file, every number unchanged."
    import json
    from kdd_semnoma.results import RESULT_KEYS, load_results
    cfg = dict(sample_size=32, block_out_channels=[32, 64], layers_per_block=1, attn_levels=[], norm_num_groups=8, dropout=0.0,
               num_train_timesteps=1000, beta_schedule='linear', lr=0.0002, warmup=100, batch_size=16, steps=300, ema_decay=0.999,
               grad_clip=1.0, flip=True)
    old = dict(name='prior-x', description='d', config=cfg, seed=0, data='cifar10-npz', device='cpu', params_M=0.65, steps_done=300,
               train_s=12.5, loss_curve=[[6, 0.9], [12, 0.5], [300, 0.04], [300, 0.04]],
               heldout={'eps_mse_t10': 0.33, 'eps_mse_t800': 0.0026},
               sample_s=3.5, fid=None, fid_note='not computed: no weights')
    path = tmp_path / 'old.json'; path.write_text(json.dumps(old))
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_prior.py'), '--restate', str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    new = load_results(path)
    assert all(k in new for k in RESULT_KEYS)
    assert new['command'].startswith('python bench/train_prior.py --data cifar10-npz --size tiny --steps 300 --batch_size 16 ')
    assert new['command'].endswith(f'; python bench/train_prior.py --restate {path}')
    assert [(r['step'], r['value'], r['n']) for r in new['records'] if r['metric'] == 'loss'] == [(6, 0.9, 6), (12, 0.5, 6), (300, 0.04, 6)]
    assert {r['metric']: r['value'] for r in new['records'] if r['metric'] != 'loss'} == {**old['heldout'], 'fid': None}
    assert next(r['note'] for r in new['records'] if r['metric'] == 'fid') == old['fid_note']
    assert all(new[k] == old[k] for k in ('name', 'description', 'config', 'seed', 'data', 'device', 'params_M', 'steps_done',
                                          'train_s', 'sample_s'))
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_prior.py'), '--restate', str(path)], capture_output=True, text=True)
    assert r.returncode != 0 and 'already in the results schema' in r.stderr


def test_train_prior_heldout_only_compares_schedules(tmp_path):
    "--heldout_only: the zoo's tiny (linear) prior scored per t and per noise level sigma, at its own schedule's step for sigma."
    out = tmp_path / 'h.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_prior.py'), '--heldout_only', '--data', 'tiles',
                        '--out_dir', str(ROOT / 'zoo' / 'prior-cifar10-tiny'), '--results', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    from kdd_semnoma.diffusion import load_prior, t_for_sigma
    recs = json.loads(out.read_text())['records']
    sch = load_prior(ROOT / 'zoo' / 'prior-cifar10-tiny').scheduler
    by_sigma = {r['metric']: r for r in recs if r['metric'].startswith('eps_mse_sigma')}
    assert len(by_sigma) == 6 and all(r['t'] == t_for_sigma(sch, float(k[len('eps_mse_sigma'):])) for k, r in by_sigma.items())
    vals = [by_sigma[k]['value'] for k in sorted(by_sigma, key=lambda k: float(k[len('eps_mse_sigma'):]))]
    assert vals == sorted(vals, reverse=True)            # noise is easier to predict when there is more of it


def test_cifarnet_distances_floor(tmp_path):
    "Samples drawn from the test split itself score near the test floor; KID carries its SE; too few images is one clear error."
    import torch
    tp = bench_module('train_prior')
    g = torch.Generator().manual_seed(0)
    x_test = torch.randint(0, 256, (80, 3, 32, 32), dtype=torch.uint8, generator=g)
    x_train = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    fake = torch.rand(40, 3, 32, 32, generator=g)
    d = tp.cifarnet_distances(fake, x_test, x_train)
    assert set(d) == {f'{m}{s}' for m in ('fid_cifarnet', 'kid_cifarnet') for s in ('', '_floor_test', '_train_vs_test')}
    assert d['kid_cifarnet'][1] is not None and d['fid_cifarnet'][1] is None
    with pytest.raises(ValueError, match='--n_samples'): tp.cifarnet_distances(fake, x_test[:60], x_train)


def test_cifarnet_distances_draw_across_classes():
    "The exports are sorted by class: the reference, floor and training sets are seeded random draws, not the heads of the arrays."
    import torch
    tp = bench_module('train_prior')
    g = torch.Generator().manual_seed(0)
    def red(m):       # class A: flat reddish images, a little noise
        return (torch.tensor([200., 30., 30.]).view(1, 3, 1, 1) + 10 * torch.randn(m, 3, 32, 32, generator=g)).clamp(0, 255).byte()
    def stripes(m):   # class B: black-and-white vertical stripes, random phase
        col = torch.arange(32).view(1, 1, 1, 32) + torch.randint(0, 8, (m, 1, 1, 1), generator=g)
        return ((col // 4) % 2 * 255).expand(m, 3, 32, 32).byte().contiguous()
    x_test, x_train = torch.cat([red(40), stripes(40)]), torch.cat([red(20), stripes(20)])   # sorted by class, as on disk
    one_class = red(40).float() / 255                                                         # samples of class A only
    d = tp.cifarnet_distances(one_class, x_test, x_train)
    assert d['fid_cifarnet_floor_test'][0] < d['fid_cifarnet'][0]          # a mixed reference: other test images beat one class
    assert d['fid_cifarnet_train_vs_test'][0] < d['fid_cifarnet'][0]
    assert d == tp.cifarnet_distances(one_class, x_test, x_train)           # seeded: the same draws every time
    ref, other, tr = tp.reference_draws(80, 40, 40)                         # what the Inception FID's reference uses too
    assert len(set(ref.tolist()) | set(other.tolist())) == 80 and 0 < int((ref < 40).sum()) < 40 and len(set(tr.tolist())) == 40


def test_time_to_quality_runs_arms_interleaved(tmp_path):
    "bench/time_to_quality.py at toy size on tiles: every arm trains, validates, and is stopped by the target or max_steps."
    out = tmp_path / 'ttq.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'time_to_quality.py'), '--data', 'tiles', '--target', '99',
                        '--max_steps', '6', '--val_every', '3', '--chunk', '2', '--val_groups', '4', '--arms', 'today,bf16',
                        '--out', str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    curves = res['results']['curves']
    assert sorted(curves) == ['bf16', 'today'] and all([c['step'] for c in v] == [3, 6] for v in curves.values())
    assert all(c['train_s'] > 0 for v in curves.values() for c in v)            # the arms' own clocks ran
    assert res['results']['arms']['today']['minutes_to_target'] is None            # 99 dB is never reached
    assert res['config']['cpu_model'] and 'native_bf16' in res['config'] and res['command'].startswith('python bench/')
    # the baton interleaves: the log shows arm 1 validating step 3 before arm 0 validates step 6
    lines = [ln for ln in r.stdout.splitlines() if 'val' in ln]
    assert [ln.split(']')[0] for ln in lines] == ['[today', '[bf16', '[today', '[bf16'], r.stdout


def test_time_to_quality_needs_today_arm(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'time_to_quality.py'), '--data', 'tiles', '--arms', 'bf16'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == ["time_to_quality: error: --arms must include 'today' (the baseline)"]


def _fake_prior_run(folder, arm, seed, values, steps=800, done=800, t_max=None):
    doc = dict(config=dict(steps=steps, t_max=t_max), steps_done=done, precision='bf16', train_s=1.0, command='x',
               results={'step': [16, done], **{k: [None, v] for k, v in values.items()}},
               records=[dict(step=done, user=-1, metric=k, value=v, n=512) for k, v in values.items()])
    (folder / f'prior-small-{arm}-s{seed}.json').write_text(json.dumps(doc))


def test_prior_arms_report_pairs_seeds(tmp_path):
    "bench/prior_arms_report.py: differences paired by seed, a t-interval over seeds, unfinished runs left out."
    for s, (f, t) in enumerate([(0.30, 0.25), (0.32, 0.29)]):
        _fake_prior_run(tmp_path, 'full', s, {'eps_mse_sigma0.075': f})
        _fake_prior_run(tmp_path, 'tmax400', s, {'eps_mse_sigma0.075': t}, t_max=400)
    _fake_prior_run(tmp_path, 'tmax400', 2, {'eps_mse_sigma0.075': 9.}, done=400)       # unfinished: not paired
    out = tmp_path / 'arms.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'prior_arms_report.py'), '--runs_dir', str(tmp_path), '--out', str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    c = json.loads(out.read_text())['results']['tmax400 - full']['eps_mse_sigma0.075']
    assert c['seeds'] == [0, 1] and abs(c['diff'] - (-0.04)) < 1e-9 and c['per_seed_diff'] == pytest.approx([-0.05, -0.03])
    lo, hi = c['ci95_t']
    assert lo < -0.05 and -0.03 < hi          # t with 1 degree of freedom: 12.7 standard errors wide each side
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'prior_arms_report.py'), '--runs_dir', str(tmp_path / 'none')],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and '--runs_dir' in r.stderr


def _fake_refine_report(folder, arm, seed, rel_kid, diff_psnr):
    stats = [{'decoded': {'psnr': {'value': 20.}}, 'reference': {'rel_kid_cn': {'value': k}, 'diff_psnr': {'value': d}}}
             for k, d in zip(rel_kid, diff_psnr)]
    doc = dict(config=dict(seeds=[0, 1, 2]), results={'awgn': dict(snr_db=[0., 5.], stats=stats)})
    (folder / f'refine_study_prior-small-{arm}-s{seed}.json').write_text(json.dumps(doc))


def test_prior_arms_report_compares_refinement(tmp_path):
    "--refine_dir: the refinement changes of the small priors' refine_study reports, paired by prior seed, with a summary."
    for s in (0, 1):
        _fake_prior_run(tmp_path, 'full', s, {'eps_mse_sigma0.075': 0.3})
        _fake_prior_run(tmp_path, 'tmax400', s, {'eps_mse_sigma0.075': 0.25}, t_max=400)
    rd = tmp_path / 'refine'; rd.mkdir()
    _fake_refine_report(rd, 'full', 0, [-0.10, -0.20], [-0.3, -0.2]); _fake_refine_report(rd, 'full', 1, [-0.12, -0.18], [-0.3, -0.2])
    _fake_refine_report(rd, 'tmax400', 0, [-0.15, -0.25], [-0.2, -0.1]); _fake_refine_report(rd, 'tmax400', 1, [-0.13, -0.27], [-0.2, -0.1])
    out = tmp_path / 'arms.json'
    cmd = [sys.executable, str(ROOT / 'bench' / 'prior_arms_report.py'), '--runs_dir', str(tmp_path), '--out', str(out)]
    r = subprocess.run(cmd + ['--refine_dir', str(rd)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out.read_text())
    c = doc['results']['refinement: tmax400 - full']
    assert c['awgn 0 dB reference rel_kid_cn']['diff'] == pytest.approx(-0.03)
    assert c['awgn 5 dB reference rel_kid_cn']['per_seed_diff'] == pytest.approx([-0.05, -0.09])
    assert c['awgn 5 dB reference diff_psnr']['diff'] == pytest.approx(0.1) and c['awgn 5 dB reference diff_psnr']['rel'] is None
    assert doc['results']['refinement: fp32 - full'] == {} and len(doc['summary']) == 2 and 'awgn 0 dB reference' in doc['summary'][0]
    r = subprocess.run(cmd + ['--refine_dir', str(tmp_path / 'none')], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and 'refine_study' in r.stderr


def test_deepjscc_gap_both_conventions(real_data, tmp_path):
    "bench/deepjscc_gap.py on 8 pairs: both PSNR conventions, gaps = PSNR - published, per-image PSNR >= PSNR of the mean MSE."
    dg = bench_module('deepjscc_gap')
    doc = dg.main(['--max_groups', '8', '--out', str(tmp_path / 'gap.json')])
    r = json.loads((tmp_path / 'gap.json').read_text())['results']
    assert r == json.loads(json.dumps(doc['results'])) and '--max_groups 8' in doc['command'] and doc['data'].startswith('CIFAR-10, 8 ')
    assert {'gap_kd_semnoma_long', 'gap_mse_oma', 'psnr_semnoma'} <= set(r)    # one key per system
    for key in ('kd_semnoma', 'teacher'):
        assert [round(p - q, 9) for p, q in zip(r[f'psnr_mse_{key}'], dg.PUBLISHED_1_12)] == [round(g, 9) for g in r[f'gap_mse_{key}']]
        assert all(p >= m - 1e-9 for p, m in zip(r[f'psnr_{key}'], r[f'psnr_mse_{key}']))      # Jensen: mean of logs >= log of mean


def test_train_prior_reports_its_training_time(tmp_path):
    "bench/train_prior.py at toy size writes a report in the results schema with wall and active training time (no pauses here)."
    out = tmp_path / 'r.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_prior.py'), '--data', 'tiles', '--size', 'tiny', '--steps', '4',
                        '--batch_size', '4', '--n_samples', '4', '--sample_steps', '2', '--precision', 'bf16',
                        '--out_dir', str(tmp_path / 'p'), '--results', str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc['sample_precision'] == 'bf16' and (tmp_path / 'p' / 'samples.png').is_file()   # samples in the training's arithmetic
    assert doc['steps_done'] == 4 and doc['n_pauses'] == 0 and doc['train_paused_s'] == 0
    assert doc['train_active_s'] == pytest.approx(doc['train_wall_s_total'], abs=0.1) and doc['train_active_s'] > 0
    mz = bench_module('make_zoo')
    assert mz.train_time_words(doc).startswith('wall time: ')
    assert mz.train_time_words(dict(train_wall_s_total=10800., train_active_s=7200., train_paused_s=3600., n_pauses=1)) == (
        'training time: 2.0 h (3.0 h of wall time in training, less 1.0 h in 1 pause(s) while the process was stopped)')
