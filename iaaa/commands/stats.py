"""``iaaa stats``: cells per image, SCO/MCO counts and ratio, object sizes."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from iaaa.commands._inputs import add_input_args, has_inputs, load_export_folder, load_inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="print cells per image, SCO/MCO counts and ratio, object sizes",
        description="Statistics that IAAA matches: cells per image, single-cell (SCO) and multi-cell (MCO) "
        "object counts and their ratio, object sizes; for real data and/or an iaaa synth output folder.",
    )
    add_input_args(p)
    p.add_argument("--synthetic", help="an iaaa synth output folder to compare with")
    p.add_argument("--keep-border", action="store_true", help="count objects touching the image border too")
    p.add_argument("--json", dest="json_out", help="also write the numbers to this JSON file")
    p.set_defaults(func=run)


def dataset_stats(samples: list[Any], keep_border: bool = False) -> dict[str, Any]:
    """The numbers ``iaaa stats`` prints, as a dict."""
    from iaaa.synthesis.objects import extract_objects

    counts = torch.tensor([s.num_instances for s in samples], dtype=torch.float64)
    objects = extract_objects(samples, keep_border=keep_border)
    n_sco = sum(o.kind == "sco" for o in objects)
    n_mco = len(objects) - n_sco
    sides = torch.tensor([max(o.size) for o in objects], dtype=torch.float64) if objects else torch.zeros(1, dtype=torch.float64)
    cells_in_mco = [o.num_cells for o in objects if o.kind == "mco"]
    return {
        "images": len(samples),
        "cells": int(counts.sum()),
        "cells_per_image": {"mean": float(counts.mean()), "median": float(counts.median()), "mode": int(torch.mode(counts).values), "min": int(counts.min()), "max": int(counts.max())},
        "sco": n_sco,
        "mco": n_mco,
        "sco_fraction": n_sco / max(1, len(objects)),
        "cells_per_mco": float(sum(cells_in_mco) / len(cells_in_mco)) if cells_in_mco else 0.0,
        "object_side_px": {"median": float(sides.median()), "p10": float(sides.quantile(0.1)), "p90": float(sides.quantile(0.9))},
    }


def _table(columns: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("images", lambda d: d["images"]),
        ("cells", lambda d: d["cells"]),
        ("cells/image mean", lambda d: f"{d['cells_per_image']['mean']:.1f}"),
        ("cells/image median", lambda d: f"{d['cells_per_image']['median']:.0f}"),
        ("cells/image mode", lambda d: d["cells_per_image"]["mode"]),
        ("cells/image min-max", lambda d: f"{d['cells_per_image']['min']}-{d['cells_per_image']['max']}"),
        ("SCOs", lambda d: d["sco"]),
        ("MCOs", lambda d: d["mco"]),
        ("SCO fraction", lambda d: f"{d['sco_fraction']:.3f}"),
        ("cells per MCO", lambda d: f"{d['cells_per_mco']:.2f}"),
        ("object side px p10/median/p90", lambda d: "{p10:.0f}/{median:.0f}/{p90:.0f}".format(**d["object_side_px"])),
    ]
    names = list(columns)
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{n:>12}" for n in names)]
    for label, fn in rows:
        lines.append(f"{label:{width}}  " + "  ".join(f"{str(fn(columns[n])):>12}" for n in names))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from iaaa.data.imageio import atomic_write_text
    from iaaa.errors import IaaaError

    columns = {}
    if has_inputs(args):
        columns["real"] = dataset_stats(load_inputs(args), args.keep_border)
    if args.synthetic:
        columns["synthetic"] = dataset_stats(load_export_folder(args.synthetic), args.keep_border)
    if not columns:
        raise IaaaError("nothing to describe: give input data (--images/--masks, --coco, --dsb) and/or --synthetic DIR")
    print(_table(columns))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(columns, indent=1))
    return 0
