"""The judge's results: per arm and run (fold, seed) scores and learning curves, paired
differences to real only with 95 % t intervals, the per-test-image view of those differences,
the text tables and the JSON record."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from iaaa.errors import IaaaError
from iaaa.judge.protocols import is_online, parse_arm
from iaaa.judge.recipe import ADDED_FIELDS, Recipe
from iaaa.judge.regimes import paired_interval

__all__ = ["METRICS", "JudgeReport", "run_key", "PLATEAU", "run_platform"]

METRICS = ("mean_ap", "ap50", "f1_50")
_LABELS = {"mean_ap": "mean AP", "ap50": "AP@0.5", "f1_50": "F1@0.5"}
PLATEAU = 0.01  # real only has plateaued when its last two curve points differ by less
# Recipe fields only some arms read: parts holding none of those arms merge whatever their value.
ARM_FIELDS = {f: lambda arm: is_online(parse_arm(arm).source) for f in ("paste_context", "paste_scale")}


def run_platform(device: str) -> dict[str, str]:
    """What a judge run's float arithmetic depends on besides the code: the torch build, the CPU
    kernels torch dispatches to (``AVX512``, ``AVX2``, ...: each gives other low bits in
    convolutions and reductions, so the same training diverges after a few hundred steps) with
    the CPU's name, and the accelerator when ``device`` is one. A run repeats bit for bit on the
    same platform; on another, an arm's score moves by about the spread between folds (0.001-0.01
    mean AP on usiigaci N = 2), while pairs run side by side stay paired."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    out = {"torch": torch.__version__, "cpu_kernels": str(torch.backends.cpu.get_cpu_capability()), "cpu": cpu}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out


def _platform_key(settings: dict[str, Any]) -> str | None:
    """What must match for two runs to be bit-comparable (``None``: a report from before the
    platform was recorded)."""
    p = settings.get("platform")
    return None if p is None else json.dumps({k: p.get(k) for k in ("torch", "cpu_kernels", "gpu")}, sort_keys=True)


def run_key(fold: int, seed: int) -> str:
    """The key of one run in ``JudgeReport.results[arm]``."""
    return f"fold{fold}/seed{seed}"


