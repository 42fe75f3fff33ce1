"""docs/gep.{md,json} and plots from an evaluation report (training/gep/pipeline.GEPSession)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.report import Report, change, fmt

from .evaluate import METHODS

LABELS = {
    "copy_last": "copy-last (aggregated 3x4, upsampled)",
    "gep": "GEP transformer (aggregated 3x4, upsampled)",
    "mean_last2": "mean of the last two windows (reference)",
    "copy_last_full": "copy-last, full token grid (reference)",
    "next_window_agg": "actual next window, aggregated (ceiling of a 3x4 predictor)",
    "next_window_full": "actual next window, full grid (the student on its events)",
    "linear_extrapolation": "GEP's fitted linear extrapolation alone (its reference, no update)",
}


def _f(x, digits: int = 4) -> str:
    return fmt(x, digits) if isinstance(x, float) else "-"


def method_table(results: dict) -> list[str]:
    lines = ["| prediction of window j+1 | feature MSE | MAE@10m (m) | MAE@20m | AbsRel | "
             "d<1.25 |", "|---|---|---|---|---|---|"]
    for m in METHODS + ("linear_extrapolation",):
        if m not in results:
            continue
        r = results[m]
        lines.append(f"| {LABELS[m]} | {_f(r.get('feature_mse'))} | "
                     f"{_f(r.get('depth_mae_10m'), 3)} | {_f(r.get('depth_mae_20m'), 3)} | "
                     f"{_f(r.get('absrel'), 3)} | {_f(r.get('delta1'), 3)} |")
    return lines


def save_horizon_plot(path: Path, sets: dict) -> None:
    from event_fm.evaluation.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, r in sets.items():
        curve = r.get("horizon") or {}
        if not curve:
            continue
        for m, style in (("copy_last", "--"), ("gep", "-")):
            h = np.arange(1, len(curve[m]["feature_mse"]) + 1)
            for ax, key in zip(axes, ("feature_mse", "depth_mae_10m"), strict=True):
                ax.plot(h, curve[m][key], style, marker="o", label=f"{m} ({name})")
    for ax, title in zip(axes, ("feature MSE (aggregated patch tokens)",
                                "depth MAE@10m of the predicted window (m)"), strict=True):
        ax.set_xlabel("windows ahead (50 ms each)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_depth_examples(path: Path, examples: list[dict]) -> None:
    from event_fm.evaluation.plots import _depth_vis, _plt

    plt = _plt()
    cols = ["gt", "copy_last", "gep", "next_window_full"]
    titles = ["next window: ground truth", "copy-last", "GEP prediction",
              "student on the actual next window"]
    rows = max(1, len(examples))
    fig, axes = plt.subplots(rows, len(cols), figsize=(3 * len(cols), 2.3 * rows), squeeze=False)
    for i, ex in enumerate(examples):
        for j, key in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(_depth_vis(ex[key], 30.0), cmap="magma_r", vmin=0, vmax=1)
            if key != "gt":
                valid = np.isfinite(ex["gt"]) & (ex["gt"] > 0) & (ex["gt"] <= 10)
                err = np.abs(ex[key] - ex["gt"])[valid].mean() if valid.any() else np.nan
                ax.set_xlabel(f"MAE@10m {err:.2f} m", fontsize=8)
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(report: dict, docs: Path, root: Path) -> list[Path]:
    """docs/gep.{md,json} with the horizon, depth and loss plots; the paths written."""
    doc = Report(docs, "gep")
    markdown(report, doc, root)
    paths = doc.write(report["summary"])
    return [paths["json"], paths["md"], *paths["figures"]]


def variant_section(variants: dict | None) -> list[str]:
    if not variants:
        return []
    lines = ["## Variants", "",
             "Other transformers trained on the same tokens, scored the same way one window "
             "ahead, with copy-last and the mean of the last two windows at the variant's own "
             "token grid:", "",
             "| variant | set | feature MSE | copy-last | mean of last two | depth MAE@10m (m) "
             "| mean of last two |", "|---|---|---|---|---|---|---|"]
    for name, sets in variants.items():
        for s, r in sets.items():
            lines.append(f"| {name} | {s} | {_f(r['feature_mse'])} | "
                         f"{_f(r['copy_last_feature_mse'])} | "
                         f"{_f(r.get('mean_last2_feature_mse'))} | "
                         f"{_f(r['depth_mae_10m'], 3)} | "
                         f"{_f(r.get('mean_last2_depth_mae_10m'), 3)} |")
    return lines + [""]


def probe_section(probe: dict | None) -> list[str]:
    """Use (b): a fresh depth head on the student's tokens vs on GEP's features."""
    if not probe:
        return []
    sets = [k for k in probe["student_tokens"]]
    lines = ["## Downstream head on GEP features", "",
             f"A fresh depth head ({probe['steps']} steps on the training recordings, the same "
             "head and data for each row) on the current window's features; held-out "
             "depth MAE@10m (m):", "",
             "| features | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for kind, label in (("student_tokens", "student event tokens (3x4 + CLS)"),
                        ("gep_features", "GEP hidden states of the window's event group"),
                        ("student_and_gep", "both side by side (the student's tokens and "
                                            "GEP's hidden states)")):
        if kind not in probe:
            continue
        lines.append(f"| {label} | " + " | ".join(
            _f(probe[kind][s]["depth_mae_10m"], 3) for s in sets) + " |")
    return lines + ["", "GEP's features at a window's event group have also seen the previous "
                    "windows and their frames' teacher tokens (degraded frames on these sets), "
                    "which the student's tokens of one window have not: any difference measures "
                    "what the sequence model adds (or loses) over a single window, not a "
                    "better or worse single-window encoder.", ""]


def markdown(report: dict, doc: Report | None = None, root: Path | None = None) -> str:
    """The document; with ``doc`` its plots are drawn (and the fit's loss.png under ``root``
    copied) next to it."""
    doc = doc or Report(Path("."), "gep")
    cfg, fit = report["config"], report.get("fit", {})
    summary = report["summary"]
    lines = [
        "# GEP stage 2: generative event pretraining", "",
        "A causal transformer over interleaved event-window and frame tokens from the aligned "
        "encoders, trained by next-token regression, predicts the next window's event features; "
        "the checkpoint's depth head decodes them into a predicted future depth map. Generated by "
        "`make gep-report` (`event-fm train gep report --config training/configs/gep.yaml`).", "",
        f"- Aligned encoders and heads: `{report['checkpoint']}`",
        f"- Transformer: {cfg['depth']} causal blocks, width {cfg['width']}, {cfg['num_heads']} "
        f"heads (GEP: 12 / 384 / 6), context {cfg['max_windows']} windows x (event + frame) x "
        f"{1 + cfg['agg_grid'][0] * cfg['agg_grid'][1]} tokens = "
        f"{cfg['max_windows'] * 2 * (1 + cfg['agg_grid'][0] * cfg['agg_grid'][1])} tokens "
        "(GEP: 4096); each window's token grid average-pooled to "
        f"{cfg['agg_grid'][0]}x{cfg['agg_grid'][1]} plus its CLS token; modality embedding, "
        "learned positions; "
        + ("each token predicts its slot in the next group (a whole group per pass, GEP's "
           "aggregated next-token target); " if cfg.get("target", "token") == "group" else
           "each token predicts the next token (decoded one at a time); ")
        + (f"the head predicts the change from {_reference_words(cfg)}; the first "
           "window of each training sequence is context only." if cfg.get("residual") else
           "the head predicts tokens directly."),
    ]
    if fit:
        lines.append(f"- Training: {fit.get('steps')} steps, next-token MSE (standardized) "
                     f"{_f(fit.get('first_loss'))} -> {_f(fit.get('last_loss'))}, "
                     f"{fit.get('parameters', 0) / 1e6:.2f} M parameters, "
                     f"{fit.get('seconds', 0) / 60:.1f} min on this machine"
                     + (f", {fit['training_recordings']} training recordings"
                        if fit.get("training_recordings") else "") + ".")
        term = fit.get("depth_term")
        if term:
            lines.append(
                f"- Objective: the next-token MSE plus {term['weight']:g} x a depth term: the "
                f"predicted event groups of {term['windows']} target windows per sequence, "
                "upsampled and decoded by the checkpoint's frozen depth head, against those "
                "windows' ground-truth depth (the head's own training loss, SI-log + "
                "gradient); the MSE weighs every channel alike, the term the ones depth "
                f"reads. Feature MSE {_f(term.get('first_feature_loss'))} -> "
                f"{_f(term.get('last_feature_loss'))}, depth term "
                f"{_f(term.get('first_depth'), 3)} -> {_f(term.get('last_depth'), 3)}.")
        cal = fit.get("calibration")
        if cal:
            lines.append(
                f"- Update scale {cal['update_scale']:.2f}, fitted on "
                f"{cal['validation_windows']} windows of validation recordings left out of "
                "training (event-group next-token MSE there, standardized: reference alone "
                f"{_f(cal['validation_mse_reference'])}, full update "
                f"{_f(cal['validation_mse_full_update'])}, scaled update "
                f"{_f(cal['validation_mse_scaled_update'])}"
                + (f"; depth term: reference alone "
                   f"{_f(cal['validation_depth_loss_reference'], 3)}, scaled update "
                   f"{_f(cal['validation_depth_loss_scaled_update'], 3)}; the scale is the "
                   "one of 0, 0.1, ..., 1 and the least-squares one with the lowest sum"
                   if "validation_depth_loss_scaled_update" in cal else "") + ").")
    lines += ["", "## Result (docs/gep.json: all held-out sets pooled)", "",
              "| | feature MSE | depth MAE@10m (m) |", "|---|---|---|"]
    for m in ("copy_last", "mean_last2", "linear_extrapolation", "gep"):
        if m in summary:
            lines.append(f"| {m} | {_f(summary[m]['feature_mse'], 5)} | "
                         f"{_f(summary[m]['depth_mae_10m'], 3)} |")
    lines += ["", "## Targets (issue 20)", "", *target_lines(report), ""]
    for name, r in report["sets"].items():
        lines += [f"### held-out {name} ({r['windows']} predicted windows)", ""]
        lines += method_table(r) + [""]
    doc.raw(lines)
    doc.section("Error versus horizon").para(
        "Rolled out autoregressively (event and frame groups of the intermediate windows are "
        f"generated too) on {_every(cfg_stride(report))}.")
    doc.image("horizon", "horizon", lambda p: save_horizon_plot(p, report["sets"]))
    doc.section("Predicted future depth").image(
        "depth", "depth",
        lambda p: save_depth_examples(p, next(iter(report.get("examples", {}).values()), [])))
    doc.raw(variant_section(report.get("variants")))
    doc.raw(probe_section(report.get("probe")))
    doc.section("Training loss").image("loss", "loss", source=(root or Path(".")) / "fit" /
                                       "loss.png")
    curve = (fit.get("calibration") or {}).get("curve")
    if curve:
        cal = fit["calibration"]
        doc.section("Validation recordings").para(
            f"Event-group next-token MSE (standardized) on the {cal['validation_windows']} "
            "windows of the recordings left out of training, every "
            f"{curve[1]['step'] - curve[0]['step'] if len(curve) > 1 else 1} steps: the "
            "reference alone, the full learned update, and the update at its best scale"
            + (", and the whole objective (MSE plus the weighted depth term) at that scale"
               if "validation_depth_loss_scaled_update" in cal else "")
            + f". The saved state is step {cal['best_step']}'s (the lowest "
            + ("objective" if "validation_depth_loss_scaled_update" in cal else "scaled MSE")
            + f"), its update scaled by {cal['update_scale']:.2f}.")
        doc.image("validation", "validation", lambda p: save_validation_plot(p, cal))
    doc.raw(findings(report))
    return doc.markdown()


def save_validation_plot(path: Path, calibration: dict) -> None:
    from event_fm.evaluation.plots import _plt

    plt = _plt()
    curve = calibration["curve"]
    steps = [c["step"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for key, label, style in (("validation_mse_reference", "reference alone", "--"),
                              ("validation_mse_full_update", "full update", "-"),
                              ("validation_mse_scaled_update", "update at its best scale", "-")):
        ax.plot(steps, [c[key] for c in curve], style, label=label)
    if "validation_depth_loss_scaled_update" in curve[0]:  # its own axis: another scale
        right = ax.twinx()
        right.plot(steps, [c["validation_objective"] for c in curve], ":", color="black",
                   label="objective (MSE + weighted depth term), right axis")
        right.set_ylabel("validation objective")
        right.legend(fontsize=7, loc="lower left")
    ax.axvline(calibration["best_step"], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation MSE (standardized)")
    ax.set_title("GEP on recordings left out of training", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _reference_words(cfg: dict) -> str:
    if cfg.get("reference") == "ar":
        return (f"a per-channel linear combination of the same slot in the last "
                f"{cfg.get('ar_windows', 4)} windows (weights fitted in closed form on the "
                "training tokens, one set per modality), the update scaled by a factor fitted "
                "on validation recordings held out of training")
    if cfg.get("reference", "last") == "mean_last2":
        return "the mean of the same slot in the last two windows"
    return "the same slot one window earlier"


def target_lines(report: dict) -> list[str]:
    """Issue 20's GEP targets, checked on the pooled numbers: next-window feature MSE and
    predicted-depth MAE below the mean of the last two windows, and a depth probe on GEP's
    features no worse than on the student's tokens (every held-out set)."""
    s = report["summary"]
    lines = []
    if "mean_last2" in s:
        for key, unit, digits in (("feature_mse", "", 4), ("depth_mae_10m", " m", 3)):
            g, m = s["gep"][key], s["mean_last2"][key]
            lines.append(f"- {key}: GEP {_f(g, digits + 1)}{unit} vs mean of the last two windows "
                         f"{_f(m, digits + 1)}{unit} ({change(g, m)}; "
                         f"{'met' if g < m else 'missed'})")
    probe = report.get("probe")
    if probe:
        for name in probe["student_tokens"]:
            b = probe["student_tokens"][name]["depth_mae_10m"]
            for kind, words in (("student_and_gep", "GEP features (the student's tokens with "
                                                    "GEP's hidden states)"),
                                ("gep_features", "GEP hidden states alone")):
                if kind in probe:
                    a = probe[kind][name]["depth_mae_10m"]
                    lines.append(f"- depth probe on held-out {name}: {words} {_f(a, 3)} m vs "
                                 f"the student's tokens {_f(b, 3)} m "
                                 f"({'met' if a <= b else 'missed'}: no worse)")
    return lines


