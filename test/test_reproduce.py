"""The reproduction report's plumbing: config merging and the issue-9 JSON keys."""

from __future__ import annotations

import json

from training.reproduce import check_targets, summarize, write_report
from training.stages.steps import merge


def _entry(mae: float) -> dict:
    return {"depth_mae_10m": mae, "depth_mae_20m": mae + 1, "depth_mae_30m": mae + 2,
            "absrel": 0.1, "miou": 0.5, "pixel_acc": 0.8}


def test_merge_is_deep_and_does_not_mutate():
    base = {"distill": {"losses": {"realm": 1.0}, "steps": 10}, "run": {"lr": 1.0}}
    out = merge(base, {"distill": {"losses": {"scaleevent": 1.0}}})
    assert out["distill"] == {"losses": {"realm": 1.0, "scaleevent": 1.0}, "steps": 10}
    assert base["distill"]["losses"] == {"realm": 1.0}


def test_summary_has_the_issue_keys_and_report_is_written(tmp_path):
    def sets(student: float) -> dict:
        return {s: {"teacher_rgb": _entry(1.0), "teacher_delivered_rgb": _entry(3.0),
                    "student_events": _entry(student)} for s in ("lowlight", "blur")}

    names = ["full", "l1", "l1_mask", "l1_mask_is", "l1_mask_cs", "curriculum_on",
             "curriculum_off", "scratch"]
    results = {name: sets(1.5 + i / 10) for i, name in enumerate(names)}
    summary = summarize(results)
    for key in ("teacher_rgb", "student_events", "teacher_lowlight_rgb",
                "student_events_lowlight", "teacher_blur_rgb", "student_events_blur",
                "scratch_events"):
        assert {"depth_mae_10m", "miou"} <= set(summary[key])
    assert set(summary["ablation"]) == {"l1", "l1_mask", "l1_mask_is", "l1_mask_cs", "full"}
    assert summary["teacher_lowlight_rgb"]["depth_mae_10m"] == 3.0
    assert summary["scratch_events"]["depth_mae_10m"] == 1.5 + 7 / 10
    write_report(summary, {"distill": {"steps": 5}}, tmp_path)
    assert json.loads((tmp_path / "reproduction.json").read_text()) == summary
    report = (tmp_path / "reproduction.md").read_text()
    assert "ScaleEvent ablation" in report
    assert (tmp_path / "reproduction_miou.png").exists()
    assert (tmp_path / "reproduction_depth.png").stat().st_size > 5000


def test_targets_are_checked_against_the_numbers():
    def entry(mae: float, miou: float) -> dict:
        return {"depth_mae_10m": mae, "miou": miou}

    summary = {"teacher_rgb": entry(1.0, 0.6), "student_events": entry(1.6, 0.5),
               "teacher_lowlight_rgb": entry(2.0, 0.3), "student_events_lowlight": entry(1.6, 0.5),
               "teacher_blur_rgb": entry(1.2, 0.55), "student_events_blur": entry(1.6, 0.5),
               "ablation": {"l1": entry(1.7, 0.4), "l1_mask": entry(1.65, 0.4),
                            "l1_mask_is": entry(1.8, 0.4), "l1_mask_cs": entry(1.68, 0.4),
                            "full": entry(1.6, 0.5)}}
    met = {claim.split(" (")[0]: ok for claim, ok, _ in check_targets(summary)}
    assert met == {"student-on-events MAE@10m <= 1.5 x teacher-on-clean-RGB": False,
                   "student on events better than teacher on low light RGB": True,
                   "student on events better than teacher on blur RGB": False,
                   "structure-aware distillation at least as good as L1 only": True}


def test_summary_prefers_the_shipped_row_and_the_severe_sets():
    def sets(delivered: float) -> dict:
        out = {s: {"teacher_rgb": _entry(1.0), "teacher_delivered_rgb": _entry(delivered),
                   "student_events": _entry(1.2)} for s in ("lowlight", "blur")}
        out.update({f"{s}_severe": {"teacher_rgb": _entry(1.0),
                                    "teacher_delivered_rgb": _entry(delivered * 4),
                                    "student_events": _entry(1.2)} for s in ("lowlight", "blur")})
        return out

    results = {"full": sets(1.1), "scratch": sets(1.1), "default": sets(1.05)}
    summary = summarize(results)
    assert summary["shipped_row"] == "default"
    assert summary["teacher_lowlight_rgb"]["depth_mae_10m"] == 1.05 * 4
    assert summary["mild"]["teacher_blur_rgb"]["depth_mae_10m"] == 1.05
    assert summary["ablation"] == {"full": _entry(1.2)}
