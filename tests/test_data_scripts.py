"""Tests for data_scripts/ (FSC-147 downloader against a local HTTP server), the committed real
evaluation set evalsets/real/ and the bundled examples in segcount/assets/."""
import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "data_scripts"
REAL = ROOT / "evalsets" / "real"
ASSETS = ROOT / "segcount" / "assets"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


dl = _load("download_fsc147")


# ----------------------------------------------------------------------------- fixture server

class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files` {path: bytes} with Range support; `server.cut` {path: n} sends the
    full Content-Length but drops the connection after n bytes (once); `server.html` {path: bytes}
    answers with a web page; every request is logged in `server.log` as (path, Range header)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        path = self.path.split("?")[0]
        srv.log.append((path, self.headers.get("Range")))
        if path in srv.html:
            body = srv.html[path]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = srv.files.get(path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = srv.cut.pop(path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.cut, srv.html, srv.log, srv.ranges = {}, {}, {}, [], True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _jpg(color):
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _fixture_files():
    "The 3 annotation files and 2 tiny images of a 2-image FSC-147."
    ann = {
        "2.jpg": {"box_examples_coordinates": [[[1, 1], [1, 9], [9, 9], [9, 1]]] * 3,
                  "points": [[5, 5], [20, 10]], "H": 32, "W": 48},
        "3.jpg": {"box_examples_coordinates": [[[2, 2], [2, 8], [8, 8], [8, 2]]] * 3,
                  "points": [[4, 4]], "H": 32, "W": 48},
    }
    return {
        "annotation_FSC147_384.json": json.dumps(ann).encode(),
        "Train_Test_Val_FSC_147.json": json.dumps({"train": ["2.jpg"], "val": ["3.jpg"], "test": []}).encode(),
        "ImageClasses_FSC147.txt": b"2.jpg\tapples\n3.jpg\tpens\n",
        "images_384_VarV2/2.jpg": _jpg((200, 30, 30)),
        "images_384_VarV2/3.jpg": _jpg((30, 30, 200)),
    }


def _fixture_zip(files, prefix="FSC147_384_V2/"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__MACOSX/._junk", b"junk")
        for name, data in sorted(files.items()):
            z.writestr(prefix + name, data)
    return buf.getvalue()


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def _manifest(tmp_path, entries):
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"format": "segcount-download-manifest/1", "files": entries}))
    return str(p)


def _run(args, capsys):
    rc = dl.main(args + ["--retries", "0", "--timeout", "10"])
    return rc, capsys.readouterr().err


def _assert_layout(out, files):
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name
    assert not list(out.rglob("*.part")) and not list(out.glob(".staging-*"))


# ----------------------------------------------------------------------------- downloader

def test_full_download_from_one_zip(server, tmp_path, capsys):
    files = _fixture_files()
    z = _fixture_zip(files)
    server.files["/d/fsc.zip"] = z
    man = _manifest(tmp_path, [{"name": "fsc.zip", "kind": "zip", "url": server.url + "/d/fsc.zip",
                                "sha256": _sha(z), "provides": ["images_384_VarV2"]}])
    out = tmp_path / "FSC-147"
    rc, err = _run(["--out", str(out), "--manifest", man], capsys)
    assert rc == 0, err
    _assert_layout(out, files)
    assert not (out / "__MACOSX").exists()
    assert not (out / ".downloads" / "fsc.zip").exists()  # archive removed after unpacking
    assert "2 annotated images" in err and "2 images" in err
    # a second run finds everything in place and fetches nothing
    n = len(server.log)
    rc, err = _run(["--out", str(out), "--manifest", man], capsys)
    assert rc == 0 and len(server.log) == n and "already unpacked" in err


def test_default_manifest_via_base_url(server, tmp_path, capsys):
    "The built-in manifest's names, served by a mirror: separate annotation files + images zip."
    files = _fixture_files()
    for name in dl.LAYOUT_FILES:
        server.files["/mirror/" + name] = files[name]
    # the zip also holds (stale) annotation files: the separately fetched ones must win
    stale = dict(files, **{"annotation_FSC147_384.json": b"{}"})
    server.files["/mirror/FSC147_384_V2.zip"] = _fixture_zip(stale)
    out = tmp_path / "FSC-147"
    rc, err = _run(["--out", str(out), "--base-url", server.url + "/mirror"], capsys)
    assert rc == 0, err
    _assert_layout(out, files)
    assert "no pinned checksum" in err and "sha256" in err
    assert not any(p.endswith("FSC147_GT.zip") for p, _ in server.log)  # optional: not fetched


def test_density_maps_from_any_folder(server, tmp_path, capsys):
    "The optional density archive: .npy files land in the layout's density folder."
    files = _fixture_files()
    for name in dl.LAYOUT_FILES:
        server.files["/m/" + name] = files[name]
    server.files["/m/FSC147_384_V2.zip"] = _fixture_zip(files)
    npy = {"2.npy": b"\x93NUMPY-two", "3.npy": b"\x93NUMPY-three"}
    server.files["/m/FSC147_GT.zip"] = _fixture_zip(npy, prefix="FSC147_GT/maps/")
    out = tmp_path / "FSC-147"
    rc, err = _run(["--out", str(out), "--base-url", server.url + "/m", "--with-density"], capsys)
    assert rc == 0, err
    _assert_layout(out, {f"gt_density_map_adaptive_384_VarV2/{k}": v for k, v in npy.items()})
    assert "density maps: 2" in err


def test_resume_after_partial_part_file(server, tmp_path, capsys):
    files = _fixture_files()
    z = _fixture_zip(files)
    server.files["/fsc.zip"] = z
    man = _manifest(tmp_path, [{"name": "fsc.zip", "url": server.url + "/fsc.zip", "sha256": _sha(z)}])
    out = tmp_path / "out"
    part = out / ".downloads" / "fsc.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(z[:300])
    rc, err = _run(["--out", str(out), "--manifest", man, "--keep-archives"], capsys)
    assert rc == 0, err
    assert server.log == [("/fsc.zip", "bytes=300-")]
    assert (out / ".downloads" / "fsc.zip").read_bytes() == z
    _assert_layout(out, files)


def test_truncated_transfer_keeps_part_and_resumes(server, tmp_path, capsys):
    files = _fixture_files()
    z = _fixture_zip(files)
    server.files["/fsc.zip"] = z
    server.cut["/fsc.zip"] = 500
    man = _manifest(tmp_path, [{"name": "fsc.zip", "url": server.url + "/fsc.zip", "sha256": _sha(z)}])
    out = tmp_path / "out"
    rc, err = _run(["--out", str(out), "--manifest", man], capsys)
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("download_fsc147: error: fsc.zip:") and "re-run to resume" in line
    assert (out / ".downloads" / "fsc.zip.part").stat().st_size == 500
    assert not (out / "images_384_VarV2").exists()  # nothing unverified appears
    rc, err = _run(["--out", str(out), "--manifest", man], capsys)
    assert rc == 0, err
    assert server.log[-1] == ("/fsc.zip", "bytes=500-")
    _assert_layout(out, files)


def test_server_without_range_support_starts_over(server, tmp_path, capsys):
    server.ranges = False
    data = _fixture_files()["annotation_FSC147_384.json"]
    server.files["/a.json"] = data
    man = _manifest(tmp_path, [{"name": "annotation_FSC147_384.json", "url": server.url + "/a.json",
                                "sha256": _sha(data)}])
    out = tmp_path / "out"
    out.mkdir()
    (out / "annotation_FSC147_384.json.part").write_bytes(b"garbage that is not a prefix")
    rc, err = _run(["--out", str(out), "--manifest", man, "--only", "annotation_FSC147_384.json"], capsys)
    assert rc == 0, err
    assert "starting over" in err
    assert (out / "annotation_FSC147_384.json").read_bytes() == data


def test_checksum_mismatch(server, tmp_path, capsys):
    z = _fixture_zip(_fixture_files())
    server.files["/fsc.zip"] = z
    man = _manifest(tmp_path, [{"name": "fsc.zip", "url": server.url + "/fsc.zip", "sha256": "0" * 64}])
    out = tmp_path / "out"
    rc, err = _run(["--out", str(out), "--manifest", man], capsys)
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert "checksum mismatch" in line and _sha(z) in line and "re-run" in line
    assert not list(out.rglob("fsc.zip*"))  # corrupt .part removed, no final file
    assert not (out / "images_384_VarV2").exists()


def test_http_404(server, tmp_path, capsys):
    man = _manifest(tmp_path, [{"name": "annotation_FSC147_384.json", "url": server.url + "/gone.json"}])
    rc, err = _run(["--out", str(tmp_path / "out"), "--manifest", man], capsys)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("download_fsc147: error: annotation_FSC147_384.json: HTTP 404")
    assert "--base-url or --manifest" in lines[0]
    assert not (tmp_path / "out" / "annotation_FSC147_384.json").exists()


def test_html_page_instead_of_file(server, tmp_path, capsys):
    server.html["/drive"] = b"<!DOCTYPE html><html><body>Quota exceeded</body></html>"
    man = _manifest(tmp_path, [{"name": "FSC147_384_V2.zip", "url": server.url + "/drive"}])
    rc, err = _run(["--out", str(tmp_path / "out"), "--manifest", man], capsys)
    assert rc == 1 and "web page instead of the file" in err
    assert str(tmp_path / "out" / ".downloads" / "FSC147_384_V2.zip") in err  # where to put it by hand


def test_confirmation_page_form_is_followed(server, tmp_path, capsys):
    "Google Drive answers big files with a 'cannot scan for viruses' page holding a GET form."
    files = _fixture_files()
    z = _fixture_zip(files)
    server.files["/usercontent/download"] = z
    server.html["/drive"] = (
        b'<html><body><form id="download-form" action="/usercontent/download" method="get">'
        b'<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="abc">'
        b'<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1">'
        b'</form></body></html>')
    man = _manifest(tmp_path, [{"name": "FSC147_384_V2.zip", "url": server.url + "/drive?id=abc",
                                "sha256": _sha(z)}])
    out = tmp_path / "out"
    rc, err = _run(["--out", str(out), "--manifest", man], capsys)
    assert rc == 0, err
    assert [p for p, _ in server.log] == ["/drive", "/usercontent/download"]
    _assert_layout(out, files)


def test_corrupt_unpinned_zip_and_bad_manifest(server, tmp_path, capsys):
    server.files["/bad.zip"] = b"PK\x03\x04 this is not really a zip" * 10
    man = _manifest(tmp_path, [{"name": "bad.zip", "url": server.url + "/bad.zip"}])
    rc, err = _run(["--out", str(tmp_path / "out"), "--manifest", man], capsys)
    assert rc == 1 and "not a zip archive" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, err = _run(["--manifest", str(bad)], capsys)
    assert rc == 1 and "bad.json: manifest is not valid JSON" in err
    rc, err = _run(["--manifest", _manifest(tmp_path, [{"name": "x.zip", "url": "http://h/x", "sha256": "12"}])], capsys)
    assert rc == 1 and "sha256 must be 64 hex digits" in err


def test_missing_images_are_reported(server, tmp_path, capsys):
    files = _fixture_files()
    del files["images_384_VarV2/3.jpg"]
    z = _fixture_zip(files)
    server.files["/fsc.zip"] = z
    man = _manifest(tmp_path, [{"name": "fsc.zip", "url": server.url + "/fsc.zip", "sha256": _sha(z)}])
    rc, err = _run(["--out", str(tmp_path / "out"), "--manifest", man], capsys)
    assert rc == 1 and "1 of 2 annotated images are missing (e.g. 3.jpg)" in err


def test_script_runs_as_a_program(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPTS / "download_fsc147.py"), "--print-manifest"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    man = json.loads(r.stdout)
    names = {f["name"] for f in man["files"]}
    assert {"annotation_FSC147_384.json", "Train_Test_Val_FSC_147.json", "ImageClasses_FSC147.txt",
            "FSC147_384_V2.zip"} <= names
    assert all(f["url"].startswith("https://") for f in man["files"])
    r = subprocess.run([sys.executable, str(SCRIPTS / "download_fsc147.py"), "--manifest",
                        str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.strip() == f"download_fsc147: error: {tmp_path / 'nope.json'}: manifest file not found"


# ----------------------------------------------------------------------------- evalsets/real

def _groups(path):
    g = json.loads(Path(path).read_text())
    assert g["format"] == "segcount-groups/1"
    return g["entries"]


def _check_entries(entries, base):
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids))
    for e in entries:
        img_path = base / e["image"]
        with Image.open(img_path) as im:
            im.load()
            W, H = im.size
        assert max(W, H) <= 1024, e["id"]
        b = np.asarray(e["boxes"], dtype=np.float64)
        p = np.asarray(e["points"], dtype=np.float64)
        assert b.ndim == 2 and b.shape[1] == 4 and len(b) == 3, e["id"]
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all(), e["id"]
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= W).all() and (b[:, 3] <= H).all(), e["id"]
        assert p.ndim == 2 and p.shape[1] == 2 and len(p) >= 1, e["id"]
        assert (p >= 0).all() and (p[:, 0] <= W).all() and (p[:, 1] <= H).all(), e["id"]
        # every exemplar box holds at least one annotated object's dot
        for x1, y1, x2, y2 in b:
            assert ((p[:, 0] >= x1) & (p[:, 0] <= x2) & (p[:, 1] >= y1) & (p[:, 1] <= y2)).any(), e["id"]


def _documented_counts(md):
    "{id: objects} from the table in SOURCES.md."
    counts = {}
    for line in Path(md).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[3].isdigit():
            counts[cells[0]] = int(cells[3])
    return counts


def test_real_evalset_is_valid():
    entries = _groups(REAL / "groups.json")
    _check_entries(entries, REAL)
    counts = _documented_counts(REAL / "SOURCES.md")
    assert counts == {e["id"]: len(e["points"]) for e in entries}
    assert counts == {"coins": 24, "osbs_029-trees": 61, "soap_061-alive": 9, "soap_061-dead": 28,
                      "yell_541000_4977000-trees": 279, "yell_528000_4978000-trees": 574, "nuclei": 125}
    total = sum(counts.values())
    assert f"Total: {len(entries)} groups, {total} objects." in (REAL / "SOURCES.md").read_text()
    # the photo with two kinds of objects: two groups on one image
    two = [e for e in entries if e["image"] == "images/soap_061.jpg"]
    assert sorted(e["class"] for e in two) == ["dead trees", "living trees"]
    size = sum(f.stat().st_size for f in (ROOT / "evalsets").rglob("*") if f.is_file())
    assert size <= 3_000_000


VAL = ROOT / "evalsets" / "val"


def test_real_validation_set_is_valid_and_apart_from_the_test_set():
    "evalsets/val (model choice): >= 20 photos of >= 8 kinds, documented, and no image of the test set."
    entries = _groups(VAL / "groups.json")
    _check_entries(entries, VAL)
    counts = _documented_counts(VAL / "SOURCES.md")
    assert counts == {e["id"]: len(e["points"]) for e in entries}
    assert len(entries) >= 20 and len({e["class"] for e in entries}) >= 8
    assert min(counts.values()) >= 5 and max(counts.values()) >= 500
    assert f"Total: {len(entries)} groups, {sum(counts.values())} objects." in (VAL / "SOURCES.md").read_text()
    pixels = lambda f: hashlib.sha256(np.asarray(Image.open(f).convert("L").resize((64, 64))).tobytes()).hexdigest()
    test_images = {pixels(f) for f in (REAL / "images").iterdir()}
    assert not test_images & {pixels(VAL / e["image"]) for e in entries}
    src = (VAL / "SOURCES.md").read_text()
    for name in ("OSBS_029", "SOAP_061", "2019_YELL", "img2d", "skimage/data/coins"):   # the test set's files
        assert name not in src, name


def test_real_evalset_reads_with_segcount_data():
    data = pytest.importorskip("segcount.data")
    if not hasattr(data, "read_groups"):
        pytest.skip("segcount.data.read_groups not there yet")
    samples = data.read_groups(REAL / "groups.json")
    want = {e["id"]: len(e["points"]) for e in _groups(REAL / "groups.json")}
    assert {s.name: s.count for s in samples} == want
    for s in samples:
        assert s.image.mode == "RGB" and s.boxes.shape == (3, 4)
    examples = data.read_groups(ASSETS / "examples" / "examples.json")
    assert [s.count for s in examples] == [len(e["points"]) for e in _groups(ASSETS / "examples" / "examples.json")]


def test_bundled_examples():
    entries = _groups(ASSETS / "examples" / "examples.json")
    _check_entries(entries, ASSETS / "examples")
    by_id = {e["id"]: e for e in entries}
    assert len(by_id["coins"]["points"]) == 24
    assert (ASSETS / "examples" / "chelsea.jpg").stat().st_size <= 60_000
    with Image.open(ASSETS / "examples" / "chelsea.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    lic = (ASSETS / "LICENSES.md").read_text()
    for f in sorted((ASSETS / "examples").iterdir()):
        if f.suffix in (".png", ".jpg"):
            assert f"examples/{f.name}" in lic, f.name
    assert "MIT License" in lic and "BSD-3-Clause" in lic


@pytest.mark.skipif(not os.environ.get("SEGCOUNT_WHEELS"),
                    reason="set SEGCOUNT_WHEELS to a folder with the deepforest, scikit-image and "
                           "stardist wheels to check the committed files against a fresh build")
def test_real_evalset_rebuilds_identically():
    r = subprocess.run([sys.executable, str(SCRIPTS / "build_real_eval.py"), "--wheels",
                        os.environ["SEGCOUNT_WHEELS"], "--check"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_exemplar_rule():
    bre = _load("build_real_eval")
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [21, 21, 31, 31], [40, 40, 52, 52],
                      [60, 60, 69, 69], [70, 5, 100, 35]], dtype=float)
    ex = bre.pick_exemplars(boxes, (101, 101))
    # the border box and the overlapping twin are skipped; the huge one is least typical
    assert ex.tolist() == [[20, 20, 30, 30], [60, 60, 69, 69], [40, 40, 52, 52]]


# ----------------------------------------------------------------------------- pseudo_mask_choices.py

def test_pseudo_mask_choices_names_and_a_tiny_run(tmp_path):
    "A choice is a base plus changes; a one-photo run writes a result row with its settings, recall and area."
    pmc = _load("pseudo_mask_choices")
    s = pmc.settings_of("paper + union + K 2..8 + close + fill")
    assert s["ks"] == tuple(range(2, 9)) and s["clusters"] == "union" and s["smooth"] == ("close", "fill")
    assert s["height"] == 384 and pmc.settings_of("scale")["height"] == "counter"
    with pytest.raises(KeyError, match="a base of"): pmc.settings_of("paper + blur")
    out = tmp_path / "choices.json"
    r = subprocess.run([sys.executable, str(SCRIPTS / "pseudo_mask_choices.py"), "--choices", "paper + union + dilate",
                        "--sets", "val", "--limit", "1", "--per-image", "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (row,) = json.loads(out.read_text())["results"]
    assert row["choice"] == "paper + union + dilate" and row["set"] == "val" and row["mode"] == "fast" and row["n"] == 1
    assert row["settings"]["clusters"] == "union" and row["settings"]["smooth"] == ["dilate"]
    assert 0 <= row["recall"] <= 1 and 0 < row["area"] <= 1 and len(row["images"]) == 1
    assert "paper + union + dilate" in r.stdout                                # the printed table


def test_photo_sprite_filter_keeps_photographs_not_drawings():
    "A stamp is kept by its distinct colours per opaque pixel: a textured object passes, a flat drawing does not."
    sys.path.insert(0, str(SCRIPTS))                       # the script imports fetch_deb from fetch_photos
    try: fps = _load("fetch_photo_sprites")
    finally: sys.path.remove(str(SCRIPTS))
    rng = np.random.default_rng(0)
    photo = np.zeros((60, 80, 4), np.uint8)
    photo[..., :3] = rng.integers(0, 256, (60, 80, 3)); photo[10:50, 10:70, 3] = 255   # a textured object
    drawing = photo.copy(); drawing[..., :3] = (200, 30, 30)                             # one flat fill
    assert fps.colour_share(Image.fromarray(photo)) >= fps.MIN_COLOUR_SHARE
    assert fps.colour_share(Image.fromarray(drawing)) < 0.01
    tiny = np.zeros((10, 10, 4), np.uint8); tiny[..., 3] = 255                           # too few pixels to judge
    assert fps.colour_share(Image.fromarray(tiny)) == 0.0
