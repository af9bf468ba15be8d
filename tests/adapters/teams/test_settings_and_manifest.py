"""Start-up checks (``check_teams_settings``) and the app package (``build_manifest_zip``)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bot.adapters.teams import inbound
from bot.adapters.teams.auth import TeamsSettings, check_teams_settings
from bot.adapters.teams.manifest import TEMPLATE_DIR, build_manifest_zip
from bot.errors import ConfigError
from tests.adapters.teams.conftest import APP_ID, TENANT, make_settings

GOOD = {
    "MicrosoftAppId": APP_ID,
    "MicrosoftAppPassword": "secret",
    "MicrosoftAppType": "SingleTenant",
    "MicrosoftAppTenantId": TENANT,
}


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_anonymous_mode_is_allowed_on_loopback(tmp_path: Path, host: str) -> None:
    check_teams_settings(make_settings(tmp_path, {}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "bot.example.com", ""])
def test_anonymous_mode_refuses_other_hosts(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_teams_settings(make_settings(tmp_path, {}), host)
    assert err.value.field == "MicrosoftAppId"


def test_complete_single_tenant_settings_start_anywhere(tmp_path: Path) -> None:
    check_teams_settings(make_settings(tmp_path, GOOD), "0.0.0.0")
    teams = TeamsSettings.from_env(GOOD)
    assert teams.tenants == {TENANT} and not teams.anonymous


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"MicrosoftAppId": "my-bot"}, "MicrosoftAppId"),
        ({"MicrosoftAppType": ""}, "MicrosoftAppType"),
        ({"MicrosoftAppType": "Personal"}, "MicrosoftAppType"),
        ({"MicrosoftAppPassword": ""}, "MicrosoftAppPassword"),
        ({"MicrosoftAppTenantId": ""}, "MicrosoftAppTenantId"),
        ({"MicrosoftAppTenantId": "contoso"}, "MicrosoftAppTenantId"),
        ({"MicrosoftAppType": "MultiTenant"}, "DEPTBOT_TEAMS_TENANTS"),
        ({"DEPTBOT_TEAMS_TENANTS": "contoso.onmicrosoft.com"}, "DEPTBOT_TEAMS_TENANTS"),
        ({"MicrosoftAppId": "", "MicrosoftAppTenantId": ""}, "MicrosoftAppPassword"),
    ],
)
def test_incomplete_settings_name_the_variable(tmp_path: Path, change: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_teams_settings(make_settings(tmp_path, {**GOOD, **change}), "0.0.0.0")
    assert err.value.field == field
    assert field in str(err.value)


def test_multitenant_with_an_allow_list(tmp_path: Path) -> None:
    other = "0a1b2c3d-0000-4000-8000-000000000001"
    env = {**GOOD, "MicrosoftAppType": "MultiTenant", "DEPTBOT_TEAMS_TENANTS": f"{TENANT}, {other.upper()}"}
    assert TeamsSettings.from_env(env).tenants == {TENANT, other}


def test_managed_identity_needs_no_password() -> None:
    env = {**GOOD, "MicrosoftAppType": "UserAssignedMSI", "MicrosoftAppPassword": ""}
    assert TeamsSettings.from_env(env).app_type == "UserAssignedMSI"


# ── manifest ────────────────────────────────────────────────────────────────────────────


def test_manifest_zip_is_flat_filled_in_and_valid(tmp_path: Path) -> None:
    out = build_manifest_zip(APP_ID.upper(), "https://bot.example.com/", tmp_path / "out" / "deptbot.zip")
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
        assert manifest["validDomains"] == ["bot.example.com"]
        assert manifest["manifestVersion"] == "1.25" and "/v1.25/" in manifest["$schema"]
        assert "{{" not in json.dumps(manifest)


def test_manifest_commands_are_the_ones_the_bot_understands() -> None:
    manifest = json.loads((TEMPLATE_DIR / "manifest.json").read_text())
    for commands in manifest["bots"][0]["commandLists"]:  # one list per scope
        # privacy requests are answered only in a 1:1 chat, so only the personal list has them
        listed = inbound.PERSONAL_COMMANDS if commands["scopes"] == ["personal"] else inbound.COMMANDS
        assert [c["title"] for c in commands["commands"]] == [t for t, _ in listed]
    examples = {
        "help": "help",
        "ask": "ask hr q",
        "task": "task hr x in",
        "kb status": "kb status",
        "kb refresh": "kb refresh hr",
    }
    kinds = [inbound.parse_command(examples[t], ["hr"], {"hr": ["x"]}).kind for t, _ in inbound.COMMANDS]
    assert kinds == ["help", "ask", "task", "status", "refresh"]


def test_icons_have_the_sizes_and_colours_teams_wants() -> None:
    with Image.open(TEMPLATE_DIR / "color.png") as color:
        assert color.size == (192, 192)
    with Image.open(TEMPLATE_DIR / "outline.png") as outline:
        rgba = outline.convert("RGBA")
        assert rgba.size == (32, 32)
        pixels = [rgba.getpixel((x, y)) for y in range(32) for x in range(32)]
        assert {p[:3] for p in pixels if isinstance(p, tuple) and p[3]} == {(255, 255, 255)}
        assert any(isinstance(p, tuple) and p[3] == 0 for p in pixels)


@pytest.mark.parametrize(
    ("app_id", "domain", "field"),
    [
        ("not-a-guid", "bot.example.com", "--app-id"),
        (APP_ID, "localhost", "--domain"),
        (APP_ID, "bot example.com", "--domain"),
        (APP_ID, "*.example.com", "--domain"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, app_id: str, domain: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_manifest_zip(app_id, domain, tmp_path / "x.zip")
    assert err.value.field == field
    assert not (tmp_path / "x.zip").exists()


def _template_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "teams"
    shutil.copytree(TEMPLATE_DIR, folder)
    return folder


def test_wrong_icon_size_is_refused(tmp_path: Path) -> None:
    folder = _template_copy(tmp_path)
    Image.new("RGBA", (96, 96), (0, 0, 0, 255)).save(folder / "color.png")
    with pytest.raises(ConfigError, match="192×192") as err:
        build_manifest_zip(APP_ID, "bot.example.com", tmp_path / "x.zip", source=folder)
    assert err.value.field == "icons.color"


def test_coloured_outline_icon_is_refused(tmp_path: Path) -> None:
    folder = _template_copy(tmp_path)
    Image.new("RGBA", (32, 32), (200, 0, 0, 255)).save(folder / "outline.png")
    with pytest.raises(ConfigError, match="white on a transparent") as err:
        build_manifest_zip(APP_ID, "bot.example.com", tmp_path / "x.zip", source=folder)
    assert err.value.field == "icons.outline"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda m: m["bots"][0]["commandLists"][0].update(
                commands=[{"title": f"c{i}", "description": "d"} for i in range(11)]
            ),
            "commands",
        ),
        (lambda m: m["bots"][0]["commandLists"][0]["commands"][0].update(title="x" * 33), "title"),
        (
            lambda m: m["bots"][0]["commandLists"][0]["commands"][0].update(description="x" * 129),
            "description",
        ),
        (lambda m: m["bots"][0].update(commandLists=m["bots"][0]["commandLists"] * 4), "commandLists"),
        (lambda m: m["name"].update(short="x" * 31), "name.short"),
        (lambda m: m.update(manifestVersion="devPreview"), "manifestVersion"),
        (lambda m: m["bots"][0].update(scopes=["everyone"]), "scopes"),
    ],
)
def test_manifest_limits_are_checked(tmp_path: Path, edit: object, field: str) -> None:
    folder = _template_copy(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)  # type: ignore[operator]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError) as err:
        build_manifest_zip(APP_ID, "bot.example.com", tmp_path / "x.zip", source=folder)
    assert field in (err.value.field or "")