def cfg_stride(report: dict) -> int:
    """The anchor stride of the horizon curves (evaluate.horizon_stride, 3 by default)."""
    return int(report.get("horizon_stride", 3))


def _every(n: int) -> str:
    return "every anchor" if n == 1 else \
        f"every {({2: 'second', 3: 'third'}.get(n, f'{n}th'))} anchor"


def pooled_depth(sets: list[dict], method: str) -> float:
    """MAE@10m of ``method`` over the held-out sets, weighted by their predicted windows."""
    total = sum(r["windows"] for r in sets)
    return sum(r[method]["depth_mae_10m"] * r["windows"] for r in sets) / total


def findings(report: dict) -> list[str]:
    """Plain-language reading of the numbers (generated, so it always matches them)."""
    s = report["summary"]
    gep, copy = s["gep"], s["copy_last"]
    lines = ["## Reading the numbers", "",
             f"- Next-window feature MSE: GEP {_f(gep['feature_mse'])} vs copy-last "
             f"{_f(copy['feature_mse'])} ({change(gep['feature_mse'], copy['feature_mse'])} "
             "for GEP).",
             f"- Predicted-future depth MAE@10m: GEP {_f(gep['depth_mae_10m'], 3)} m vs copy-last "
             f"{_f(copy['depth_mae_10m'], 3)} m "
             f"({change(gep['depth_mae_10m'], copy['depth_mae_10m'])} for GEP).",
             "- The held-out sets share their events (the degradations are in the frames), so "
             "copy-last and the next-window references are identical on all of them; GEP's "
             "numbers differ only through the degraded frame tokens in its context (the "
             "transformer trained on clean frames)."]
    sets = list(report["sets"].values())
    term = report.get("fit", {}).get("depth_term")
    if sets and "next_window_agg" in sets[0]:
        r = sets[0]
        agg = r["next_window_agg"]["depth_mae_10m"]
        full = r["next_window_full"]["depth_mae_10m"]
        words = (
            f"- The 3x4 aggregation itself costs {agg - full:+.3f} m of depth MAE@10m (the "
            f"actual next window: {_f(agg, 3)} m at 3x4, {_f(full, 3)} m at the full grid); "
            f"copy-last at 3x4 is at {_f(r['copy_last']['depth_mae_10m'], 3)} m: at 50 ms per "
            "window the depth head sees almost no difference between consecutive windows' "
            "pooled tokens. ")
        if term:
            words += (
                f"With the depth term GEP's groups are not bounded by that: it predicts groups "
                "that decode into the next window's depth, not only groups close to its pooled "
                f"tokens, and reaches {_f(gep['depth_mae_10m'], 3)} m, "
                f"{change(gep['depth_mae_10m'], agg)} than the actual next window at 3x4 and "
                f"{change(gep['depth_mae_10m'], full)} than it at the full grid (the depth "
                "head reads 3x4-pooled, upsampled tokens it never trained on; the term adapts "
                "the predicted tokens to it). The variants table shows the trade: a heavier "
                "depth term lowers depth further and raises the feature MSE.")
        else:
            words += ("A predictor of 3x4 groups that only regresses tokens is bounded near the "
                      "3x4 value, so better feature prediction can barely show in depth here.")
        lines.append(words)
    if sets and "mean_last2" in sets[0]:
        m2 = s.get("mean_last2") or {"feature_mse": sets[0]["mean_last2"]["feature_mse"]}
        lines.append(
            f"- The next window's features are predictable beyond copy-last: the mean of the "
            f"last two windows reaches {_f(m2['feature_mse'])} "
            f"({change(m2['feature_mse'], copy['feature_mse'])}); GEP's "
            f"{_f(gep['feature_mse'])} is {change(gep['feature_mse'], m2['feature_mse'])} "
            "than that. "
            + (("Its update starts from that average (`reference: mean_last2`), so the "
                "learned update itself makes the held-out features worse while the training "
                "loss falls: it fits the training recordings' changes, not changes that carry "
                "over (more and more varied recordings, or a smaller update head, are what "
                "the numbers ask for)." if report.get("config", {}).get("reference") ==
                "mean_last2" else
                "More steps and recordings, a loss on the update rather than the token, or an "
                "explicit average over past windows as its reference (`reference: "
                "mean_last2`) are what would close that gap.")
               if gep["feature_mse"] > m2["feature_mse"] else
               "The transformer learned more than averaging the recent windows."
               if "linear_extrapolation" not in s else
               "Most of that comes from its fitted linear extrapolation (below)."))
    lin = s.get("linear_extrapolation")
    if lin:
        cal = report.get("fit", {}).get("calibration") or {}
        lines.append(
            f"- GEP's fitted linear extrapolation alone reaches {_f(lin['feature_mse'], 5)} "
            f"feature MSE ({change(lin['feature_mse'], m2['feature_mse'])} than the mean of "
            f"the last two) and {_f(lin['depth_mae_10m'], 3)} m depth MAE@10m; the "
            "transformer's update"
            + (f" (scaled by {cal['update_scale']:.2f}, fitted on validation recordings)"
               if cal else "")
            + f" takes it to {_f(gep['feature_mse'], 5)} "
            f"({change(gep['feature_mse'], lin['feature_mse'])}) and "
            f"{_f(gep['depth_mae_10m'], 3)} m. With the few training recordings, a learned "
            "update that fits them does not carry over in full (the validation curve): the "
            "scale keeps the part that does.")
    if sets and "next_window_agg" in sets[0] and "mean_last2" in sets[0]:
        truth = pooled_depth(sets, "next_window_agg")
        mean2 = s["mean_last2"]["depth_mae_10m"]
        if truth > mean2:
            lines.append(
                f"- Depth at this grid rewards averaging over time, not prediction: the actual "
                f"next window's own tokens decode to {_f(truth, 3)} m, above the mean of the "
                f"last two windows' {_f(mean2, 3)} m (the student's per-window depth is noisy "
                "and averaging two windows cancels part of that noise). A predictor that "
                "matched the next window's features exactly would miss the depth target"
                + (" (hence the depth term)." if term else "."))
    probe = report.get("probe")
    if probe:
        name = next(iter(probe["student_tokens"]))
        a = probe["gep_features"][name]["depth_mae_10m"]
        b = probe["student_tokens"][name]["depth_mae_10m"]
        both = probe.get("student_and_gep", {}).get(name, {}).get("depth_mae_10m")
        lines.append(f"- Use (b): a fresh depth head on GEP's hidden states alone reaches "
                     f"{_f(a, 3)} m MAE@10m on held-out {name} against {_f(b, 3)} m on the "
                     f"student's own tokens ({change(a, b)}), with the caveat under that table"
                     + (f"; on both side by side, {_f(both, 3)} m ({change(both, b)})"
                        if both is not None else "") + ".")
    if not report.get("student_distilled", True):
        lines.append("- The checkpoint's event student was never distilled (its LoRA adapters "
                     "are still zero: the distillation was not finished when this report ran), "
                     "so the event tokens carry little; these numbers show the machinery, not "
                     "GEP's value.")
    return lines + [""]
