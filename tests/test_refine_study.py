"bench/refine_study.py (issue 23): the quick path end to end, the residual-matched start, and one-line errors."
import importlib.util, json
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('refine_study', ROOT / 'bench' / 'refine_study.py')
rs = importlib.util.module_from_spec(spec); spec.loader.exec_module(rs)
SCHEMA = ('name', 'description', 'config', 'seed', 'data', 'conventions', 'results', 'records', 'command', 'claim', 'summary', 'at_claim',
          'strongest')


def test_quick_run_writes_skips_and_reports(real_data, tmp_path):
    "run --quick: one npz per (arm, seed), a second run skips them all, and the report has the schema, intervals and claim."
    doc = rs.main(['run', '--quick', '--snrs', '5,0', '--channels', 'awgn', '--out_dir', str(tmp_path)])   # 2 SNRs, sorted
    npz_dir = tmp_path / 'refine_study' / 'prior-cifar10-tiny' / 'awgn'
    files = {p.name: p.stat().st_mtime_ns for p in npz_dir.glob('*.npz')}
    assert set(files) == {f'{a}-s0.npz' for a in rs.ARMS}
    assert (tmp_path / 'refine_study' / 'cgan' / 'awgn-10steps-16groups.pt').exists()   # the CGAN cache, shared by priors
    z = np.load(npz_dir / 'matched-s0.npz')
    from kdd_semnoma.core import resolve_precision
    assert json.loads(str(z['meta']))['precision'] == resolve_precision('auto', 'cpu')   # --precision auto, recorded
    assert z['psnr'].shape == (2, 4, 2) and z['kid_cn'].shape == (2, 2) and z['sem_acc'].dtype == bool
    assert z['snr_db'].tolist() == [0., 5.]
    rms = json.loads((npz_dir / 'residual.json').read_text())
    assert all(k in rms for k in SCHEMA[:9]); rms = rms['results']                      # a results file in the kit's schema
    assert rms['excluded_overlap'] == 932 and z['t0'][0] == rs.matched_start(rs.load_prior_cached(rs.DEFAULT_PRIOR, 'cpu').scheduler,
                                                                              rms['rms']['0'])
    rs.main(['run', '--quick', '--snrs', '0,5', '--channels', 'awgn', '--out_dir', str(tmp_path)])   # everything exists: skipped
    assert {p.name: p.stat().st_mtime_ns for p in npz_dir.glob('*.npz')} == files
    saved = json.loads((tmp_path / 'refine_study_prior-cifar10-tiny.json').read_text())
    assert all(k in saved for k in SCHEMA) and (tmp_path / 'refine_study_prior-cifar10-tiny.png').stat().st_size > 0
    assert saved['name'] == 'refine_study_prior-cifar10-tiny' and 'run --quick --snrs 0,5' in saved['command']
    assert saved['config']['budget']['n_groups'] == 4
    rec = next(r for r in saved['records'] if r['arm'] == 'reference' and r['metric'] == 'diff_psnr')
    assert len(rec['ci95_boot']) == 2 and rec['t0'] > 0 and rec['calls'] == 10 and rec['eta'] == 0.5
    assert abs(rec['sigma'] - 0.075) < 0.01 and 0.99 < rec['alpha_bar'] < 1
    assert {r['metric'] for r in saved['records']} >= {'psnr', 'ssim', 'cnpd', 'sem_acc', 'fid_cn', 'kid_cn', 'rel_kid_cn'}
    c = saved['claim']['awgn']['0']
    st = saved['results']['awgn']['stats']                                           # at_claim: the claim SNRs' values
    assert saved['at_claim']['reference']['rel_kid_cn'] == [st[i]['reference']['rel_kid_cn']['value'] for i in (0, 1)]
    assert set(c['arms']) == set(rs.DIFFACE) and isinstance(c['arms']['reference']['meets_all'], bool)
    assert isinstance(c['cgan_thresholds']['meets_all'], bool)     # the claim's thresholds applied to the CGAN, too
    assert abs(c['cgan_thresholds']['psnr_cost_db'] - c['vs_cgan']['cgan_psnr_cost_db']) < 1e-4
    assert 'vs_cgan' in c and c['sentence'].startswith('0 dB') and saved['summary'][0].startswith('awgn, 0 dB')
    assert doc['summary'] == saved['summary']
    pts = [(x['kid_reduction'], x['psnr_cost_db']) for v in saved['claim']['awgn'].values() for x in v['arms'].values()]
    top, cheap = saved['strongest']['any_cost'], saved['strongest']['within_cost']          # quoted from the report
    assert top['kid_reduction'] == max(k for k, _ in pts) and top['arm'] in rs.DIFFACE and top['channel'] == 'awgn'
    assert cheap is None or (cheap['psnr_cost_db'] <= rs.CLAIM_PSNR_COST and cheap['kid_reduction'] == max(k for k, c in pts if c <= 0.5))
    rep = rs.main(['report', '--out_dir', str(tmp_path)])          # report restates the runs it found: awgn only, every arm
    assert f'run --prior zoo:prior-cifar10-tiny --out_dir {tmp_path} --quick --snrs 0,5 --channels awgn; ' in rep['command']
    assert '--arms' not in rep['command'] and rep['command'].endswith(f'report --out_dir {tmp_path}')


