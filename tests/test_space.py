"""The Hugging Face Space, simulated: the folder the release workflow uploads (demo/ through tools/space_sync.py, with
the package from a local wheel instead of git) is run the way Spaces run it, in a fresh virtual environment:
install what its requirements name plus gradio at the README's sdk_version, then `python app.py` with the server
settings Spaces give; the app must answer HTTP 200 and `/count` must return a count.

The fresh environment sees this one's installed packages through a .pth file (no network here), so the install
resolves with `--no-index`: it proves the requirements name nothing this machine's environment lacks, and installs
the wheel itself into the fresh environment, from which the app imports segcount (asserted)."""
import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from space_sync import sdk_version, space_folder  # noqa: E402


def _free_port() -> int:
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    return port


def test_the_space_folder_installs_and_serves_counts(tmp_path, wheel):
    pytest.importorskip('gradio'); gc = pytest.importorskip('gradio_client')
    space = space_folder(tmp_path / 'space', package=str(wheel))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=300)   # pip: this one's
    py = venv / 'bin' / 'python'
    site = Path(subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / 'this_machines_packages.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    pip = subprocess.run([sys.executable, '-m', 'pip', '--python', str(py), 'install', '-q', '--no-index', '-r', str(space / 'requirements.txt'),
                          f'gradio=={sdk_version(space)}'], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PIP_CONFIG_FILE=os.devnull))   # a Space has none of this machine's pip caps
    assert pip.returncode == 0, pip.stderr[-2000:]
    where = subprocess.run([str(py), '-c', 'import segcount; print(segcount.__file__)'], cwd=space,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(site)), where   # the wheel's copy, not the checkout's

    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME='127.0.0.1', GRADIO_SERVER_PORT=str(port), OMP_NUM_THREADS='1',
               GRADIO_ANALYTICS_ENABLED='False', PYTHONPATH='')
    app = subprocess.Popen([str(py), 'app.py'], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, status = f'http://127.0.0.1:{port}/', None
        for _ in range(240):
            if app.poll() is not None: break
            try:
                with urllib.request.urlopen(url, timeout=5) as r: status = r.status; break
            except OSError: time.sleep(0.5)
        assert status == 200, (app.poll(), app.stdout.read() if app.poll() is not None else '')
        ex = Path(subprocess.run([str(py), '-c', 'import segcount.app as a; print(a.EXAMPLES_DIR / "coins.png")'],
                                 capture_output=True, text=True, check=True).stdout.strip())
        out = gc.Client(url, verbose=False).predict(gc.handle_file(str(ex)), json.dumps([[336, 248, 382, 289], [80, 175, 124, 217]]),
                                                    'count', api_name='/count')
        assert out['count'] > 1 and out['method'] == 'count', out
    finally:
        app.terminate(); app.wait(timeout=30)
