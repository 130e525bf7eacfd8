"""Weights from the Hugging Face Hub (`--weights hf://OWNER/REPO/FILE`), tested against a local stand-in of the Hub's
file endpoint on 127.0.0.1 (`HF_ENDPOINT`), never the real Hub: the download, the cache (one download for two runs,
and counting on with the server gone), the segmenter found beside the counter, and the one-line errors."""
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip('huggingface_hub')
from segcount.app import EXAMPLES_DIR  # noqa: E402
from segcount.counter import default_weights_path  # noqa: E402
from segcount.model_files import hub_model_card, read_metadata  # noqa: E402

COMMIT = 'c0ffee' * 6 + 'c0ff'   # the stand-in repository's one revision (40 hex digits)
BOXES = ['--box', '336', '248', '382', '289', '--box', '80', '175', '124', '217']


class _Hub(BaseHTTPRequestHandler):
    "GET/HEAD /{owner}/{repo}/resolve/{revision}/{path}: a file of `files`, else 404 with the Hub's error code."
    files: dict = {}
    gets: list = []

    def _answer(self, body: bool):
        parts = self.path.split('?')[0].lstrip('/').split('/')
        repo, rev, path = '/'.join(parts[:2]), parts[3] if len(parts) > 3 else '', '/'.join(parts[4:])
        if len(parts) < 5 or parts[2] != 'resolve' or repo not in self.files:
            self.send_response(404); self.send_header('X-Error-Code', 'RepoNotFound'); self.end_headers(); return
        if path not in self.files[repo]:
            self.send_response(404); self.send_header('X-Error-Code', 'EntryNotFound'); self.end_headers(); return
        data = self.files[repo][path]
        self.send_response(200)
        self.send_header('X-Repo-Commit', COMMIT)
        self.send_header('ETag', f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if body: self.gets.append(path); self.wfile.write(data)

    def do_HEAD(self): self._answer(False)
    def do_GET(self): self._answer(True)
    def log_message(self, *a): pass


@pytest.fixture
def hub(tmp_path):
    weights = default_weights_path()
    _Hub.files = {'me/counter': {'default.safetensors': weights.read_bytes()},
                  'me/pair': {'v1/default.safetensors': weights.read_bytes(),
                              'v1/segmenter.safetensors': weights.with_name('segmenter.safetensors').read_bytes()}}
    _Hub.gets = []
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, HF_ENDPOINT=f'http://127.0.0.1:{server.server_address[1]}', HF_HOME=str(tmp_path / 'hf'),
               HF_HUB_DISABLE_TELEMETRY='1', HF_HUB_ETAG_TIMEOUT='5', OMP_NUM_THREADS='1')
    env.pop('HF_HUB_OFFLINE', None)
    yield server, env
    server.shutdown(); server.server_close()


def _segcount(env, *args):
    return subprocess.run([str(Path(sys.executable).parent / 'segcount'), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _count(env, *args):
    r = _segcount(env, 'count', str(EXAMPLES_DIR / 'coins.png'), *BOXES, '--json', *args)
    assert r.returncode == 0, r.stderr[-1500:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_hub_counter_counts_like_the_same_file_on_disk_and_is_downloaded_once(hub):
    server, env = hub
    local = _count(env)
    ref = 'hf://me/counter/default.safetensors'
    first = _count(env, '--weights', ref)
    assert first['weights'] == ref and first['count'] == pytest.approx(local['count'], rel=1e-5)
    second = _count(env, '--weights', ref)
    assert second['count'] == first['count'] and _Hub.gets == ['default.safetensors']   # the cache served run two
    offline = dict(env, HF_HUB_OFFLINE='1')                                           # no network: the cache
    assert _count(offline, '--weights', ref)['count'] == first['count'] and len(_Hub.gets) == 1


def test_a_hub_counter_brings_the_segmenter_beside_it_at_a_revision(hub):
    _, env = hub
    out = _count(env, '--weights', f'hf://me/pair@{COMMIT}/v1/default.safetensors', '--method', 'seg-then-count')
    assert out['method'] == 'seg-then-count' and sorted(_Hub.gets) == ['v1/default.safetensors', 'v1/segmenter.safetensors']


@pytest.mark.parametrize('ref,says', [('hf://me/counter/nothing.safetensors', 'has no file nothing.safetensors'),
                                      ('hf://nobody/none/default.safetensors', 'could not download from the Hub'),
                                      ('hf://me/counter', 'not a Hub reference')])
def test_hub_references_that_fail_say_why_in_one_line(hub, ref, says):
    _, env = hub
    r = _segcount(env, 'count', str(EXAMPLES_DIR / 'coins.png'), *BOXES, '--weights', ref)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr[-800:]


def test_the_model_card_carries_the_file_s_own_metadata():
    yaml = pytest.importorskip('yaml')
    card = hub_model_card(default_weights_path(), repo='me/counter')
    front = yaml.safe_load(card.split('---')[1])
    assert front['library_name'] == 'segcount' and front['license'] == 'apache-2.0' and 'object-counting' in front['tags']
    backbone = json.loads(read_metadata(default_weights_path())['config'])['backbone_name']
    assert f'"backbone_name": "{backbone}"' in card and '"selected_by"' in card   # the config and the training summary
    assert 'hf://me/counter/default.safetensors' in card
