"""Teams settings from the environment, checked before the server starts.

The Bot Framework's own variable names are used (``MicrosoftAppId``, ``MicrosoftAppPassword``,
``MicrosoftAppType``, ``MicrosoftAppTenantId``) plus ``DEPTBOT_TEAMS_TENANTS``, an
allow-list of Microsoft Entra tenant ids, and ``DEPTBOT_TEAMS_EMULATOR_EMAIL``, who the Bot
Framework Emulator's user is (anonymous loopback mode only; with an app id it is an error, so
a forgotten development setting can never name anyone in production).

Why so strict: with an empty ``MicrosoftAppId`` botbuilder silently accepts requests
with no token at all. That is what the Bot Framework Emulator needs on a laptop, and a
hole anywhere else, so anonymous mode is only allowed on a loopback address. And because
a member's e-mail comes from *their* tenant's directory, an answer must never go to a
tenant we did not list: the e-mail of a foreign tenant's user proves nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import ConfigError

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
APP_TYPES = {
    "multitenant": "MultiTenant",
    "singletenant": "SingleTenant",
    "userassignedmsi": "UserAssignedMSI",
}
TENANTS_VAR = "DEPTBOT_TEAMS_TENANTS"
EMULATOR_VAR = "DEPTBOT_TEAMS_EMULATOR_EMAIL"
EMAIL_RE = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")


def is_guid(value: str) -> bool:
    return bool(GUID_RE.match(value or ""))


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for 0.0.0.0, "" and names."""
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TeamsSettings:
    """What the Teams endpoint needs; ``app_id == ""`` means anonymous local development."""

    app_id: str = ""
    app_password: str = ""
    app_type: str = "MultiTenant"
    app_tenant_id: str = ""
    tenants: frozenset[str] = frozenset()  # effective allow-list (lower case); empty = any
    emulator_email: str = ""  # the Emulator user's address (anonymous mode only), lower case

    @property
    def anonymous(self) -> bool:
        return not self.app_id

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TeamsSettings:
        """Parse and validate; ConfigError names the variable that is wrong."""
        app_id = env.get("MicrosoftAppId", "").strip()
        password = env.get("MicrosoftAppPassword", "").strip()
        raw_type = env.get("MicrosoftAppType", "").strip()
        tenant = env.get("MicrosoftAppTenantId", "").strip().lower()
        tenants = frozenset(t.lower() for t in re.split(r"[\s,;]+", env.get(TENANTS_VAR, "")) if t)
        for t in sorted(tenants):
            if not is_guid(t):
                raise ConfigError(f"{t!r} is not a tenant id (a GUID)", field=TENANTS_VAR)
        if tenant and not is_guid(tenant):
            raise ConfigError("must be your Microsoft Entra tenant id (a GUID)", field="MicrosoftAppTenantId")
        emulator = env.get(EMULATOR_VAR, "").strip().lower()
        if emulator and not EMAIL_RE.fullmatch(emulator):
            raise ConfigError(
                f"{emulator!r} is not one e-mail address (who the Bot Framework Emulator's user is)",
                field=EMULATOR_VAR,
            )
        if not app_id:
            if password:
                raise ConfigError(
                    "is set but MicrosoftAppId is empty; set both (or neither for local development)",
                    field="MicrosoftAppPassword",
                )
            return cls(tenants=tenants, app_tenant_id=tenant, emulator_email=emulator)
        if emulator:
            raise ConfigError(
                "is for local testing with the Bot Framework Emulator (no MicrosoftAppId) only; "
                "unset it when MicrosoftAppId is set",
                field=EMULATOR_VAR,
            )
        if not is_guid(app_id):
            raise ConfigError("must be the bot's Microsoft app (client) id, a GUID", field="MicrosoftAppId")
        if not raw_type:
            raise ConfigError(
                "is required with MicrosoftAppId: SingleTenant, MultiTenant or UserAssignedMSI",
                field="MicrosoftAppType",
            )
        app_type = APP_TYPES.get(raw_type.lower())
        if app_type is None:
            raise ConfigError(
                f"{raw_type!r} is not one of SingleTenant, MultiTenant, UserAssignedMSI",
                field="MicrosoftAppType",
            )
        if app_type in ("SingleTenant", "UserAssignedMSI") and not tenant:
            raise ConfigError(
                f"is required when MicrosoftAppType is {app_type}", field="MicrosoftAppTenantId"
            )
        if app_type in ("SingleTenant", "MultiTenant") and not password:
            raise ConfigError(
                f"is required when MicrosoftAppType is {app_type} (the bot's client secret)",
                field="MicrosoftAppPassword",
            )
        if not tenants:
            if app_type == "MultiTenant":
                raise ConfigError(
                    "is required for a MultiTenant bot: list the tenant ids allowed to use it",
                    field=TENANTS_VAR,
                )
            tenants = frozenset({tenant})
        return cls(
            app_id=app_id,
            app_password=password,
            app_type=app_type,
            app_tenant_id=tenant,
            tenants=tenants,
        )

    def bot_framework_config(self) -> Any:
        """The attribute bag ``ConfigurationBotFrameworkAuthentication`` reads."""

        class _Config:
            APP_ID = self.app_id
            APP_PASSWORD = self.app_password
            APP_TYPE = self.app_type
            APP_TENANTID = self.app_tenant_id or None

        return _Config()


def check_teams_settings(settings: Any, host: str) -> None:
    """Refuse to start with unsafe or incomplete Teams settings; ConfigError names the variable.

    ``settings`` is ``bot.settings.Settings`` (its ``env`` snapshot is read); ``host`` is the
    address the server binds to.
    """
    teams = TeamsSettings.from_env(settings.env)
    if teams.anonymous and not is_loopback_host(host):
        raise ConfigError(
            f"is not set, so the Teams endpoint would accept unauthenticated requests on {host!r}. "
            "Set MicrosoftAppId/MicrosoftAppPassword/MicrosoftAppType/MicrosoftAppTenantId, "
            "or bind to 127.0.0.1 for local testing with the Bot Framework Emulator",
            field="MicrosoftAppId",
        )
