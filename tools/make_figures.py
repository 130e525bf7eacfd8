"""Draw the pictures the README and the index page show (committed as small PNGs under nbs/images/).

    python tools/make_figures.py            # uses the embedded model; a few seconds on a CPU

`count-vs-seg-then-count.png`: two two-class photos made from the bundled examples by the paper's protocol (coins
beside aerial trees), each counted by the same counter everywhere ("count everything") and inside the segmenter's
mask ("seg-then-count"), in the layout of the paper's Figure 3.
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

OUT = Path(__file__).resolve().parents[1] / "nbs" / "images"

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
    f = out / "count-vs-seg-then-count.png"
    fig.canvas.draw()
    from PIL import Image   # a 128-colour palette keeps the committed PNG small
    Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).quantize(128).save(f, optimize=True)
    print(f"wrote {f}")
    return f

if __name__ == "__main__":
    main()
