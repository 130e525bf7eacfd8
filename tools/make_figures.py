"""Draw the pictures the README and the index page show (committed as small PNGs under nbs/images/).

    python tools/make_figures.py            # uses the embedded model; a few seconds on a CPU

`count-vs-seg-then-count.png`: two two-class photos made from the bundled examples by the paper's protocol (coins
beside aerial trees), each counted by the same counter everywhere ("count everything") and inside the segmenter's
mask ("seg-then-count"), in the layout of the paper's Figure 3.

`counter-real-photos.png` (the model card's pictures): every photo of the real test set (`evalsets/real`) and of
the real validation set (`evalsets/val`), the density map over the photo, the exemplar boxes, and the true count,
the count and the exemplar-box mass in the title: where the counter works and where it fails.
"""
from pathlib import Path
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import segcount
from segcount.data import read_groups
from segcount.evaluate import plot_figure3, two_class_groups
from segcount.pipeline import Predictor

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nbs" / "images"

def _save(fig, f: Path, colours: int = 128):
    "Write `fig` as a small palette PNG (committed files stay small)."
    from PIL import Image
    fig.canvas.draw()
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).quantize(colours).save(f, optimize=True)
    plt.close(fig)
    print(f"wrote {f}")
    return f

def counter_gallery(pr, sets: dict, f: Path, ncols: int = 6, side: float = 2.3):
    "One panel per entry of each groups file in `sets` ({label: path}): density over the photo, boxes, counts."
    from segcount.evaluate import exemplar_box_mass
    entries = [(label, s) for label, path in sets.items() if Path(path).is_file() for s in read_groups(path)]
    nrows = -(-len(entries) // ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(side * ncols, side * nrows * 0.95), squeeze=False)
    for ax in axs.flat: ax.axis("off")
    for ax, (label, s) in zip(axs.flat, entries):
        p = pr.predict(s.image, s.boxes)
        img = np.asarray(s.image.convert("RGB").resize(p.density.shape[::-1]))
        ax.imshow(img); ax.imshow(p.density, cmap="magma", alpha=0.55)
        for x1, y1, x2, y2 in np.asarray(s.boxes) * p.scale:
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="cyan", lw=1))
        ax.set_title(f"{label}: {s.name[:22]}\ntrue {s.count}, counted {p.count:.0f}, box mass "
                     f"{exemplar_box_mass(p, s.boxes):.2f}", fontsize=6.5)
    fig.tight_layout()
    return _save(fig, f)

def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="draw the README's pictures")
    ap.add_argument("--out", type=Path, default=OUT, help=f"folder to write to (default {OUT})")
    out = ap.parse_args(argv).out
    ex = read_groups(Path(segcount.__file__).parent / "assets" / "examples" / "examples.json")
    pairs = two_class_groups([ex[0], ex[1]], per_target=1, seed=0)     # coins | trees, trees | coins
    pr = Predictor.from_weights(device="cpu")
    fig, axs = plt.subplots(len(pairs), 3, figsize=(10, 3.1 * len(pairs)), squeeze=False)
    plot_figure3(pr, pairs, axs=axs)
    fig.suptitle("same counter, same exemplars: counting everything vs seg-then-count (count in the corner)", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    f = _save(fig, out / "count-vs-seg-then-count.png")
    counter_gallery(pr, {"test": ROOT / "evalsets/real/groups.json", "val": ROOT / "evalsets/val/groups.json"},
                    out / "counter-real-photos.png")
    return f

if __name__ == "__main__":
    main()
