"Importing the package is light and side-effect free (STYLE rule 14)."
import subprocess, sys, textwrap

def test_import_has_no_side_effects(tmp_path):
    code = textwrap.dedent(f"""
        import os, torch
        before = (torch.backends.cudnn.benchmark, torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        os.environ['KDD_SEMNOMA_HOME'] = {str(tmp_path / 'home')!r}
        import kdd_semnoma, kdd_semnoma.core, kdd_semnoma.channel
        import importlib, pkgutil
        for m in pkgutil.iter_modules(kdd_semnoma.__path__):
            importlib.import_module('kdd_semnoma.' + m.name)
        after = (torch.backends.cudnn.benchmark, torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        assert before == after, (before, after)
        assert not os.path.exists({str(tmp_path / 'home')!r}), 'import created files'
        import sys
        assert 'lpips' not in sys.modules, 'lpips must be imported lazily'
        print('ok')
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]

def test_version():
    import kdd_semnoma
    assert kdd_semnoma.__version__
