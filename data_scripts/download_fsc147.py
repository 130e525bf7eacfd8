#!/usr/bin/env python3
"""Fetch FSC-147 (Ranjan et al., CVPR 2021) into the FSC-147 layout that `segcount` reads.

    python data_scripts/download_fsc147.py --out data/FSC-147            # images + annotations
    python data_scripts/download_fsc147.py --out data/FSC-147 --with-density
    python data_scripts/download_fsc147.py --print-manifest > my.json    # edit URLs / pin sha256
    python data_scripts/download_fsc147.py --out data/FSC-147 --manifest my.json

The result is the layout of DESIGN.md section 3:

    OUT/annotation_FSC147_384.json  OUT/Train_Test_Val_FSC_147.json  OUT/ImageClasses_FSC147.txt
    OUT/images_384_VarV2/*.jpg      OUT/gt_density_map_adaptive_384_VarV2/*.npy   (optional)

Sources (the official repository github.com/cvlab-stonybrook/LearningToCountEverything):
the three annotation files come from its `data/` folder (raw.githubusercontent.com); its README
links the images (`FSC147_384_V2.zip`, Google Drive file 1ymDYrGs9DSRicfZbSCDiOu0ikGDh5k6S) and
the precomputed density maps (archive.org item `FSC147-GT`). Hosts move files: every URL is a
manifest entry, and `--manifest FILE` or `--base-url URL` (a mirror holding the files under their
manifest names) replaces them.

Behaviour:
* resumable: bytes arrive in `NAME.part` and a re-run continues it with an HTTP Range request;
* verified: a file becomes final (`os.replace`) only after its size and sha256 check out. The
  upstream files carry no published checksums, so the default manifest pins none: such files are
  checked structurally instead (a zip's CRCs while unpacking, a JSON file must parse) and the
  computed sha256 is printed so you can pin it (`--require-checksums` makes a missing pin an error);
* archives are unpacked into a staging folder first and their members moved into place, wherever
  the layout's names sit inside the zip (e.g. `FSC147_384_V2/images_384_VarV2/2.jpg`);
* errors are one line on stderr (`download_fsc147: error: ...`) and the exit status is 1
  (2 for bad arguments). A file that is already complete and verified is not fetched again.

Only the standard library and tqdm (for progress bars with transfer rates) are needed.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm is a segcount dependency; degrade to no bars
    tqdm = None

PROG = "download_fsc147"
MANIFEST_FORMAT = "segcount-download-manifest/1"
USER_AGENT = "segcount-data-scripts/1 (+https://github.com/segcount/segcount)"
CHUNK = 1 << 16

# Names of the FSC-147 layout (DESIGN.md section 3); zip members are re-rooted at the first
# path component that is one of these.
LAYOUT_FILES = ("annotation_FSC147_384.json", "Train_Test_Val_FSC_147.json", "ImageClasses_FSC147.txt")
LAYOUT_DIRS = ("images_384_VarV2", "gt_density_map_adaptive_384_VarV2")

REPO_RAW = "https://raw.githubusercontent.com/cvlab-stonybrook/LearningToCountEverything/master/data"
GDRIVE_IMAGES_ID = "1ymDYrGs9DSRicfZbSCDiOu0ikGDh5k6S"

DEFAULT_MANIFEST = {
    "format": MANIFEST_FORMAT,
    "source": "https://github.com/cvlab-stonybrook/LearningToCountEverything",
    "files": [
        {"name": "annotation_FSC147_384.json", "kind": "file",
         "url": f"{REPO_RAW}/annotation_FSC147_384.json", "sha256": None},
        {"name": "Train_Test_Val_FSC_147.json", "kind": "file",
         "url": f"{REPO_RAW}/Train_Test_Val_FSC_147.json", "sha256": None},
        {"name": "ImageClasses_FSC147.txt", "kind": "file",
         "url": f"{REPO_RAW}/ImageClasses_FSC147.txt", "sha256": None},
        {"name": "FSC147_384_V2.zip", "kind": "zip",
         "url": ("https://drive.usercontent.google.com/download"
                 f"?id={GDRIVE_IMAGES_ID}&export=download&confirm=t"),
         "page": f"https://drive.google.com/file/d/{GDRIVE_IMAGES_ID}/view",
         "provides": ["images_384_VarV2"], "sha256": None},
        {"name": "FSC147_GT.zip", "kind": "zip", "optional": True,
         "url": "https://archive.org/download/FSC147-GT/FSC147_GT.zip",
         "page": "https://archive.org/details/FSC147-GT",
         "provides": ["gt_density_map_adaptive_384_VarV2"], "sha256": None,
         # whatever folder the archive uses, its .npy files are the density maps
         "loose_into": "gt_density_map_adaptive_384_VarV2", "loose_glob": "*.npy"},
    ],
}


class DownloadError(Exception):
    """A one-line, user-facing failure (missing, truncated or corrupt file, bad manifest)."""


# ----------------------------------------------------------------------------- manifest

def load_manifest(path=None, base_url=None):
    "The manifest as a dict (default one, or `path`), with every entry's `url` resolved."
    if path is None:
        man = json.loads(json.dumps(DEFAULT_MANIFEST))
        src = "default manifest"
    else:
        src = str(path)
        try:
            man = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DownloadError(f"{src}: manifest file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DownloadError(f"{src}: manifest is not valid JSON ({e})") from None
    if not isinstance(man, dict) or not isinstance(man.get("files"), list) or not man["files"]:
        raise DownloadError(f"{src}: manifest needs a non-empty 'files' list")
    base = base_url or man.get("base_url")
    seen = set()
    for i, f in enumerate(man["files"]):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
            raise DownloadError(f"{src}: entry {i} needs a 'name'")
        name = f["name"]
        if "/" in name or "\\" in name or name in (".", ".."):
            raise DownloadError(f"{src}: entry {i}: name {name!r} must be a plain file name")
        if name in seen:
            raise DownloadError(f"{src}: entry {i}: duplicate name {name!r}")
        seen.add(name)
        f.setdefault("kind", "zip" if name.lower().endswith(".zip") else "file")
        if f["kind"] not in ("file", "zip"):
            raise DownloadError(f"{src}: {name}: kind must be 'file' or 'zip', not {f['kind']!r}")
        sha = f.get("sha256")
        if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha)):
            raise DownloadError(f"{src}: {name}: sha256 must be 64 hex digits or null")
        if base_url:  # a mirror: every file under its manifest name
            f["url"] = base_url.rstrip("/") + "/" + urllib.parse.quote(name)
        elif base and f.get("url") and not urllib.parse.urlparse(f["url"]).scheme:
            f["url"] = urllib.parse.urljoin(base.rstrip("/") + "/", f["url"])
        elif base and not f.get("url"):
            f["url"] = base.rstrip("/") + "/" + urllib.parse.quote(name)
        if not f.get("url"):
            raise DownloadError(f"{src}: {name}: no 'url' (give one, or a base_url / --base-url)")
    return man


# ----------------------------------------------------------------------------- helpers

def sha256_file(path, desc=None, quiet=False):
    h = hashlib.sha256()
    size = os.path.getsize(path)
    bar = _bar(size, f"verify {desc or Path(path).name}", quiet) if size > 64 * CHUNK else None
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            if bar is not None:
                bar.update(len(block))
    if bar is not None:
        bar.close()
    return h.hexdigest()


def _bar(total, desc, quiet, initial=0):
    if quiet or tqdm is None:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, dynamic_ncols=True, leave=True)


def _log(msg, quiet=False):
    if not quiet:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _content_range_start(value):
    "Start offset of a `Content-Range: bytes START-END/TOTAL` header, and TOTAL (or None)."
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


# ----------------------------------------------------------------------------- download

def fetch(entry, dest: Path, retries=3, timeout=60, quiet=False):
    """Download `entry['url']` to `dest`, through `dest.part`, resuming a partial `.part`.

    Returns the sha256 of the verified file. `dest` only appears once size and checksum (if
    pinned) are right. A truncated transfer keeps the `.part` (a re-run resumes it); a checksum
    mismatch removes it (resuming cannot repair wrong bytes).
    """
    name, url, want_sha = entry["name"], entry["url"], entry.get("sha256")
    want_size = entry.get("size")
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    attempt, followed = 0, False
    while True:
        attempt += 1
        try:
            total = _transfer(name, url, part, timeout=timeout, quiet=quiet, want_size=want_size)
            break
        except _FollowForm as e:
            if followed:
                raise DownloadError(
                    f"{name}: the server keeps answering with a web page instead of the file "
                    f"({url}); download it in a browser, put it at {dest} and re-run") from None
            followed, url, attempt = True, str(e), attempt - 1
            _log(f"{name}: following the host's download confirmation", quiet)
        except _Transient as e:
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"{name}: download interrupted after {have} bytes ({e}); the partial file "
                    f"{part} is kept: re-run to resume") from None
            _log(f"{name}: {e}; retrying ({attempt}/{retries}) from byte "
                 f"{part.stat().st_size if part.exists() else 0}", quiet)
            time.sleep(min(2 ** attempt, 10) * 0.25)
    have = part.stat().st_size
    if total is None and want_size is not None and have < int(want_size):
        total = int(want_size)  # no length from the server: the manifest's size tells
    if total is not None and have < total:
        raise DownloadError(
            f"{name}: truncated download: {have} of {total} bytes; the partial file {part} is "
            f"kept: re-run to resume")
    if want_size is not None and have != int(want_size):
        _remove(part)
        raise DownloadError(
            f"{name}: size mismatch: got {have} bytes, the manifest says {want_size}; removed "
            f"{part.name}: re-run, or fix the manifest if the upstream file changed")
    got = sha256_file(part, name, quiet)
    if want_sha and got.lower() != want_sha.lower():
        _remove(part)
        raise DownloadError(
            f"{name}: checksum mismatch: sha256 {got}, expected {want_sha.lower()}; removed the "
            f"corrupt download {part.name}: re-run to fetch it again (if it fails again the file "
            f"upstream changed: check it and update the manifest)")
    _check_content(entry, part)
    os.replace(part, dest)
    return got


class _Transient(Exception):
    "A network hiccup worth retrying (connection reset, timeout, short read)."


class _FollowForm(Exception):
    "The server answered with a confirmation page whose download form leads to the file."


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms, self._cur = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"id": a.get("id") or "", "action": a.get("action") or "",
                         "method": (a.get("method") or "get").lower(), "fields": []}
            self.forms.append(self._cur)
        elif tag == "input" and self._cur is not None and a.get("type") == "hidden" and a.get("name"):
            self._cur["fields"].append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def download_form_url(page, page_url):
    "URL behind a confirmation page's GET download form (id or action naming 'download'), or None."
    p = _FormParser()
    try:
        p.feed(page)
    except Exception:
        return None
    for f in p.forms:
        if f["method"] == "get" and f["action"] and ("download" in f["id"].lower()
                                                     or "download" in f["action"].lower()):
            action = urllib.parse.urljoin(page_url, f["action"])
            return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(f["fields"])
    return None


def _transfer(name, url, part: Path, timeout, quiet, want_size=None):
    "One HTTP attempt appending to `part`. Returns the expected total size (or None)."
    start = part.stat().st_size if part.exists() else 0
    if want_size is not None and start > int(want_size):
        _remove(part)
        start = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing after `start`: the .part may be complete
            total = _content_range_start(e.headers.get("Content-Range", ""))[1]
            e.close()
            if total is None or total == start:
                return start
            _remove(part)  # the .part is longer than the file: start again
            raise _Transient(f"partial file longer than the remote file ({start} > {total})")
        e.close()
        if e.code in (500, 502, 503, 504, 429):
            raise _Transient(f"HTTP {e.code} {e.reason}")
        hint = ("the file is missing or has moved: pass --base-url or --manifest with a working "
                "URL" if e.code in (404, 410) else "check the URL, or pass --manifest")
        raise DownloadError(f"{name}: HTTP {e.code} {e.reason} for {url}; {hint}") from None
    except urllib.error.URLError as e:
        raise _Transient(f"cannot connect: {e.reason}") from None
    except (TimeoutError, ConnectionError, OSError) as e:
        raise _Transient(str(e) or type(e).__name__) from None

    with resp:
        ctype = resp.headers.get("Content-Type", "") or ""
        if "text/html" in ctype.lower() and not name.lower().endswith((".html", ".htm")):
            page = resp.read(1 << 20).decode("utf-8", "replace")
            nxt = download_form_url(page, resp.geturl())
            if nxt:  # e.g. Google Drive's "can't scan this file for viruses" page
                raise _FollowForm(nxt)
            raise DownloadError(
                f"{name}: the server sent a web page instead of the file ({url}); the host may ask "
                f"for a confirmation or be over its quota: download it in a browser, put it at "
                f"{part.with_suffix('')} and re-run")
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if start and resp.status == 206:
            rstart, total = _content_range_start(resp.headers.get("Content-Range", ""))
            if rstart != start:
                raise _Transient(f"server resumed at byte {rstart}, expected {start}")
            if total is None and length is not None:
                total = start + length
            mode = "ab"
        else:  # 200: the server ignored the Range (or there was none) -> start from scratch
            if start:
                _log(f"{name}: server does not support resuming; starting over", quiet)
            start, total, mode = 0, length, "wb"
        bar = _bar(total, name, quiet, initial=start)
        got = start
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (TimeoutError, ConnectionError, OSError) as e:
                        raise _Transient(f"connection lost: {e or type(e).__name__}") from None
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and got < total:
            raise _Transient(f"connection closed early at byte {got} of {total}")
        return total


def _check_content(entry, path):
    "Structural checks for files without a pinned checksum (and cheap ones for all)."
    name = entry["name"]
    if entry["kind"] == "zip":
        if not zipfile.is_zipfile(path):
            _remove(path)
            raise DownloadError(f"{name}: not a zip archive (corrupt or wrong file); removed it: "
                                f"re-run, or check the URL")
    elif name.lower().endswith(".json"):
        try:
            json.loads(Path(path).read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            _remove(path)
            raise DownloadError(f"{name}: downloaded file is not valid JSON ({e}); removed it: "
                                f"re-run, or check the URL") from None


# ----------------------------------------------------------------------------- unpacking

def _layout_target(member: str, entry=None):
    """Relative destination of a zip member in the FSC-147 layout, or None to skip it.

    A member goes where its path meets a layout name; an entry's `loose_into` folder takes the
    members matching its `loose_glob` that sit elsewhere (by file name)."""
    parts = [p for p in member.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or parts[0] == "__MACOSX" or parts[-1].startswith("._"):
        return None
    for i, p in enumerate(parts):
        if p in LAYOUT_DIRS and i + 1 < len(parts):
            rest = parts[i + 1:]
            if any(r.startswith("._") for r in rest):
                return None
            return Path(p, *rest)
        if p in LAYOUT_FILES and i == len(parts) - 1:
            return Path(p)
    loose = (entry or {}).get("loose_into")
    if loose in LAYOUT_DIRS and fnmatch.fnmatch(parts[-1], entry.get("loose_glob") or "*"):
        return Path(loose, parts[-1])
    return None


def unpack(entry, archive: Path, out: Path, skip=(), quiet=False):
    """Unpack the layout's members of `archive` into `out`, via a staging folder.

    Members land at the path that starts at their layout name (`images_384_VarV2/...`, the three
    annotation files); other members are skipped. Files named in `skip` (annotation files fetched
    on their own) are left alone. Returns the number of files placed.
    """
    name = entry["name"]
    stage = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=out))
    try:
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as e:
            raise DownloadError(f"{name}: corrupt zip archive ({e}); delete {archive} and re-run") from None
        with zf:
            members = [(m, _layout_target(m.filename, entry)) for m in zf.infolist() if not m.is_dir()]
            members = [(m, t) for m, t in members if t is not None and str(t) not in skip]
            if not members:
                raise DownloadError(
                    f"{name}: the archive holds none of the FSC-147 layout's files "
                    f"({', '.join(LAYOUT_DIRS + LAYOUT_FILES)})")
            bar = None if quiet or tqdm is None else tqdm(
                total=len(members), desc=f"unpack {name}", unit="file", file=sys.stderr,
                dynamic_ncols=True)
            for m, t in members:
                dst = stage / t
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(m) as src, open(dst, "wb") as fh:
                        shutil.copyfileobj(src, fh, CHUNK)
                except (zipfile.BadZipFile, EOFError, zlib.error) as e:
                    raise DownloadError(
                        f"{name}: corrupt member {m.filename} ({e}); delete {archive} and re-run"
                    ) from None
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        # every member read back with a good CRC: move them into place
        for _, t in members:
            dst = out / t
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / t, dst)
        return len(members)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# ----------------------------------------------------------------------------- main job

def _state_dir(out: Path):
    return out / ".downloads"


def _marker(out: Path, name: str):
    return _state_dir(out) / f"{name}.done.json"


def _read_marker(out, name):
    try:
        return json.loads(_marker(out, name).read_text())
    except (OSError, ValueError):
        return None


def _write_marker(out, name, info):
    p = _marker(out, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, p)


def process(entry, out: Path, args, skip_members=()):
    "Fetch (or reuse) one manifest entry and place it in `out`."
    name, quiet = entry["name"], args.quiet
    want = entry.get("sha256")
    if entry["kind"] == "file":
        dest = out / name
        if dest.exists():
            if not want:
                _log(f"{name}: present, kept (no pinned checksum)", quiet)
                return
            if sha256_file(dest, name, quiet) == want.lower():
                _log(f"{name}: present and verified", quiet)
                return
            _log(f"{name}: present but its checksum differs: fetching it again", quiet)
        got = fetch(entry, dest, retries=args.retries, timeout=args.timeout, quiet=quiet)
        _report_sha(entry, got, quiet)
        return
    # zip: archive kept in OUT/.downloads until unpacked; a marker records the unpack
    marker = _read_marker(out, name)
    provides = entry.get("provides") or []
    if marker and marker.get("unpacked") and all((out / p).exists() for p in provides) and (
            not want or marker.get("sha256") == want.lower()):
        _log(f"{name}: already unpacked ({marker.get('files')} files)", quiet)
        return
    archive = _state_dir(out) / name
    if archive.exists():
        got = sha256_file(archive, name, quiet)
        if want and got != want.lower():
            _remove(archive)
            _log(f"{name}: the archive on disk has the wrong checksum: fetching it again", quiet)
            got = fetch(entry, archive, retries=args.retries, timeout=args.timeout, quiet=quiet)
        else:
            _check_content(entry, archive)
    else:
        got = fetch(entry, archive, retries=args.retries, timeout=args.timeout, quiet=quiet)
    _report_sha(entry, got, quiet)
    n = unpack(entry, archive, out, skip=skip_members, quiet=quiet)
    _write_marker(out, name, {"name": name, "url": entry["url"], "sha256": got, "files": n,
                              "unpacked": True})
    if not args.keep_archives:
        _remove(archive)
    _log(f"{name}: unpacked {n} files into {out}", quiet)


def _report_sha(entry, got, quiet):
    if not entry.get("sha256"):
        _log(f"{entry['name']}: no pinned checksum in the manifest; sha256 {got}", quiet)


def check_layout(out: Path, need_images=True):
    "Sanity check of the finished layout; returns a one-line summary."
    ann_p = out / "annotation_FSC147_384.json"
    split_p = out / "Train_Test_Val_FSC_147.json"
    for p in (ann_p, split_p, out / "ImageClasses_FSC147.txt"):
        if not p.exists():
            raise DownloadError(f"{p}: missing after download")
    try:
        ann = json.loads(ann_p.read_text(encoding="utf-8"))
        split = json.loads(split_p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DownloadError(f"{out}: annotation files do not parse ({e})") from None
    if not isinstance(ann, dict) or not isinstance(split, dict):
        raise DownloadError(f"{ann_p}: expected a JSON object mapping image names to annotations")
    img_dir = out / "images_384_VarV2"
    n_split = {k: len(v) for k, v in split.items() if isinstance(v, list)}
    msg = f"{len(ann)} annotated images; splits " + ", ".join(f"{k} {v}" for k, v in n_split.items())
    if need_images:
        have = {p.name for p in img_dir.glob("*.jpg")} if img_dir.is_dir() else set()
        missing = sorted(set(ann) - have)
        if missing:
            raise DownloadError(
                f"{img_dir}: {len(missing)} of {len(ann)} annotated images are missing "
                f"(e.g. {', '.join(missing[:3])}); re-run to complete the download")
        msg += f"; {len(have)} images"
    dens = out / "gt_density_map_adaptive_384_VarV2"
    msg += f"; density maps: {len(list(dens.glob('*.npy')))}" if dens.is_dir() else "; density maps: none (made from the dots)"
    return msg


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog=PROG, description="Download FSC-147 into the FSC-147 layout (resumable, verified).")
    p.add_argument("--out", default="data/FSC-147", help="target directory (default: %(default)s)")
    p.add_argument("--manifest", help="JSON manifest with the files' URLs and sha256 "
                   "(default: the built-in one; see --print-manifest)")
    p.add_argument("--base-url", help="mirror URL holding every file under its manifest name")
    p.add_argument("--with-density", action="store_true",
                   help="also fetch the optional precomputed density maps (entries marked optional)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="fetch only these manifest entries")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep downloaded zips in OUT/.downloads after unpacking")
    p.add_argument("--require-checksums", action="store_true",
                   help="refuse entries whose sha256 the manifest does not pin")
    p.add_argument("--retries", type=int, default=3, help="retries per file on network errors")
    p.add_argument("--timeout", type=float, default=60, help="socket timeout in seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.add_argument("--print-manifest", action="store_true",
                   help="print the (resolved) manifest as JSON and exit")
    return p.parse_args(argv)


def run(argv=None):
    args = parse_args(argv)
    man = load_manifest(args.manifest, args.base_url)
    if args.print_manifest:
        print(json.dumps(man, indent=2))
        return 0
    entries = man["files"]
    if args.only:
        names = {f["name"] for f in entries}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            raise DownloadError(f"--only: no manifest entry named {', '.join(unknown)} "
                                f"(entries: {', '.join(sorted(names))})")
        entries = [f for f in entries if f["name"] in args.only]
    elif not args.with_density:
        entries = [f for f in entries if not f.get("optional")]
    if args.require_checksums:
        unpinned = [f["name"] for f in entries if not f.get("sha256")]
        if unpinned:
            raise DownloadError(f"--require-checksums: no sha256 pinned for {', '.join(unpinned)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # annotation files fetched on their own win over copies inside archives
    separate = {f["name"] for f in man["files"] if f["kind"] == "file"}
    for f in entries:
        process(f, out, args, skip_members=separate)
    if not args.only:
        _log(f"FSC-147 ready in {out}: {check_layout(out)}", args.quiet)
    return 0


def main(argv=None):
    try:
        return run(argv)
    except DownloadError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; partial downloads (*.part) are kept: re-run to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
