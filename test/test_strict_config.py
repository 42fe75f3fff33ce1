"""One strict config policy (issue 15): an unknown key anywhere raises ConfigError with its key
path and the known keys, the training CLI reports it as one stderr line with exit code 2, and
every shipped training YAML passes the checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from event_fm.common.strict_config import ConfigError, build_dataclass, check_keys

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"


@dataclasses.dataclass
class Mask:
    kind: str = "none"
    radius: int = 2


@dataclasses.dataclass
class Distill:
    steps: int = 10
    losses: dict = dataclasses.field(default_factory=dict)
    mask: Mask = dataclasses.field(default_factory=Mask)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


@dataclasses.dataclass
class Experiment:
    out: str = "out"
    distill: Distill = dataclasses.field(default_factory=Distill)
    extra_mask: Mask | None = None


def test_nested_dataclasses_are_built():
    cfg = build_dataclass(Experiment, {"distill": {"steps": 3, "mask": {"radius": 4}},
                                       "extra_mask": {"kind": "occupancy"}})
    assert cfg.distill.steps == 3 and cfg.distill.mask == Mask("none", 4)
    assert cfg.extra_mask == Mask("occupancy", 2) and cfg.out == "out"


def test_top_level_typo_names_the_key_and_the_known_keys():
    with pytest.raises(ConfigError) as err:
        build_dataclass(Experiment, {"outt": "x"})
    assert str(err.value) == "unknown key 'outt' (known: distill, extra_mask, out)"
    assert isinstance(err.value, ValueError)


def test_nested_typo_names_the_full_path():
    with pytest.raises(ConfigError) as err:
        build_dataclass(Experiment, {"distill": {"lossess": {}}}, "")
    assert str(err.value) == "unknown key 'distill.lossess' (known: losses, mask, steps)"
    with pytest.raises(ConfigError, match=r"unknown key 'config\.distill\.mask\.radiu' "
                                          r"\(known: kind, radius\)"):
        build_dataclass(Experiment, {"distill": {"mask": {"radiu": 1}}}, "config")


def test_bad_shapes_and_values_name_the_path():
    with pytest.raises(ConfigError, match=r"distill: expected a mapping, got int"):
        build_dataclass(Experiment, {"distill": 3}, "")
    with pytest.raises(ConfigError, match=r"^distill: steps must be >= 1"):
        build_dataclass(Experiment, {"distill": {"steps": 0}}, "")
    with pytest.raises(ConfigError, match=r"^run: expected a mapping, got list"):
        build_dataclass(Distill, [1, 2], "run")
    with pytest.raises(ConfigError, match=r"unknown key 'a\.b\.c' \(known: x, y\)"):
        check_keys({"x": 1, "c": 2}, ("y", "x"), "a.b")


def test_run_config_and_model_configs_are_strict():
    from event_fm.models import EventFMConfig
    from event_fm.models.forecast import ForecastConfig, SimVPConfig
    from event_fm.models.gep import GEPConfig
    from event_fm.models.reconstruction import ReconstructionConfig
    from training.runner import RunConfig, split_run_config

    with pytest.raises(ConfigError, match=r"unknown key 'run\.lr_rate' \(known: amp, batch_size"):
        RunConfig.from_dict({"lr_rate": 1.0})
    assert not hasattr(RunConfig(), "extra")  # nothing is stashed any more
    for cls, path in ((EventFMConfig, "model"), (ForecastConfig, "model"),
                      (SimVPConfig, "simvp_model"), (GEPConfig, "model"),
                      (ReconstructionConfig, "model")):
        with pytest.raises(ConfigError, match=rf"unknown key '{path}\.bogus' \(known: .*\)"):
            cls.from_dict({"bogus": 1})

    run_cfg, own = split_run_config({"lr": 0.1, "windows": 4}, "out/x", own=("windows",))
    assert run_cfg.lr == 0.1 and run_cfg.out_dir == "out/x" and own == {"windows": 4}
    with pytest.raises(ConfigError) as err:
        split_run_config({"window": 4}, "out/x", own=("windows",), path="fit")
    assert "unknown key 'fit.window'" in str(err.value)
    assert "windows" in str(err.value) and "batch_size" in str(err.value)


def test_distill_nested_settings_are_strict():
    from training.stages.distill import check_section

    check_section({"losses": {"realm": 1.0, "scaleevent": 0.5}, "scaleevent": {"lambda_is": 1}})
    with pytest.raises(ConfigError, match=r"unknown key 'distill\.scaleevent\.lambda_iss' "
                                          r"\(known: lambda_cs, lambda_is, use_l1\)"):
        check_section({"scaleevent": {"lambda_iss": 1.0}})
    with pytest.raises(ConfigError, match=r"unknown key 'distill\.losses\.reaml'"):
        check_section({"losses": {"reaml": 1.0}})
    check_section({"augment": {"flip": 0.5}})
    with pytest.raises(ConfigError, match=r"unknown key 'distill\.augment\.flop'"):
        check_section({"augment": {"flop": 0.5}})


def test_forecast_sampling_keys_are_the_live_settings():
    from event_fm.pipeline.forecast import ForecastSettings
    from training.forecast.align import SAMPLING_KEYS

    assert set(SAMPLING_KEYS) == set(ForecastSettings.__dataclass_fields__)


def write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("typo,expected", [
    ({"fitt": {"steps": 1}}, "unknown key 'fitt' (known: data, fit, judge, out, report)"),
    ({"fit": {"sobel_wieght": 1.0}}, "unknown key 'fit.sobel_wieght' (known: amp, batch_size"),
    ({"fit": {"model": {"widthz": [4]}}}, "unknown key 'fit.model.widthz' (known: "),
])
def test_cli_reports_a_typo_in_one_line_with_exit_code_2(tmp_path, capsys, typo, expected):
    from event_fm.cli.main import main

    config = write(tmp_path, {"out": str(tmp_path / "out"), **typo})
    assert main(["train", "reconstruct", "fit", "--config", config, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expected in err and config in err


def test_distill_cli_names_a_nested_typo(tmp_path, capsys):
    from training.cli import main

    config = write(tmp_path, {"out": str(tmp_path / "out"), "data": {"root": str(tmp_path)},
                              "distill": {"lossess": {"realm": 1.0}}})
    assert main(["distill", "distill", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'distill.lossess' (known: " in err and "losses" in err


def distill_family_checks(config: dict) -> None:
    from event_fm.models import EventFMConfig
    from training.runner import RunConfig, split_run_config
    from training.stages import distill, supervised
    from training.stages.common import AUGMENT_DEFAULTS, MODEL_FILE_KEYS
    from training.stages.steps import FAMILY, merge

    check_keys(config, FAMILY.sections)
    EventFMConfig.from_dict({k: v for k, v in config.get("model", {}).items()
                             if k not in MODEL_FILE_KEYS})
    RunConfig.from_dict(config.get("run"))
    for stage in ("teacher", "heads", "scratch"):
        split_run_config(config.get(stage) or {}, "x", own=supervised.SECTION_KEYS, path=stage)
        check_keys((config.get(stage) or {}).get("augment") or {}, AUGMENT_DEFAULTS,
                   f"{stage}.augment")
    variants = [config] + [merge(config, row) for row in
                           config.get("reproduction", {}).get("rows", {}).values()
                           if isinstance(row, dict)]
    for variant in variants:
        section = variant.get("distill") or {}
        split_run_config(section, "x", own=distill.SECTION_KEYS, path="distill")
        distill.check_section(section)


def forecast_family_checks(config: dict) -> None:
    from event_fm.models.forecast import ForecastConfig, SimVPConfig
    from training.forecast.align import ALIGN_KEYS, SAMPLING_KEYS
    from training.forecast.data import DATA_KEYS
    from training.forecast.fewstep import FEWSTEP_KEYS
    from training.forecast.steps import FAMILY
    from training.runner import split_run_config

    check_keys(config, FAMILY.sections)
    check_keys(config["data"], DATA_KEYS, "data")
    ForecastConfig.from_dict(config["model"])
    SimVPConfig.from_dict(config["simvp_model"])
    for name in ("fit", "simvp"):
        split_run_config(config[name], "x", path=name)
    check_keys(config["align"], ALIGN_KEYS, "align")
    check_keys(config["sampling"], SAMPLING_KEYS, "sampling")
    split_run_config(config["fewstep"], "x", own=FEWSTEP_KEYS, path="fewstep")


def gep_family_checks(config: dict) -> None:
    from event_fm.models.gep import GEPConfig
    from training.gep.pipeline import FIT_KEYS
    from training.gep.steps import FAMILY
    from training.runner import split_run_config

    check_keys(config, FAMILY.sections)
    GEPConfig.from_dict({**config["model"], "token_dim": 192})
    split_run_config(config["fit"], "x", own=FIT_KEYS, path="fit")


def reconstruct_family_checks(config: dict) -> None:
    from event_fm.models.reconstruction import ReconstructionConfig
    from training.reconstruct.steps import FAMILY
    from training.reconstruct.train import ReconstructSettings
    from training.runner import split_run_config

    check_keys(config, FAMILY.sections)
    _, own = split_run_config(config["fit"], "x", own=ReconstructSettings.__dataclass_fields__)
    settings = build_dataclass(ReconstructSettings, own, "fit")
    ReconstructionConfig.from_dict(settings.model, "fit.model")


CHECKS = {"default": distill_family_checks, "smoke": distill_family_checks,
          "demo_smoke": distill_family_checks, "matcher": distill_family_checks,
          "varied": distill_family_checks, "full_size": distill_family_checks,
          "forecast": forecast_family_checks,
          "gep": gep_family_checks, "reconstruct": reconstruct_family_checks}


def test_every_shipped_yaml_is_covered():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_shipped_yaml_passes_the_strict_checks(name):
    CHECKS[name](yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()))
