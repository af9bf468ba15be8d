"""Settings are validated when loaded: a wrong type, a misspelt choice, an unknown key or
section, or a bad environment override is a ConfigError naming where it is — never a
traceback later, and never silently ignored."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import ConfigError
from bot.settings import DEFAULTS_FILE, Settings
from tests.fakes import make_company


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    old_umask = os.umask(0o022)

    def _run(*argv: str, settings: str | None = None) -> tuple[int, str, str]:
        if settings is not None:
            path = tmp_path / "mine.toml"
            path.write_text(settings)
            monkeypatch.setenv("DEPTBOT_SETTINGS", str(path))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield _run
    os.umask(old_umask)


def load(tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None) -> Settings:
    path = None
    if text is not None:
        path = tmp_path / "mine.toml"
        path.write_text(text)
    return Settings.load(departments=tmp_path, state=tmp_path / "st", settings_file=path, env=env or {})


def problem(tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text, env)
    return err.value


# ── the CLI ────────────────────────────────────────────────────────────────────────────


def test_a_misspelt_embedder_fails_check_naming_the_setting(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("check", settings='[retrieval]\nembedder = "wordlama"\n')
    assert code == 2
    assert "mine.toml:2: retrieval.embedder: must be 'wordllama' or 'minilm', got 'wordlama'" in err
    assert "did you mean 'wordllama'?" in err
    assert "configuration OK" not in out


def test_check_lists_settings_problems_with_the_department_problems(run) -> None:  # type: ignore[no-untyped-def]
    deps = Path(os.environ["DEPTBOT_DEPARTMENTS"])
    (deps / "hr.yaml").write_text("title: HR\nknowledge: ../knowledge/hr\nclasification: internal\n")
    text = '[retrieval]\ntop_k = "six"\ntopk = 3\n\n[cache]\nbackend = "redis"\n'
    code, _, err = run("check", settings=text)
    assert code == 2
    lines = err.strip().splitlines()
    assert any(
        line.endswith("mine.toml:2: retrieval.top_k: must be a whole number, got 'six'") for line in lines
    )
    assert any("mine.toml:3: retrieval.topk: unknown setting; did you mean top_k?" in line for line in lines)
    assert any("mine.toml:6: cache.backend: must be 'sqlite' or 'memory'" in line for line in lines)
    assert any("hr.yaml:3: clasification: unknown field" in line for line in lines)
    assert lines[-1] == "4 problems in 2 files — fix them and run deptbot check again"


def test_a_wrong_type_makes_ask_exit_2_without_a_traceback(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(
        "ask",
        "How many vacation days?",
        "--user",
        "alice@example.com",
        settings='[retrieval]\ntop_k = "six"\n',
    )
    assert code == 2
    assert err.startswith("configuration error: ")
    assert "mine.toml:2: retrieval.top_k: must be a whole number, got 'six'" in err
    assert "Traceback" not in out + err


def test_every_command_reports_every_settings_problem(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("usage", settings="[retrieval]\ntop_k = 0\n[knowledge]\nmax_pdf_pages = -1\n")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("configuration error: ") for line in lines)
    assert "retrieval.top_k: must be at least 1, got 0" in lines[0]
    assert "knowledge.max_pdf_pages: must be at least 1, got -1" in lines[1]


# ── the file ───────────────────────────────────────────────────────────────────────────


def test_an_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    err = problem(tmp_path, "# mine\n[retrieval]\nfusion = 'rrf'\ntopk = 8\n")
    assert err.field == "retrieval.topk"
    assert err.file == str(tmp_path / "mine.toml") and err.line == 4
    assert err.problem == "unknown setting; did you mean top_k?"


def test_an_unknown_key_in_a_nested_table(tmp_path: Path) -> None:
    err = problem(tmp_path, '[llm.anthropic]\nsmal = "claude-haiku-4-5"\n')
    assert (err.field, err.line) == ("llm.anthropic.smal", 2)
    assert "did you mean small?" in err.problem


def test_an_unknown_section_is_an_error(tmp_path: Path) -> None:
    err = problem(tmp_path, "[retrievl]\ntop_k = 8\n")
    assert (err.field, err.line) == ("retrievl", 1)
    assert err.problem == "unknown section; did you mean [retrieval]?"
    assert "unknown section" in problem(tmp_path, "[nothing_like_it]\n").problem


def test_every_problem_is_found_and_the_first_names_the_rest(tmp_path: Path) -> None:
    err = problem(tmp_path, "[llm]\nmax_tokens = 0\ncloud_order = ['openai', 'azure']\n")
    assert err.field == "llm.max_tokens" and "and 1 more problem" in err.problem
    settings = Settings.load(
        departments=tmp_path, state=tmp_path, settings_file=tmp_path / "mine.toml", env={}, collect=True
    )
    assert [p.field for p in settings.problems] == ["llm.max_tokens", "llm.cloud_order[1]"]
    assert settings.values.llm.max_tokens == 800  # the rest of check runs on the defaults


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ('[retrieval]\nfusion = "sum"\n', "retrieval.fusion", "'minmax' or 'rrf'"),
        ('[knowledge]\nfollow_links = "always"\n', "knowledge.follow_links", "'never' or 'inside'"),
        ("[knowledge]\nfront_matter_ignore = ['Audience']\n", "knowledge.front_matter_ignore", "audience"),
        (
            "[access]\nslack_workspace_audience = ['everyone']\n",
            "access.slack_workspace_audience",
            "access entry",
        ),
        ("[access]\nignore_bot_members = 'yes'\n", "access.ignore_bot_members", "true or false"),
        ("[cache]\nttl_seconds = -5\n", "cache.ttl_seconds", "at least 0"),
        ("[llm]\ncloud_order = ['openai', 'openai']\n", "llm.cloud_order", "more than once"),
        ("[llm]\nestimate_margin = 0.5\n", "llm.estimate_margin", "at least 1"),
        ('[llm.prices]\n"gpt-4.1" = [2.0]\n', "llm.prices.gpt-4.1", "[input, output]"),
        ("[config]\nreload_seconds = true\n", "config.reload_seconds", "number"),
        ("retrieval = 3\n", "retrieval", "table"),
    ],
)
def test_values_are_checked(tmp_path: Path, text: str, field: str, words: str) -> None:
    err = problem(tmp_path, text)
    assert err.field == field and words in err.problem


def test_the_packaged_defaults_validate_and_are_the_schema() -> None:
    settings = Settings.load(env={})
    assert settings.problems == ()
    assert settings.values.retrieval.top_k == 6 and settings.values.cache.backend == "sqlite"
    packaged = tomllib.loads(DEFAULTS_FILE.read_text())
    assert set(settings.file) == set(packaged)
    for name, table in packaged.items():
        assert set(settings.section(name)) == set(table), name


def test_existing_section_readers_see_validated_values(tmp_path: Path) -> None:
    settings = load(
        tmp_path, "[knowledge]\nmax_file_mb = 3\n", env={"DEPTBOT_KNOWLEDGE__ALLOWED_ROOTS": '["/srv/docs"]'}
    )
    assert settings.section("knowledge")["max_file_mb"] == 3.0
    assert settings.section("knowledge")["allowed_roots"] == ["/srv/docs"]
    assert settings.retrieval["embedder"] == "wordllama"


# ── the environment ────────────────────────────────────────────────────────────────────


def test_an_environment_variable_overrides_file_and_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, "[retrieval]\ntop_k = 4\n", env={"DEPTBOT_RETRIEVAL__TOP_K": "8"})
    assert settings.retrieval["top_k"] == 8
    assert settings.values.retrieval.top_k == 8
    env = {
        "deptbot_cache__enabled": "false",
        "DEPTBOT_LLM__CLOUD_ORDER": '["openai"]',
        "DEPTBOT_LLM__ANTHROPIC__SMALL": "claude-x",
        "DEPTBOT_STATE": "ignored-here",
        "DEPTBOT_PRIVATE_LLM_URL": "http://127.0.0.1:1",
    }
    values = load(tmp_path, env=env).values
    assert values.cache.enabled is False and values.llm.cloud_order == ["openai"]
    assert values.llm.anthropic.small == "claude-x" and values.llm.anthropic.large == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        (
            "DEPTBOT_RETRIEVAL__TOP_K",
            "eight",
            "must be a whole number, got 'eight' (setting retrieval.top_k)",
        ),
        ("DEPTBOT_RETRIEVAL__EMBEDDER", "wordlama", "did you mean 'wordllama'?"),
        (
            "DEPTBOT_RETRIEVAL__TOPK",
            "8",
            "unknown setting retrieval.topk; did you mean DEPTBOT_RETRIEVAL__TOP_K?",
        ),
        ("DEPTBOT_RETRIEVL__TOP_K", "8", "unknown section retrievl; did you mean DEPTBOT_RETRIEVAL__…?"),
        ("DEPTBOT_LLM__CLOUD_ORDER", "openai", "JSON"),
    ],
)
def test_a_bad_environment_value_names_the_variable(tmp_path: Path, var: str, value: str, words: str) -> None:
    err = problem(tmp_path, env={var: value})
    assert err.file == "environment" and err.field == var
    assert words in err.problem


def test_settings_built_by_hand_are_checked_on_first_use(tmp_path: Path) -> None:
    good = Settings(departments_dir=tmp_path, state_dir=tmp_path, file={"access": {"max_channel_members": 7}})
    assert good.values.access.max_channel_members == 7 and good.values.retrieval.top_k == 6
    bad = Settings(departments_dir=tmp_path, state_dir=tmp_path, file={"retrieval": {"top_k": "six"}})
    with pytest.raises(ConfigError) as err:
        bad.values  # noqa: B018
    assert err.value.field == "retrieval.top_k"


def test_the_build_memory_and_ann_settings_reach_the_index(tmp_path: Path) -> None:
    from bot.wiring import build_knowledge

    text = "[knowledge]\nbuild_memory_mb = 32\nann_threshold = 7\n"
    settings = load(tmp_path, text, env={"DEPTBOT_KNOWLEDGE__ANN_THRESHOLD": "9"})
    kb = build_knowledge(settings)
    assert kb.indexer.build_memory_bytes == 32 * 2**20
    assert kb.indexer.ann_threshold == 9 and kb.reader.ann_threshold == 9  # the environment wins
