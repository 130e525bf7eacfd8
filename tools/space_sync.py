"""The Hugging Face Space's folder, made from `demo/` with the package pinned: what the release workflow uploads
(`.github/workflows/space.yaml`) and what the Space-simulation test runs.

    python tools/space_sync.py --ref v0.2.0 --out _space           # pin the package to a tag (or a commit)
    python tools/space_sync.py --package dist/seg_then_count-0.1.0-py3-none-any.whl --out _space   # a local wheel

`demo/requirements.txt` names the package once, as `seg-then-count @ git+REPO@REF`; the copy names it as asked.
"""
import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'demo'
REPO_GIT = 'https://github.com/segcount/segcount.git'
PACKAGE_LINE = re.compile(r'^seg-then-count\s*@\s*git\+\S+$', re.M)


def space_folder(out, ref: str | None = None, package: str | None = None) -> Path:
    """Copy `demo/` to `out` with its package line pinned to git `ref` (a tag or a commit) or replaced by `package`
    (a requirement, e.g. a wheel's path). The demo's requirements must name the package exactly once."""
    if (ref is None) == (package is None): raise SystemExit('space_sync: give exactly one of --ref and --package')
    req = (DEMO / 'requirements.txt').read_text()
    if len(PACKAGE_LINE.findall(req)) != 1:
        raise SystemExit(f'space_sync: {DEMO / "requirements.txt"} must name seg-then-count @ git+... once')
    line = package if package is not None else f'seg-then-count @ git+{REPO_GIT}@{ref}'
    out = Path(out)
    if out.exists(): shutil.rmtree(out)
    shutil.copytree(DEMO, out, ignore=shutil.ignore_patterns('__pycache__', 'flagged', '.gradio'))
    (out / 'requirements.txt').write_text(PACKAGE_LINE.sub(line, req))
    return out


def sdk_version(folder=DEMO) -> str:
    "The gradio version the Space runs (`sdk_version` in the README's front matter): Spaces install it themselves."
    m = re.search(r'^sdk_version:\s*(\S+)\s*$', (Path(folder) / 'README.md').read_text(), re.M)
    if not m: raise SystemExit(f'space_sync: no sdk_version in {folder}/README.md')
    return m.group(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--ref', help='a release tag or a commit of the repository')
    ap.add_argument('--package', help='the package requirement to write instead (e.g. a local wheel)')
    ap.add_argument('--out', type=Path, required=True)
    a = ap.parse_args(argv)
    out = space_folder(a.out, a.ref, a.package)
    print(f'wrote {out} (gradio {sdk_version(out)} from the Space SDK)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