def test_matched_start_follows_the_residual():
    "The matched start is monotone in the residual and is the step whose noise level is nearest it."
    from kdd_semnoma.diffusion import make_scheduler, sigma_at
    import torch
    for sch in (make_scheduler('ddim'), make_scheduler('ddim', beta_schedule='squaredcos_cap_v2')):
        rms = [0.02, 0.05, 0.1, 0.2, 0.4, 0.8]
        ts = [rs.matched_start(sch, r) for r in rms]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
        for r, t in zip(rms, ts):
            assert all(abs(sigma_at(sch, t) - r) <= abs(sigma_at(sch, u) - r) for u in (t - 1, t + 1) if 0 <= u < 1000)
        with pytest.raises(ValueError, match='> 0'): rs.matched_start(sch, 0.)
    x = torch.rand(4, 2, 3, 8, 8) * 0.8
    assert abs(rs.residual_rms(x + 0.1, x) - 0.2) < 1e-6             # model space [-1, 1] doubles the error


@pytest.mark.parametrize('args,msg', [(['--channels', 'fading'], "unknown channel 'fading'"),
                                      (['--arms', 'decoded', 'bogus'], "unknown arm 'bogus'"),
                                      (['--arms', 'cgan'], "must include 'decoded'"),
                                      (['--prior', '/nonexistent/prior'], 'does not exist'),
                                      (['--prior', 'zoo:no-such-prior'], "no prior 'no-such-prior'"),
                                      (['--snrs', '0,7'], '--snrs takes distinct values from 0, 5, 10, 15, 20'),
                                      (['--snrs', 'low'], '--snrs takes comma-separated dB values')])
