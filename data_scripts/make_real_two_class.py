"""Two-class images made from the project's real photos by the paper's protocol (§4.1).

Each group of `evalsets/real/groups.json` becomes the target of `--per-target` images: a strip of its photo (holding
all its exemplar boxes) concatenated with a strip of a photo of another kind; the entry's `region` is the target
strip, so `segcount evaluate --groups OUT/groups.json` scores it with |y - ŷ_in| + ŷ_out.

    python data_scripts/make_real_two_class.py --out data/real-two-class
    segcount evaluate --groups data/real-two-class/groups.json --method count --json
    segcount evaluate --groups data/real-two-class/groups.json --method seg-then-count --json
    segcount table 1 --groups data/real-two-class/groups.json
"""
import argparse
from pathlib import Path
from segcount.data import read_groups, write_groups
from segcount.evaluate import two_class_groups

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=Path, default=Path(__file__).resolve().parents[1] / "evalsets/real/groups.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-target", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = two_class_groups(read_groups(a.groups), per_target=a.per_target, seed=a.seed)
    path = write_groups(a.out / "groups.json", out)
    print(f"wrote {len(out)} two-class images to {path}")

if __name__ == "__main__":
    main()
