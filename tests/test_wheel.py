"""The package as a user installs it: a wheel built from this tree, installed (no -e) into an empty folder, used from
another folder: `import segcount`, `segcount count` on the packaged example, and `segcount demo` answering HTTP 200
and `/count`. The wheel's own files are used, not the checkout's (the run asserts where segcount was imported from)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


_USE = r'''
import json, socket, sys, urllib.request
import segcount, segcount.app
assert segcount.__file__.startswith(sys.argv[1]), segcount.__file__
from segcount.cli import main
ex = segcount.app.EXAMPLES_DIR / 'coins.png'
main(['count', str(ex), '--box', '336', '248', '382', '289', '--box', '80', '175', '124', '217', '--json'])
s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
demo = segcount.app.main('127.0.0.1', port, block=False)
with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=60) as r: status = r.status
from gradio_client import Client, handle_file
out = Client(f'http://127.0.0.1:{port}/', verbose=False).predict(
    handle_file(str(ex)), json.dumps([[336, 248, 382, 289], [80, 175, 124, 217]]), 'count', api_name='/count')
demo.close()
print(json.dumps(dict(file=segcount.__file__, http=status, api_count=out['count'])))
'''


def test_wheel_installed_in_a_fresh_folder_counts_and_serves(tmp_path, wheel):
    pytest.importorskip('gradio'); pytest.importorskip('gradio_client')
    site, work = tmp_path / 'site', tmp_path / 'elsewhere'
    work.mkdir()
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site), str(wheel)],
                   check=True, timeout=600)
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS='1', GRADIO_ANALYTICS_ENABLED='False')
    r = subprocess.run([sys.executable, '-c', _USE, str(site)], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{')]
    count, used = lines[0], lines[-1]
    assert count['weights'] == 'embedded:default.safetensors' and count['count'] > 0
    assert used['file'].startswith(str(site)) and used['http'] == 200
    assert abs(used['api_count'] - count['count']) < 1e-4 * max(1.0, count['count'])
