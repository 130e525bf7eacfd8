"""Two-class images made from the project's real photos by the paper's protocol (§4.1).

Each group of `evalsets/real/groups.json` becomes the target of `--per-target` images: a strip of its photo (holding
all its exemplar boxes) concatenated with a strip of a photo of another class; the entry's `region` is the target
strip, so `segcount evaluate --groups OUT/groups.json` scores it with |y - ŷ_in| + ŷ_out.

    python data_scripts/make_real_two_class.py --out data/real-two-class
    segcount evaluate --groups data/real-two-class/groups.json --method count --json
    segcount evaluate --groups data/real-two-class/groups.json --method seg-then-count --json
"""
import argparse
from pathlib import Path
import numpy as np
from segcount.data import read_groups, write_groups
from segcount.synthetic import make_two_class_image

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=Path, default=Path(__file__).resolve().parents[1] / "evalsets/real/groups.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-target", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    g = read_groups(a.groups)
    rng = np.random.default_rng(a.seed)
    out = []
    for i in range(len(g)):
        t = g[i]
        # another kind of object: "dead trees" and "trees" are the same kind to a viewer, so compare the last word
        others = [j for j in range(len(g)) if g[j].klass.split()[-1] != t.klass.split()[-1]]
        for j in rng.choice(others, size=min(a.per_target, len(others)), replace=False):
            s = make_two_class_image(t, g[int(j)], rng, name=f"{t.name}+{g[int(j)].name}")
            out.append(s)
    path = write_groups(a.out / "groups.json", out)
    print(f"wrote {len(out)} two-class images to {path}")

if __name__ == "__main__":
    main()
