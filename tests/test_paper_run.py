"kdd_paper_run: the four paper stages in one command within a time budget (CPU smoke run with the tiny preset)."
import json, os, subprocess, sys

CLI = "from kdd_semnoma.paper_run import kdd_paper_run\nkdd_paper_run()\n"


def _cli(tmp_path, *args):
    script = tmp_path / 'paper_run_cli.py'
    script.write_text(CLI)
    env = {**os.environ, 'KDD_SEMNOMA_HOME': str(tmp_path / 'home'), 'OMP_NUM_THREADS': '2'}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=600)


def test_paper_run_cli_trains_all_stages_and_resumes(tmp_path):
    out = tmp_path / 'paper'
    args = ['--budget_minutes', '0.05', '--preset', 'tiny', '--data', 'tiles', '--device', 'cpu', '--out_dir', str(out),
            '--snrs', '0,20', '--quiet']
    r = _cli(tmp_path, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / 'paper_run.json').read_text())
    assert [st['stage'] for st in s['stages']] == ['teacher', 'kd', 'semnoma', 'oma']
    assert abs(sum(st['budget_minutes'] for st in s['stages']) - 0.05) < 1e-9
    for name in ('teacher', 'kd', 'semnoma', 'oma'):
        res = json.loads((out / 'results' / f'{name}.json').read_text())
        assert res['results']['snr_db'] == [0.0, 20.0] and all(v is not None for v in res['results']['psnr'])
    assert s['stages'][1]['train_config']['init'] is None and s['stages'][2]['train_config']['stage'] == 'semnoma'
    steps = [st['steps'] for st in s['stages']]
    r2 = _cli(tmp_path, *args, '--resume')                    # every stage continues from its last.pt
    assert r2.returncode == 0, r2.stderr[-3000:]
    s2 = json.loads((out / 'paper_run.json').read_text())
    assert all(b > a for a, b in zip(steps, (st['steps'] for st in s2['stages'])))


def test_paper_run_cli_bad_budget_is_one_line(tmp_path):
    r = _cli(tmp_path, '--budget_minutes', '0', '--preset', 'tiny', '--data', 'tiles', '--device', 'cpu', '--out_dir', str(tmp_path / 'p'))
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and '--budget_minutes must be > 0' in r.stderr