def test_bad_input_is_one_line(tmp_path, capsys, args, msg):
    with pytest.raises(SystemExit) as e: rs.main(['run', '--quick', '--out_dir', str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 1 and msg in err and err.count('\n') == 0 and err.startswith('refine_study: error:')


def test_report_without_runs_says_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit): rs.main(['report', '--out_dir', str(tmp_path)])
    assert 'run `python bench/refine_study.py run` first' in capsys.readouterr().err


def test_a_study_folder_keeps_one_design(tmp_path, capsys):
    "Runs at other SNRs (or on other pairs) are refused in a folder that holds a study: the report compares like with like."
    d = tmp_path / 'refine_study' / 'prior-cifar10-tiny' / 'awgn'; d.mkdir(parents=True)
    np.savez(d / 'decoded-s0.npz', meta=json.dumps({'budget': dict(rs.QUICK, snrs=[0.])}))
    with pytest.raises(SystemExit) as e: rs.main(['run', '--quick', '--snrs', '0,5', '--out_dir', str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 1 and err.count('\n') == 0 and "holds runs at SNRs ['0'] dB on 4 pairs" in err and 'another --out_dir' in err


def test_workers_share_the_queue(real_data, tmp_path, capsys):
    "A run claimed by a live worker is skipped; a dead worker's claim is taken over and the run made."
    import os
    npz_dir = tmp_path / 'refine_study' / 'prior-cifar10-tiny'
    lock = npz_dir / 'awgn' / '.locks' / 'decoded-s0' / '.lock'; lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({'pid': os.getpid(), 'host': __import__('socket').gethostname(), 'started': 'now'}))
    kw = dict(prior=rs.DEFAULT_PRIOR, cfg=dict(rs.QUICK), npz_dir=npz_dir, device='cpu')
    assert rs.do_run('awgn', 'decoded', 0, **kw) is None and 'another worker is running it' in capsys.readouterr().out
    lock.write_text(json.dumps({'pid': 2 ** 22 + 12345, 'host': __import__('socket').gethostname(), 'started': 'then'}))  # no such pid
    out = rs.do_run('awgn', 'decoded', 0, **kw)
    assert out == npz_dir / 'awgn' / 'decoded-s0.npz' and out.exists() and not lock.parent.exists()   # claim released, folder gone


def test_a_study_keeps_its_decodings(real_data, tmp_path):
    "Runs record the input system's checksum; a study whose decodings today's zoo system no longer makes is refused."
    npz_dir = tmp_path / 'refine_study' / 'prior-cifar10-tiny'
    cfg = dict(rs.QUICK)
    out = rs.do_run('awgn', 'decoded', 0, prior=rs.DEFAULT_PRIOR, cfg=cfg, npz_dir=npz_dir, device='cpu')
    z = dict(np.load(out))
    assert json.loads(str(z['meta']))['system_sha256'] == rs.system_sha256('awgn') and len(rs.system_sha256('awgn')) == 64
    rs.check_decodings(npz_dir, 'awgn', cfg, 'cpu')                              # the same system: accepted
    z['psnr'] = z['psnr'] + 0.5                                                  # as if another system had decoded them
    np.savez(out, **z)
    with pytest.raises(ValueError, match='zoo entry changed'): rs.check_decodings(npz_dir, 'awgn', cfg, 'cpu')
    rs.check_decodings(npz_dir, 'rayleigh', cfg, 'cpu')                          # no runs on that channel yet: nothing to check


def test_compiled_runs_are_recorded(real_data, tmp_path, monkeypatch):
    "run --compile: the diffusion arms refine with the compiled prior (stubbed here: compiling is slow) and say so; the report restates it."
    used = []
    def fake_compiled(prior, device):
        used.append(prior); return rs.load_prior_cached(prior, device).unet
    monkeypatch.setattr(rs, 'compiled_unet', fake_compiled)
    rs.main(['run', '--quick', '--channels', 'awgn', '--arms', 'decoded', 'reference', '--compile', '--out_dir', str(tmp_path)])
    npz_dir = tmp_path / 'refine_study' / 'prior-cifar10-tiny' / 'awgn'
    meta = {a: json.loads(str(np.load(npz_dir / f'{a}-s0.npz')['meta'])) for a in ('decoded', 'reference')}
    assert used and meta['reference']['compiled'] is True and meta['decoded']['compiled'] is False
    rep = rs.main(['report', '--out_dir', str(tmp_path)])
    assert '--quick --compile --channels awgn --arms decoded reference' in rep['command']


def _close(a, b, path='') -> None:
    "Nested JSON values equal, floats to 1e-9 (relative)."
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a: _close(a[k], b[k], f'{path}/{k}')
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)): _close(x, y, f'{path}/{i}')
    elif isinstance(a, float) and isinstance(b, (int, float)): assert b == pytest.approx(a, rel=1e-9, abs=1e-12), path
    else: assert a == b, path


STUDIES = sorted(p.stem.removeprefix('refine_study_') for p in (ROOT / 'results').glob('refine_study_*.json'))


@pytest.mark.parametrize('tag', STUDIES)
def test_committed_study_is_what_its_runs_report(tag, tmp_path):
    """Each committed results/refine_study_<prior>.json is what `report` makes of the committed runs beside it: the claim
    flags, the sentences and the values the notebooks and the README quote (at_claim), so no number there is stale."""
    saved = json.loads((ROOT / 'results' / f'refine_study_{tag}.json').read_text())
    out = tmp_path / f'refine_study_{tag}.json'
    rs.report(ROOT / 'results' / 'refine_study' / tag, out, saved['config']['prior'], 'test')
    again = json.loads(out.read_text())
    assert again['summary'] == saved['summary']
    for key in ('claim', 'at_claim', 'strongest', 'results'): _close(saved[key], again[key], key)
    assert again['config']['seeds'] == saved['config']['seeds'] and again['config']['runs'] == saved['config']['runs']
