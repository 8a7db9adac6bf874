"""Seeded generator of synthetic manifest repositories for the benchmarks (bench/README.md).

    python bench/generate.py --assets N --seed S OUT_DIR [--git] [--variant 2]
    python bench/generate.py --assets N --seed S OUT_DIR --edit [--git]

writes `OUT_DIR/manifests/fleet-XXXX.yaml`: one Fleet document per file, 1,000
assets each (the last file takes the remainder). Every asset has an
`externalAssetId` (unique across the repository), a `name`, a `type`,
`attributes` with 4–6 keys of mixed types (strings, integers, floats, booleans,
an occasional null or unquoted YAML date) and `labels` with 1–2 keys, written in
the style of `manifests/fleets/*.yaml` (mostly flow mappings, some block ones).

The output is a pure function of (N, seed, variant): each file is generated
from its own RNG, so `--variant 2` (or `generate(..., variant=2)`) differs from
variant 1 in exactly one file, `fleet-0000.yaml`: a few assets change
attributes, one asset is added and one removed. `--edit` turns an existing
variant-1 tree into variant 2 in place (and, with `--git`, commits it as a
second commit) — the input of a warm re-plan benchmark. With `--git` commits
use a fixed author and date, so the same inputs give the same commit SHA.

Importable: `generate(out_dir, n_assets, seed, git=False, variant=1)` and
`edit_to_v2(out_dir, n_assets, seed, git=False)`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ASSETS_PER_FILE = 1000
MANIFEST_DIR = "manifests"
V2_FILE_INDEX = 0  # the one file variant 2 changes

_TYPES = {
    # type: (id prefix, display name, makes/models)
    "truck": ("TRK", "Truck", ["Volvo FH16", "Volvo FH12", "Scania R500", "MAN TGX", "DAF XF"]),
    "trailer": ("TRL", "Trailer", ["Krone SD", "Schmitz S.KO", "Kogel Cargo"]),
    "van": ("VAN", "Van", ["Ford Transit", "Mercedes Sprinter", "Renault Master"]),
    "excavator": ("EXC", "Excavator", ["CAT 320", "Komatsu PC210", "Volvo EC220E"]),
    "forklift": ("FLT", "Forklift", ["Toyota 8FBE", "Linde E20", "Jungheinrich EFG"]),
    "generator": ("GEN", "Generator", ["Cummins C250", "Atlas QAS 100"]),
    "tank": ("TANK", "Tank", ["Steel 20k", "Poly 35k"]),
    "bus": ("BUS", "Bus", ["Solaris Urbino", "MAN Lion's City", "Volvo 7900"]),
}
_TYPE_NAMES = list(_TYPES)
_DEPOTS = ["north", "south", "east", "west", "central", "harbour", "airport", "rail"]
_SITES = ["SL", "PHI", "NYC", "BER", "LYS", "OSL", "MAD", "WAW", "RTM", "GDN"]
_FUELS = ["diesel", "electric", "hybrid", "lpg", "hvo"]
_COLOURS = ["white", "red", "blue", "yellow", "silver", "green", "black"]
_TIERS = ["production", "staging", "reserve"]
_CLASSES = ["heavy", "medium", "light", "storage", "power", "lifting"]

_PLAIN_SAFE = re.compile(r"^[A-Za-z][A-Za-z0-9 ._-]*[A-Za-z0-9]$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _str(value: str) -> str:
    """A YAML scalar for a string: plain when unambiguous, else JSON-quoted (valid YAML)."""
    if _PLAIN_SAFE.match(value) and value.lower() not in _YAML_WORDS and ": " not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, _Date):
        return value.text  # unquoted: YAML 1.2 loads it as a date
    return _str(str(value))


class _Date:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _attributes(rng: random.Random, type_name: str, make_model: str) -> dict[str, object]:
    """4–6 attributes of mixed types; `make`/`model` always, the rest drawn from a pool."""
    make, _, model = make_model.partition(" ")
    attrs: dict[str, object] = {"make": make, "model": model or make}
    pool: list[tuple[str, object]] = [
        ("year", rng.randint(2005, 2025)),
        ("odometerKm", rng.randint(0, 1_200_000)),
        ("payloadTonnes", round(rng.uniform(0.5, 44.0), 1)),
        ("electric", rng.random() < 0.2),
        ("fuel", rng.choice(_FUELS)),
        ("colour", rng.choice(_COLOURS)),
        ("site", rng.choice(_SITES)),
        ("vin", "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(17))),
        ("firmware", f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"),
        (
            "commissioned",
            _Date(f"{rng.randint(2010, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"),
        ),
        ("engineHours", round(rng.uniform(0, 40_000), 2)),
        ("telematicsId", None if rng.random() < 0.1 else f"tm-{rng.randrange(16**8):08x}"),
    ]
    for key, value in rng.sample(pool, rng.randint(2, 4)):
        attrs[key] = value
    return attrs


def _labels(rng: random.Random) -> dict[str, str]:
    labels = {"class": rng.choice(_CLASSES)}
    if rng.random() < 0.5:
        labels["depot"] = rng.choice(_DEPOTS)
    return labels


def _flow(mapping: dict[str, object]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in mapping.items()) + "}"


def _asset(rng: random.Random, index: int) -> dict[str, object]:
    type_name = rng.choice(_TYPE_NAMES)
    prefix, display, models = _TYPES[type_name]
    make_model = rng.choice(models)
    return {
        "externalAssetId": f"{prefix}-{index:07d}",
        "name": f"{make_model} no. {index}",
        "type": type_name,
        "attributes": _attributes(rng, type_name, make_model),
        "labels": _labels(rng),
        "_block": rng.random() < 0.25,  # written in block style
    }


def _render_asset(asset: dict[str, object]) -> str:
    lines = [
        f"    - externalAssetId: {_str(str(asset['externalAssetId']))}",
        f"      name: {_str(str(asset['name']))}",
        f"      type: {asset['type']}",
    ]
    attrs = asset["attributes"]
    labels = asset["labels"]
    assert isinstance(attrs, dict) and isinstance(labels, dict)
    if asset["_block"]:
        lines.append("      attributes:")
        lines.extend(f"        {k}: {_scalar(v)}" for k, v in attrs.items())
        lines.append("      labels:")
        lines.extend(f"        {k}: {_scalar(v)}" for k, v in labels.items())
    else:
        lines.append(f"      attributes: {_flow(attrs)}")
        lines.append(f"      labels: {_flow(labels)}")
    return "\n".join(lines)


def _file_assets(seed: int, file_index: int, first: int, count: int) -> list[dict[str, object]]:
    rng = random.Random(f"fleetward-bench:{seed}:{file_index}")
    return [_asset(rng, first + i) for i in range(count)]


def _v2_edit(assets: list[dict[str, object]], seed: int, n_assets: int) -> list[dict[str, object]]:
    """Variant 2 of one file: 5 assets change attributes, 1 is removed, 1 is added."""
    rng = random.Random(f"fleetward-bench-v2:{seed}")
    assets = [dict(a, attributes=dict(a["attributes"])) for a in assets]  # type: ignore[call-overload]
    for a in rng.sample(assets[:-1], min(5, len(assets) - 1)):
        attrs = a["attributes"]
        attrs["model"] = str(attrs["model"]) + " (refit)"
        attrs["odometerKm"] = rng.randint(0, 1_200_000)
    assets.pop()  # the last asset leaves the fleet: a stop
    assets.append(_asset(rng, n_assets))  # a new id past every v1 id: a create
    return assets


def render_file(seed: int, file_index: int, n_assets: int, variant: int = 1) -> str:
    first = file_index * ASSETS_PER_FILE
    count = min(ASSETS_PER_FILE, n_assets - first)
    assets = _file_assets(seed, file_index, first, count)
    if variant == 2 and file_index == V2_FILE_INDEX:
        assets = _v2_edit(assets, seed, n_assets)
    rng = random.Random(f"fleetward-bench-meta:{seed}:{file_index}")
    name = f"fleet-{file_index:04d}"
    head = [
        f"# Synthetic fleet {file_index} (fleetward bench, seed {seed}).",
        "apiVersion: fleetward/v1",
        "kind: Fleet",
        "metadata:",
        f"  name: {name}",
        f"  labels: {{region: {rng.choice(_DEPOTS)}, tier: {rng.choice(_TIERS)}}}",
        "spec:",
        f"  description: {_str(f'Synthetic fleet {file_index} of {len(assets)} assets')}",
        "  assets:",
    ]
    return "\n".join(head + [_render_asset(a) for a in assets]) + "\n"


def file_count(n_assets: int) -> int:
    return (n_assets + ASSETS_PER_FILE - 1) // ASSETS_PER_FILE


def file_path(out_dir: Path | str, file_index: int) -> Path:
    return Path(out_dir) / MANIFEST_DIR / f"fleet-{file_index:04d}.yaml"


def generate(
    out_dir: Path | str, n_assets: int, seed: int = 0, *, git: bool = False, variant: int = 1
) -> Path:
    """Write a fresh synthetic repository (replacing `out_dir/manifests`); return `out_dir`."""
    if n_assets < 1:
        raise ValueError("n_assets must be at least 1")
    if variant not in (1, 2):
        raise ValueError("variant is 1 or 2")
    out = Path(out_dir)
    manifests = out / MANIFEST_DIR
    if manifests.exists():
        shutil.rmtree(manifests)
    if git and (out / ".git").exists():
        shutil.rmtree(out / ".git")
    manifests.mkdir(parents=True)
    for i in range(file_count(n_assets)):
        file_path(out, i).write_text(render_file(seed, i, n_assets, variant), encoding="utf-8")
    if git:
        _git(out, "init", "-q", "-b", "main")
        _git(out, "add", "-A", MANIFEST_DIR)
        _git(
            out,
            "commit",
            "-q",
            "-m",
            f"Synthetic fleets: {n_assets} assets, seed {seed}, v{variant}",
        )
    return out



def cached(
    workdir: Path, n_assets: int, seed: int = 0, log: Callable[[str], None] | None = None
) -> Path:
    """A generated git repository for N under `workdir`, reused while this generator (its
    source file), N and the seed are unchanged; generated (and logged) otherwise."""
    repo = workdir / f"repo-{n_assets}-s{seed}"
    stamp = workdir / f"repo-{n_assets}-s{seed}.stamp"
    want = hashlib.sha256(Path(__file__).read_bytes()).hexdigest() + f":{n_assets}:{seed}"
    if (repo / ".git").exists() and stamp.exists() and stamp.read_text() == want:
        return repo
    started = time.perf_counter()
    stamp.unlink(missing_ok=True)
    generate(repo, n_assets, seed, git=True)
    stamp.write_text(want)
    if log is not None:
        log(f"  generated {n_assets:,} assets in {time.perf_counter() - started:.1f} s -> {repo}")
    return repo

def edit_to_v2(out_dir: Path | str, n_assets: int, seed: int = 0, *, git: bool = False) -> Path:
    """Turn a variant-1 tree into variant 2 by rewriting its one changed file; return that file."""
    path = file_path(out_dir, V2_FILE_INDEX)
    path.write_text(render_file(seed, V2_FILE_INDEX, n_assets, variant=2), encoding="utf-8")
    if git:
        _git(Path(out_dir), "add", str(path.relative_to(out_dir)))
        _git(Path(out_dir), "commit", "-q", "-m", "v2: edit one fleet")
    return path


_GIT_ENV = {
    "GIT_AUTHOR_NAME": "fleetward bench",
    "GIT_AUTHOR_EMAIL": "bench@fleetward.invalid",
    "GIT_COMMITTER_NAME": "fleetward bench",
    "GIT_COMMITTER_EMAIL": "bench@fleetward.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, **_GIT_ENV, "HOME": str(repo)}  # no user config: reproducible commits
    subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env=env,
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--assets", type=int, required=True, help="number of assets (N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--git", action="store_true", help="make OUT_DIR a git repository with one commit"
    )
    parser.add_argument(
        "--variant", type=int, choices=(1, 2), default=1, help="write variant 1 or 2"
    )
    parser.add_argument(
        "--edit",
        action="store_true",
        help="turn an existing variant-1 tree into variant 2 in place (one file; a second commit with --git)",
    )
    args = parser.parse_args(argv)
    if args.edit:
        path = edit_to_v2(args.out_dir, args.assets, args.seed, git=args.git)
        print(f"edited {path}")
        return 0
    generate(args.out_dir, args.assets, args.seed, git=args.git, variant=args.variant)
    size = sum(p.stat().st_size for p in (args.out_dir / MANIFEST_DIR).iterdir())
    print(
        f"wrote {file_count(args.assets)} file(s), {args.assets} assets, "
        f"{size / 1e6:.1f} MB under {args.out_dir / MANIFEST_DIR}"
        + (" (git, 1 commit)" if args.git else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
