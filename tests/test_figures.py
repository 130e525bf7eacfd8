"""tools/make_figures.py draws the README's picture from the embedded model: it runs and writes a real PNG."""
import subprocess, sys
from pathlib import Path
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

def test_make_figures_writes_the_comparison_picture(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_figures.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    f = tmp_path / "count-vs-seg-then-count.png"
    im = Image.open(f)
    assert im.size[0] >= 600 and im.size[1] >= 300           # a 2×3 grid, not an empty canvas
    assert len(im.convert("RGB").getcolors(1 << 16) or []) > 20   # density maps and photos, not a blank figure
    g = tmp_path / "counter-real-photos.png"                # the model card's gallery of real photos
    gi = Image.open(g)
    assert gi.size[1] >= 400 and len(gi.convert("RGB").getcolors(1 << 16) or []) > 20

def test_committed_picture_is_small_and_linked():
    f = ROOT / "nbs" / "images" / "count-vs-seg-then-count.png"
    assert f.is_file() and f.stat().st_size < 200_000
    assert "](nbs/images/count-vs-seg-then-count.png)" in (ROOT / "README.md").read_text()

def test_model_card_gallery_is_small_and_linked():
    f = ROOT / "nbs" / "images" / "counter-real-photos.png"
    assert f.is_file() and f.stat().st_size < 600_000
    assert "nbs/images/counter-real-photos.png" in (ROOT / "segcount" / "weights" / "MODEL_CARD.md").read_text()
