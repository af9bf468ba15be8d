"""What deptbot's SCIM service announces: RFC 7643 User (+ enterprise extension) and Group,
and a ServiceProviderConfig that claims only what the server really does.

PATCH and filtering (with ``startIndex``/``count`` paging) are supported; bulk, sorting,
ETags, password changes and cursors are not, so scim2-server answers 501 to a request
that uses them instead of pretending. The schemas and resource types are scim2-server's
packaged copies of the RFC ones, which scim2-models turns into the pydantic models that
validate every body.
"""

from __future__ import annotations

from typing import Any, cast

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    Patch,
    Path,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
)
from scim2_server.utils import load_default_resource_types, load_default_schemas

MAX_RESULTS = 1000  # a larger ``count`` is lowered to this (RFC 7644 §3.4.2.4)

CONFIG = ServiceProviderConfig(
    documentation_uri=None,
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_RESULTS),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=False),
    etag=ETag(supported=False),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="Bearer token",
            description="Authorization: Bearer <DEPTBOT_SCIM_TOKEN>",
            primary=True,
        )
    ],
)

# Tolerances scim2-models names after the providers that need them: Entra removes members
# with ``{"op": "Remove", "path": "members", "value": [{"value": id}]}`` and adds e-mails
# through ``emails[type eq "work"].value`` on users that have none yet. Attributes outside
# the schemas (an admin's custom mapping) are dropped: deptbot reads none of them.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

PROVIDER = ScimProvider.from_discovery(
    load_default_schemas().values(), load_default_resource_types().values(), config=CONFIG, policy=POLICY
)


def model(kind: str) -> Any:
    """The pydantic model of ``"User"`` (with the enterprise extension) or ``"Group"``."""
    found = PROVIDER.model_for(kind)
    if found is None:  # pragma: no cover - the packaged resource types always have both
        raise LookupError(kind)
    return found


def comparable(kind: str, attribute: str, value: str) -> Any:
    """``value`` as filters and uniqueness compare it (lower-cased unless ``caseExact``),
    so an index lookup agrees with ``ScimFilter.match``."""
    binding = cast(Any, Path)[model(kind)](attribute).resolve()
    return value if binding is None else binding.comparable(value)
