"The `segcount` command-line contract (DESIGN.md §4), run in-process on the embedded default model."
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

from segcount.cli import main
from segcount.data import read_groups

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
COINS = ROOT / "segcount/assets/examples/coins.png"
BOXES = [["--box", "336", "248", "382", "289"], ["--box", "80", "175", "124", "217"]]

def run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err

def test_count_json_contract(capsys):
    rc, out, err = run(["count", str(COINS), *BOXES[0], *BOXES[1], "--json", "--device", "cpu"], capsys)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1                                   # exactly one JSON object on stdout
    res = json.loads(lines[0])
    assert {"count", "method", "weights", "seconds"} <= set(res)
    assert res["method"] == "count" and res["weights"].startswith("embedded:")
    assert isinstance(res["count"], float) and res["count"] > 0
    assert res["image_size"] == [384, 303] and res["n_exemplars"] == 2

def test_count_density_out(tmp_path, capsys):
    out_npy = tmp_path / "d.npy"
    rc, out, err = run(["count", str(COINS), *BOXES[0], "--json", "--density-out", str(out_npy)], capsys)
    assert rc == 0, err
    d = np.load(out_npy)
    np.testing.assert_allclose(d.sum(), json.loads(out)["count"], rtol=1e-4)

@pytest.mark.parametrize("argv,needle", [
    (["count", "missing.jpg", "--box", "1", "1", "20", "20"], "missing.jpg"),
    (["count", str(COINS)], "no exemplar boxes"),
    (["count", str(COINS), "--box", "50", "50", "40", "60"], "x2 <= x1"),
    (["count", str(COINS), "--box", "350", "250", "500", "290"], "box 1"),
    (["count", str(COINS), "--box", "10", "10", "12", "12"], "smaller than"),
    (["count", str(COINS), "--box", "10", "10", "40", "40", "--weights", "nope.safetensors"], "nope.safetensors"),
])
def test_user_errors_are_one_line(argv, needle, capsys):
    rc, out, err = run(argv, capsys)
    assert rc == 2 and out == ""
    assert err.startswith("segcount: error:") and err.count("\n") == 1 and needle in err, err

def test_not_an_image(tmp_path, capsys):
    bad = tmp_path / "photo.jpg"; bad.write_text("this is not a JPEG")
    rc, out, err = run(["count", str(bad), "--box", "1", "1", "20", "20"], capsys)
    assert rc == 2 and "photo.jpg" in err and "Traceback" not in err

def test_wrong_checkpoint(tmp_path, capsys):
    fake = tmp_path / "model.safetensors"; fake.write_bytes(b"\x00" * 64)
    rc, out, err = run(["count", str(COINS), *BOXES[0], "--weights", str(fake)], capsys)
    assert rc == 2 and "model.safetensors" in err

def test_huge_image_boxes_in_own_pixels(tmp_path, capsys):
    "A 12000x9000 photo is counted with bounded memory; its boxes stay in the photo's own pixels."
    big = Image.open(COINS).convert("RGB").resize((12000, 9000), Image.NEAREST)
    p = tmp_path / "big.jpg"; big.save(p, quality=80)
    fx, fy = 12000 / 384, 9000 / 303                      # coins.png is 384x303
    box = [str(round(v * f)) for v, f in zip((336, 248, 382, 289), (fx, fy, fx, fy))]
    rc, out, err = run(["count", str(p), "--box", *box, "--json"], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["image_size"] == [12000, 9000]
    rc2, out2, _ = run(["count", str(COINS), *BOXES[0], "--json"], capsys)
    # the same scene at 31x the resolution gives a count of the same order
    assert 0.5 < res["count"] / json.loads(out2)["count"] < 2.0

def test_evaluate_groups(capsys):
    g = ROOT / "evalsets/real/groups.json"
    rc, out, err = run(["evaluate", "--groups", str(g), "--limit", "2", "--json", "--quiet"], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert {"n", "MAE", "RMSE", "NAE", "SRE", "method"} <= set(res) and res["n"] == 2
    rows = res["rows"]
    # MAE is the mean of the per-entry |y - ŷ| (§4.2)
    assert abs(res["MAE"] - np.mean([abs(r["gt"] - r["pred"]) for r in rows])) < 1e-6

def test_evaluate_needs_one_source(capsys):
    rc, out, err = run(["evaluate", "--json"], capsys)
    assert rc == 2 and "--root" in err

def test_make_synthetic_cli(tmp_path, capsys):
    from segcount.synthetic import generate_scenes
    root = generate_scenes(tmp_path / "fsc", 12, seed=3, progress=False, count_range=(5, 30))
    rc, out, err = run(["make-synthetic", "--root", str(root), "--split", "train", "--out", str(tmp_path / "syn"),
                        "--seed", "1", "--n", "4", "--json"], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["n"] == 4
    entries = read_groups(res["groups"])
    assert len(entries) == 4 and all(e.region is not None for e in entries)

def test_console_script_help():
    exe = Path(sys.executable).parent / "segcount"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "count" in r.stdout and "evaluate" in r.stdout

def test_seg_then_count_with_embedded_segmenter(capsys):
    "The embedded model ships a segmenter: seg-then-count runs end to end and can only remove density."
    args = ["count", str(COINS), *BOXES[0], *BOXES[1], "--json"]
    rc, out, err = run(args, capsys)
    rc2, out2, err2 = run(args + ["--method", "seg-then-count"], capsys)
    assert rc == 0 and rc2 == 0, err2
    a, b = json.loads(out), json.loads(out2)
    assert b["method"] == "seg-then-count" and 0.0 <= b["mask_fraction"] <= 1.0
    assert b["count"] <= a["count"] + 1e-3          # masking S (Eq. 4) and gating D never add objects
    rc3, out3, _ = run(args + ["--method", "seg-then-count", "--threshold", "-1"], capsys)
    assert abs(json.loads(out3)["count"] - a["count"]) < 1e-2 * max(1.0, a["count"])   # keep-all mask = count
