import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from dck_talking import cli

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_txt_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    space = [line for line in lines if line and not line.startswith("#")]
    assert sorted(map(str, map(Requirement, space))) == sorted(map(str, map(Requirement, project)))


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("pip install"))
    assert test_line.split("  #")[0].strip() in ci


def test_cli_bench_runs(capsys):
    assert cli.main(["bench", "--presets", "compact", "--batch-sizes", "1", "--dtypes", "fp32", "--seconds", "0"]) == 0
    table = capsys.readouterr().out
    assert "| compact | 5." in table and "| fp32 | 1 |" in table


def test_the_package_ships_the_top_level_hub_cards():
    """One source for the cards: `hub_card/` at the top, which the package's `hub_card` points to."""
    from importlib import resources

    assert (ROOT / "dck_talking" / "hub_card").resolve() == (ROOT / "hub_card").resolve()
    shipped = resources.files("dck_talking").joinpath("hub_card/model_card.md").read_text(encoding="utf-8")
    assert shipped == (ROOT / "hub_card" / "model_card.md").read_text(encoding="utf-8")


def test_the_pipeline_benchmark_runs_the_bundled_model_where_it_has_the_presets_shape():
    from dck_talking.bench import pipeline_model

    model, name = pipeline_model("compact")  # the bundled model is compact, with its own motion
    assert name == "the bundled default model (compact)" and model._hub_mixin_config["motion"] == "warp"
    assert pipeline_model("paper")[1] == "paper, random weights"


def test_the_pipeline_benchmark_runs_the_precision_asked_for(capsys):
    assert cli.main(["bench", "--pipeline", "--resolutions", "720p", "--video-seconds", "0.4", "--dtypes", "bf16"]) == 0
    header, _, _, _, first, again = capsys.readouterr().out.strip().splitlines()[-6:]
    assert "the bundled default model (compact) in bf16, device: " in header and ", batch 8, " in header
    assert first.startswith("| 720p (1280x720) | first | 10 | ") and again.startswith("| 720p (1280x720) | again | 10 | ")
