"""benchmarks/downstream.py's part selection for --merge (PATH:ARM,ARM->NAME): a record put
together from parts keeps only the named arms, renamed where asked, and still pairs runs."""

from __future__ import annotations

import pytest

from iaaa.judge.report import JudgeReport, run_key
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def downstream():
    return load_benchmark("downstream")


def _run(ap: float) -> dict:
    return {"mean_ap": ap, "ap50": ap + 0.1, "f1_50": ap + 0.2}


def _part(arms: dict[str, float], seed: int) -> dict:
    results = {arm: {run_key(0, seed): _run(ap)} for arm, ap in arms.items()}
    return JudgeReport(results, {"recipe": {"seeds": [seed]}, "arms": list(arms)}, "aug").to_dict()


def test_select_keeps_and_renames_only_the_named_arms(downstream):
    part = _part({"aug": 0.2, "iaaa+aug": 0.1, "iaaa[match_intensity=True]+aug": 0.25, "iaaa[count_cap=False,contacts='data']+aug": 0.3}, 1)
    out = downstream.select_arms(part, "aug,iaaa[match_intensity=True]+aug->iaaa+aug,iaaa[count_cap=False,contacts='data']+aug", "p.json")
    assert list(out["results"]) == ["aug", "iaaa+aug", "iaaa[count_cap=False,contacts='data']+aug"]
    assert out["results"]["iaaa+aug"] == part["results"]["iaaa[match_intensity=True]+aug"]
    assert out["settings"]["arms"] == list(out["results"])
    assert "iaaa+aug" in part["results"] and part["results"]["iaaa+aug"][run_key(0, 1)]["mean_ap"] == 0.1  # the input is not changed


def test_select_refuses_an_arm_the_part_does_not_hold(downstream):
    with pytest.raises(SystemExit, match=r"p\.json: no arm 'naive\+aug'"):
        downstream.select_arms(_part({"aug": 0.2}, 0), "aug,naive+aug", "p.json")


def test_selected_parts_merge_and_pair_on_the_shared_arm(downstream):
    # Seed 0 holds a stale iaaa+aug (older code); seed 1 its renamed current form.
    a = downstream.select_arms(_part({"aug": 0.2, "iaaa+aug": 0.1}, 0), "aug", "a")
    b = downstream.select_arms(_part({"aug": 0.2}, 0), "aug", "b")
    c = downstream.select_arms(_part({"aug": 0.3, "iaaa[match_intensity=True]+aug": 0.35}, 1), "aug,iaaa[match_intensity=True]+aug->iaaa+aug", "c")
    merged = JudgeReport.merge([JudgeReport.from_dict(a), JudgeReport.from_dict(c)])
    assert sorted(merged.results["aug"]) == [run_key(0, 0), run_key(0, 1)]
    assert list(merged.results["iaaa+aug"]) == [run_key(0, 1)]
    # a part that only repeats runs already held adds nothing and is refused
    with pytest.raises(Exception, match="adds no run"):
        JudgeReport.merge([JudgeReport.from_dict(a), JudgeReport.from_dict(b)])


def test_select_keeps_only_the_named_folds_of_an_arm(downstream):
    part = _part({"aug": 0.2, "iaaa+aug": 0.1}, 0)
    part["results"]["iaaa+aug"][run_key(1, 0)] = _run(0.4)
    part["results"]["aug"][run_key(1, 0)] = _run(0.3)
    out = downstream.select_arms(part, "aug,iaaa+aug->old@0", "p.json")
    assert sorted(out["results"]["aug"]) == [run_key(0, 0), run_key(1, 0)]
    assert list(out["results"]["old"]) == [run_key(0, 0)]
    out = downstream.select_arms(part, "iaaa+aug@0+1", "p.json")
    assert sorted(out["results"]["iaaa+aug"]) == [run_key(0, 0), run_key(1, 0)]
    with pytest.raises(SystemExit, match="no run in folds"):
        downstream.select_arms(part, "aug@3", "p.json")
    with pytest.raises(SystemExit, match="folds are written F"):
        downstream.select_arms(part, "aug@1;2", "p.json")
