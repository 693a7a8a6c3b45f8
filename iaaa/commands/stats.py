"""``iaaa stats``: cells per image, SCO/MCO counts and ratio, object sizes, how cells touch, exposure levels."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from iaaa.commands._inputs import add_input_args, has_inputs, load_export_folder, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of
from iaaa.synthesis.objects import GROUPINGS, ObjectConfig


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
    p.add_argument("--grouping", choices=GROUPINGS, default=ObjectConfig().grouping,
                   help="cells form one object when their masks touch ('mask') or their boxes do ('box', the paper) (default: %(default)s, the compositor's)")
    p.add_argument("--contact-reach", type=int, default=1, metavar="PX",
                   help="masks within this many pixels count as touching (default: %(default)s, the compositor's contact_reach)")
    add_threads_arg(p)
    p.add_argument("--json", dest="json_out", help="also write the numbers to this JSON file")
    p.set_defaults(func=run)


def dataset_stats(samples: list[Any], keep_border: bool = False, grouping: str = "mask", contact_reach: int = 1) -> dict[str, Any]:
    """The numbers ``iaaa stats`` prints, as a dict: cells per image, the objects the
    compositor's pools would keep (SCOs / MCOs by ``grouping``, border objects left out unless
    ``keep_border``) and the share of real cells they hold, and the image groups of mixed data
    (``group_by="auto"``: image size and cell size) with their cell-count ranges and halo widths,
    and how cells touch (:func:`~iaaa.synthesis.contacts.measure_contacts` at ``contact_reach``:
    share of touching cells, contact pixels per touching cell, cluster sizes), and the images'
    exposure: each image's background and cell median (float scale, channels averaged;
    :func:`~iaaa.synthesis.levels.intensity_anchors`) as min / median / max over the images, how
    many have a cell contrast beyond their noise, and the largest ratio between two of those
    contrasts (far above 1: mixed exposures, where ``match_intensity`` maps pasted objects to
    their destination), and the spread of the images' median cell diameters with what
    ``object_scale="auto"`` resolves to on it."""
    from iaaa.synthesis.contacts import ContactStats, measure_contacts
    from iaaa.synthesis.levels import intensity_anchors
    from iaaa.synthesis.image_groups import diameter_spread, image_diameters, survey, varied_cell_sizes
    from iaaa.synthesis.object_policy import AUTO_OBJECT_SCALE
    from iaaa.synthesis.objects import group_instances

    rule = ObjectConfig(grouping=grouping, keep_border=keep_border)

    counts = torch.tensor([s.num_instances for s in samples], dtype=torch.float64)
    n_sco = n_mco = cells = kept = 0
    cells_in_mco, sides = [], []
    contacts = ContactStats(reach=contact_reach)
    levels = []
    for s in samples:
        contacts = contacts + measure_contacts(s.labels, contact_reach)
        a = intensity_anchors(s.image, s.labels)
        if a is not None:
            levels.append(a.mean(axis=1))  # background, cells, noise sd
        g = group_instances(s.labels, rule)
        keep = torch.ones_like(g.border) if keep_border else ~g.border
        sizes = g.sizes[keep]
        cells += int(g.ids.numel())
        kept += int(sizes.sum())
        n_sco += int((sizes == 1).sum())
        n_mco += int((sizes > 1).sum())
        cells_in_mco += sizes[sizes > 1].tolist()
        b = g.boxes[keep]
        sides += torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).add(1).tolist()
    side = torch.tensor(sides or [0], dtype=torch.float64)
    diameters = image_diameters(samples, rule.min_area)
    keys, halos = survey(samples, "auto", "auto", rule.min_area, diameters=diameters)
    groups: dict[str, dict[str, Any]] = {}
    for key, smp, n in zip(keys, samples, counts.tolist()):
        h, w, d = key
        entry = groups.setdefault(f"{h}x{w}, cell ~{d} px", {"images": 0, "cells_min": int(n), "cells_max": int(n), "halo_px": halos[key]})
        entry["images"] += 1
        entry["cells_min"], entry["cells_max"] = min(entry["cells_min"], int(n)), max(entry["cells_max"], int(n))
    return {
        "images": len(samples),
        "cells": int(counts.sum()),
        "cells_per_image": {"mean": float(counts.mean()), "median": float(counts.median()), "mode": int(torch.mode(counts).values), "min": int(counts.min()), "max": int(counts.max())},
        "grouping": grouping,
        "sco": n_sco,
        "mco": n_mco,
        "sco_fraction": n_sco / max(1, n_sco + n_mco),
        "cells_per_mco": float(sum(cells_in_mco) / len(cells_in_mco)) if cells_in_mco else 0.0,
        "cells_in_objects": kept,
        # the compositor's denominator too: cells of at least min_area px (smaller fragments are never pasted)
        "cells_at_least_min_area": cells,
        "kept_share": kept / max(1, cells),
        "object_side_px": {"median": float(side.median()), "p10": float(side.quantile(0.1)), "p90": float(side.quantile(0.9))},
        "groups": groups,
        "contacts": contacts.to_dict(),
        "levels": _levels(levels),
        "diameter_spread": diameter_spread(diameters),
        "object_scale_auto": list(AUTO_OBJECT_SCALE) if varied_cell_sizes(diameters) else None,
    }


def _levels(levels: list[Any]) -> dict[str, Any]:
    """Background and cell medians over the images (min, median, max), how many images have a
    cell contrast beyond the noise (what ``match_intensity`` maps by) and the largest ratio
    between two of those contrasts (:func:`~iaaa.synthesis.levels.exposure_spread`), and what
    ``match_intensity="auto"`` resolves to on them."""
    from iaaa.synthesis.levels import exposure_spread, mixed_exposures

    if not levels:
        return {"background": None, "cells": None, "contrasted_images": 0, "contrast_spread": None, "match_intensity_auto": False}
    v = torch.tensor([[float(x) for x in a] for a in levels], dtype=torch.float64)
    contrasted, spread = exposure_spread(levels)
    return {
        "background": [float(v[:, 0].min()), float(v[:, 0].median()), float(v[:, 0].max())],
        "cells": [float(v[:, 1].min()), float(v[:, 1].median()), float(v[:, 1].max())],
        "contrasted_images": contrasted,
        "contrast_spread": spread,
        "match_intensity_auto": mixed_exposures(levels),
    }


def _triple(t: Any) -> str:
    return "-" if t is None else "/".join(f"{x:.3f}" for x in t)


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
        ("cells kept in objects", lambda d: f"{d['cells_in_objects']} of {d['cells_at_least_min_area']} ({100 * d['kept_share']:.0f}%)"),
        ("object side px p10/median/p90", lambda d: "{p10:.0f}/{median:.0f}/{p90:.0f}".format(**d["object_side_px"])),
        ("touching share", lambda d: f"{d['contacts']['touching_share']:.3f}"),
        ("contact px per touching cell", lambda d: f"{d['contacts']['mean_contact_px']:.1f}"),
        ("cells per cluster (mean)", lambda d: f"{d['contacts']['mean_cluster_size']:.2f}"),
        ("clusters of 1/2/3/4+ cells", lambda d: "/".join(str(v) for v in d["contacts"]["clusters"][:3] + [sum(d["contacts"]["clusters"][3:])])),
        ("background level min/med/max", lambda d: _triple(d["levels"]["background"])),
        ("cell level min/med/max", lambda d: _triple(d["levels"]["cells"])),
        ("images with cell contrast", lambda d: f"{d['levels']['contrasted_images']} of {d['images']}"),
        ("contrast spread (max/min)", lambda d: "-" if d["levels"]["contrast_spread"] is None else f"{d['levels']['contrast_spread']:.2f}"),
        ("match_intensity=auto", lambda d: "on" if d["levels"]["match_intensity_auto"] else "off"),
        ("cell diameter spread", lambda d: "-" if d["diameter_spread"] is None else f"{d['diameter_spread']:.2f}"),
        ("object_scale=auto", lambda d: "off" if d["object_scale_auto"] is None else "({:g}, {:g})".format(*d["object_scale_auto"])),
    ]
    names = list(columns)
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{n:>12}" for n in names)]
    for label, fn in rows:
        lines.append(f"{label:{width}}  " + "  ".join(f"{str(fn(columns[n])):>12}" for n in names))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    with torch_threads_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from iaaa.data.imageio import atomic_write_text
    from iaaa.errors import IaaaError

    columns = {}
    if not 1 <= args.contact_reach <= 8:
        raise IaaaError(f"--contact-reach: must be an integer in [1, 8], got {args.contact_reach}")
    if has_inputs(args):
        columns["real"] = dataset_stats(load_inputs(args), args.keep_border, args.grouping, args.contact_reach)
    if args.synthetic:
        columns["synthetic"] = dataset_stats(load_export_folder(args.synthetic), args.keep_border, args.grouping, args.contact_reach)
    if not columns:
        raise IaaaError("nothing to describe: give input data (--images/--masks, --coco, --dsb) and/or --synthetic DIR")
    print(_table(columns))
    for name, d in columns.items():
        print(f"{name} image groups (size, median cell diameter): cells/image range, halo")
        for key, g in d["groups"].items():
            print(f"  {key}: {g['images']} images, {g['cells_min']}-{g['cells_max']} cells, halo {g['halo_px']} px")
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(columns, indent=1))
    return 0