def _markdown(head: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table with padded columns."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if not n:
        return math.nan, math.nan
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


@dataclass
class JudgeReport:
    """Results of :func:`~iaaa.judge.judge`: ``results[arm][run_key(fold, seed)]`` holds
    ``mean_ap``, ``ap50``, ``f1_50`` (means over the test images), counts, timings and
    ``curve`` (the same scores after each curve step); ``settings`` the recipe, folds, test
    images, decoding ceiling and warnings."""

    results: dict[str, dict[str, dict[str, Any]]]
    settings: dict[str, Any] = field(default_factory=dict)
    baseline: str = "real"

    @property
    def arms(self) -> list[str]:
        return list(self.results)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per arm and metric: mean and sd over runs, and the differences to the baseline paired
        per (fold, seed) with their mean and 95 % t interval (``diff_low``, ``diff_high``)."""
        base = self.results.get(self.baseline, {})
        out: dict[str, dict[str, Any]] = {}
        for arm, runs in self.results.items():
            keys = sorted(runs)
            row: dict[str, Any] = {"runs": keys}
            for m in METRICS:
                vals = [runs[k][m] for k in keys]
                mean, sd = _mean_sd(vals)
                diffs = [runs[k][m] - base[k][m] for k in keys if k in base] if arm != self.baseline else []
                d, lo, hi = paired_interval(diffs)
                row[m] = {"mean": mean, "sd": sd, "values": vals, "diff": diffs, "diff_mean": d, "diff_low": lo, "diff_high": hi}
            out[arm] = row
        return out

    def curve(self, arm: str | None = None) -> list[tuple[int, float]]:
        """``(step, mean AP averaged over runs)`` of ``arm``'s learning curve (default: the baseline)."""
        runs = self.results.get(arm or self.baseline, {})
        points: dict[int, list[float]] = {}
        for r in runs.values():
            for p in r.get("curve", []):
                points.setdefault(int(p["step"]), []).append(float(p["mean_ap"]))
        return [(s, sum(v) / len(v)) for s, v in sorted(points.items())]

    def plateaued(self, arm: str | None = None) -> bool | None:
        """Whether ``arm``'s (default: real only's) last two curve points are within
        :data:`PLATEAU`, on a curve that has reached at least :data:`PLATEAU` somewhere (a curve
        flat near zero has not begun to learn; one that is flat from its first point on at a
        real level learned early, e.g. on a few training images; ``None``: no curve)."""
        c = self.curve(arm)
        if len(c) < 2:
            return None
        return abs(c[-1][1] - c[-2][1]) < PLATEAU and max(v for _, v in c) >= PLATEAU

    def rebased(self, arm: str) -> "JudgeReport":
        """The same runs with the differences paired against ``arm`` (e.g. ``"aug"``)."""
        if arm not in self.results:
            raise IaaaError(f"judge report: no arm {arm!r} to pair against (arms: {', '.join(self.results)})")
        return JudgeReport(self.results, self.settings, arm)

    def table(self, curves: bool = True) -> str:
        """Mean ± sd over runs of each metric per arm; paired difference to the baseline (real
        only unless :meth:`rebased`) with its 95 % interval; the ceiling, and with ``curves``
        every arm's learning curve and any warnings below."""
        summ = self.summary()
        head = ["arm", *(_LABELS[m] for m in METRICS), *(f"Δ{_LABELS[m]} [95% CI]" for m in METRICS), "runs"]
        rows = []
        for arm, row in summ.items():
            cells = [arm] + [f"{row[m]['mean']:.3f} ± {row[m]['sd']:.3f}" for m in METRICS]
            for m in METRICS:
                d = row[m]
                if not d["diff"]:
                    cells.append("-")
                elif math.isnan(d["diff_low"]):
                    cells.append(f"{d['diff_mean']:+.3f}")
                else:
                    cells.append(f"{d['diff_mean']:+.3f} [{d['diff_low']:+.3f}, {d['diff_high']:+.3f}]")
            cells.append(str(len(row["runs"])))
            rows.append(cells)
        lines = _markdown(head, rows)
        if not curves:
            return "\n".join(lines)
        c = self.settings.get("ceiling")
        if c:
            lines.append(f"ceiling (perfect 3-class prediction, same decoding): mean AP {c['mean_ap']:.3f}, AP@0.5 {c['ap50']:.3f}, F1@0.5 {c['f1_50']:.3f}")
        plat = self.settings.get("platform")
        for p in plat if isinstance(plat, list) else [plat] if plat else []:
            lines.append(f"platform: torch {p.get('torch')}, CPU kernels {p.get('cpu_kernels')} ({p.get('cpu')})" + (f", GPU {p['gpu']}" if p.get("gpu") else ""))
        # every arm's curve: a baseline that has not plateaued (an augmented arm learns a harder
        # task in the same steps) would make any difference to it a difference in speed
        for arm in [self.baseline, *(a for a in self.results if a != self.baseline)]:
            curve = self.curve(arm)
            if not curve:
                continue
            flat = self.plateaued(arm)
            verdict = "" if flat is None else (" (plateaued: last two within 0.01)" if flat else " (NOT plateaued: last two differ by 0.01 or more, or the curve never left zero; train longer)")
            lines.append(f"{arm} learning curve, mean AP over runs: " + ", ".join(f"step {s}: {v:.3f}" for s, v in curve) + verdict)
        lines += [f"warning: {w}" for w in self.settings.get("warnings", [])]
        return "\n".join(lines)

    def per_image(self) -> dict[str, Any]:
        """Where the differences come from: per test image (``settings["test"]`` order) and arm,
        the mean over runs of its mean AP and of its predicted / true instance ratio, and the
        mean of the differences to the baseline paired per run with how many of them are
        positive. DSB-style mean AP averages images, so one image whose cells a model splits
        into hundreds of fragments can decide a comparison; this shows it. Only runs that
        recorded per-image scores count (reports before 2026-12-03 lack them); an arm with
        none is left out."""
        base = {k: r["per_image"] for k, r in self.results.get(self.baseline, {}).items() if "per_image" in r}
        names = list(self.settings.get("test", []))
        n_true: list[int] | None = None
        arms: dict[str, dict[str, Any]] = {}
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        for arm, runs in self.results.items():
            per = {k: r["per_image"] for k, r in runs.items() if "per_image" in r}
            if not per:
                continue
            rows = list(per.values())
            n = len(rows[0]["mean_ap"])
            if any(len(r["mean_ap"]) != n for r in rows) or (n_true is not None and len(n_true) != n):
                raise IaaaError(f"judge report: arm {arm!r} has runs scored on different numbers of test images")
            n_true = list(rows[0]["n_true"]) if n_true is None else n_true
            entry: dict[str, Any] = {
                "runs": len(rows),
                "mean_ap": [mean([r["mean_ap"][i] for r in rows]) for i in range(n)],
                "pred_ratio": [mean([r["n_pred"][i] / max(r["n_true"][i], 1) for r in rows]) for i in range(n)],
            }
            paired = [k for k in per if k in base] if arm != self.baseline else []
            if paired:
                diffs = [[per[k]["mean_ap"][i] - base[k]["mean_ap"][i] for k in paired] for i in range(n)]
                entry.update(paired=len(paired), diff=[mean(d) for d in diffs], wins=[sum(v > 0 for v in d) for d in diffs])
            arms[arm] = entry
        if n_true is None:
            return {"images": names, "n_true": [], "arms": {}}
        if len(names) != len(n_true):
            names = [f"test {i}" for i in range(len(n_true))]
        return {"images": names, "n_true": n_true, "arms": arms}

    def per_image_table(self) -> str:
        """:meth:`per_image` as a text table: per arm ``mean AP (predicted/true)`` and, against
        the baseline, ``Δ mean AP (runs above / paired runs)``."""
        pi = self.per_image()
        if not pi["arms"]:
            return "per test image: no run of these reports recorded per-image scores"
        head = ["test image", "cells"]
        for arm, e in pi["arms"].items():
            head.append(f"{arm} ({e['runs']})")
            if "diff" in e:
                head.append(f"Δ vs {self.baseline}")
        rows = []
        for i, name in enumerate(pi["images"]):
            cells = [name, str(pi["n_true"][i])]
            for e in pi["arms"].values():
                cells.append(f"{e['mean_ap'][i]:.3f} (x{e['pred_ratio'][i]:.1f})")
                if "diff" in e:
                    cells.append(f"{e['diff'][i]:+.3f} ({e['wins'][i]}/{e['paired']})")
            rows.append(cells)
        note = ("per test image: mean AP over runs (x: predicted / true instances), and the difference to "
                f"{self.baseline} paired per run (runs above it / paired runs)")
        return "\n".join([note, *_markdown(head, rows)])

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "baseline": self.baseline, "results": self.results, "summary": self.summary(),
                "curve": {arm: self.curve(arm) for arm in self.results}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JudgeReport":
        """The report of :meth:`to_dict` (its ``summary`` and ``curve`` are recomputed)."""
        try:
            return cls(dict(data["results"]), dict(data["settings"]), str(data.get("baseline", "real")))
        except (KeyError, TypeError, ValueError) as e:
            raise IaaaError(f"judge report: not a report of JudgeReport.to_dict ({e!r} missing or malformed)") from None

    @classmethod
    def merge(cls, parts: "list[JudgeReport]", tolerance: float = 1e-9) -> "JudgeReport":
        """One report from the parts of a regime run as separate processes (``Recipe.only_folds``,
        other seeds, or other arms added later). The parts must agree on everything but
        ``only_folds``, ``seeds`` and their arms (recipe, fold subsets, test images, ceiling).
        A run (arm, fold, seed) in more than one part must have the same scores in each (within
        ``tolerance``): that is how an arm run later proves it saw the same real crops and
        weights as the earlier parts (run a cheap shared arm such as ``aug`` beside it); it is
        then counted once. Parts with no run in common are simply put together. A recipe field
        only some arms read (``ARM_FIELDS``: ``paste_context`` and ``paste_scale``, read by ``iaaa-online`` arms) is
        compared only between parts holding such an arm, and the merged recipe carries their
        value. Parts run on different platforms (:func:`run_platform`: torch build, CPU kernels,
        GPU) merge, since each pair of a run is still trained side by side, but a run whose arms
        come from parts of different platforms is not paired bit for bit: it is named in a
        warning."""
        if not parts:
            raise IaaaError("judge report merge: no report given")
        first = parts[0]
        loose = ("only_folds", "seeds")
        # A part written before a recipe field existed ran with what the field's value was then.
        defaults = {**Recipe().to_dict(), **ADDED_FIELDS}
        recipe_of = lambda part: {**defaults, **part.settings.get("recipe", {})}  # noqa: E731
        readers = {f: [p for p in parts if any(reads(a) for a in p.results)] for f, reads in ARM_FIELDS.items()}
        for f, ps in readers.items():
            if len({json.dumps(recipe_of(p)[f]) for p in ps}) > 1:
                raise IaaaError(f"judge report merge: the parts' arms that read {f} were run with different values of it")
        same = lambda st: ({k: v for k, v in {**defaults, **st.get("recipe", {})}.items() if k not in loose and k not in ARM_FIELDS},  # noqa: E731
                           {k: v for k, v in st.items() if k not in ("recipe", "warnings", "arms", "platform")})
        results: dict[str, dict[str, dict[str, Any]]] = {}
        origin: dict[tuple[str, str], int] = {}
        platforms_of_run: dict[str, set[str]] = {}
        seeds: set[int] = set()
        folds: set[int] = set()
        for i, part in enumerate(parts):
            if same(part.settings) != same(first.settings) or part.baseline != first.baseline:
                raise IaaaError(f"judge report merge: part {i} was run with other settings than part 0 (recipe, folds or test images differ)")
            added = 0
            platform = _platform_key(part.settings)
            for arm, runs in part.results.items():
                into = results.setdefault(arm, {})
                for key, run in runs.items():
                    if key not in into:
                        into[key], origin[arm, key] = run, i
                        added += 1
                        if platform is not None:
                            platforms_of_run.setdefault(key, set()).add(platform)
                    elif any(abs(float(run[m]) - float(into[key][m])) > tolerance for m in METRICS):
                        raise IaaaError(f"judge report merge: run {key} of arm {arm!r} has mean AP {into[key]['mean_ap']:.6f} in part "
                                        f"{origin[arm, key]} and {run['mean_ap']:.6f} in part {i}: the parts are not paired "
                                        "(other code, torch build or machine)")
            if not added:
                raise IaaaError(f"judge report merge: part {i} adds no run that the parts before it do not hold (the same part twice?)")
            recipe = part.settings.get("recipe", {})
            seeds.update(recipe.get("seeds", []))
            n_folds = int(recipe.get("folds", 1))
            folds.update(recipe["only_folds"] if recipe.get("only_folds") is not None else range(n_folds))
        settings = dict(first.settings)
        recipe = dict(settings.get("recipe", {}))
        recipe["seeds"] = sorted(seeds)
        recipe["only_folds"] = None if folds == set(range(int(recipe.get("folds", 1)))) else sorted(folds)
        for f, ps in readers.items():
            if ps:  # the value the arms that read it ran with
                recipe[f] = recipe_of(ps[0])[f]
        settings["recipe"] = recipe
        settings["arms"] = list(results)
        warnings = list(dict.fromkeys(w for p in parts for w in p.settings.get("warnings", [])))
        split = sorted(k for k, ps in platforms_of_run.items() if len(ps) > 1)
        if split:
            warnings.append(f"runs {', '.join(split)}: their arms come from parts run on different platforms (torch build, CPU kernels "
                            "or GPU), so their paired differences compare different float paths, not only different data")
        platforms = list(dict.fromkeys(json.dumps(p.settings["platform"], sort_keys=True) for p in parts if "platform" in p.settings))
        if platforms:
            settings["platform"] = json.loads(platforms[0]) if len(platforms) == 1 else [json.loads(p) for p in platforms]
        settings["warnings"] = warnings
        return cls(results, settings, first.baseline)

    def to_json(self, path: str | None = None) -> str:
        """The report as JSON text; also written to ``path`` when given, through a temporary
        file of its own and a rename (nothing else beside ``path`` is touched)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from iaaa.data.imageio import atomic_write_text

            atomic_write_text(path, text)
        return text
