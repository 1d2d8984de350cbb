"""Roles: the table covers every method of every callscribe.v1 service, and the kit's auth interceptor applies it
to every method over a real gRPC server (each role x each method); tokens with roles and the deprecated
`token_sha256` lists (admins) in the tenants file."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from prometheus_client import CollectorRegistry

import callscribe.v1
from callscribe.kit.roles import ADMIN, ALLOWED, ANALYST, ROLES, SERVICE, SUPERVISOR, UPLOADER, allowed_roles
from callscribe.kit.server import GrpcServer, ServiceBinding
from callscribe.kit.settings import ServiceSettings
from callscribe.kit.tenants import TenantRegistry

SERVICE_TOKEN = "token-of-the-pipeline"
LEGACY_TOKEN = "token-listed-under-token_sha256"
ROLE_TOKENS = {role: f"token-of-acme-{role}" for role in ROLES}


def _services() -> list[tuple[ServiceDescriptor, Any]]:
    """Every service of every callscribe.v1 module, with its generated *_pb2_grpc module."""
    found = []
    for module in pkgutil.iter_modules(callscribe.v1.__path__):
        if not module.name.endswith("_pb2"):
            continue
        pb2 = importlib.import_module(f"callscribe.v1.{module.name}")
        for service in pb2.DESCRIPTOR.services_by_name.values():
            found.append((service, importlib.import_module(f"callscribe.v1.{module.name}_grpc")))
    return found


SERVICES = _services()
METHODS: list[MethodDescriptor] = [m for service, _ in SERVICES for m in service.methods]


def _full_name(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_every_method_of_every_service_has_an_entry_in_the_table() -> None:
    names = {_full_name(m) for m in METHODS}
    assert {s.name for s, _ in SERVICES} >= {"IngestService", "IndexerService", "LifecycleService", "VadService"}
    missing = sorted(names - set(ALLOWED))
    assert missing == [], (
        f"add these methods to callscribe.kit.roles.ALLOWED (refused to everybody until then): {missing}"
    )
    stale = sorted(set(ALLOWED) - names)
    assert stale == [], f"entries in callscribe.kit.roles.ALLOWED for methods that do not exist: {stale}"


@pytest.mark.parametrize("method", sorted(ALLOWED))
def test_every_entry_names_known_roles_and_admin_unless_pipeline_only(method: str) -> None:
    roles = allowed_roles(method)
    assert roles and roles <= {*ROLES, SERVICE}
    assert ADMIN in roles or roles == {SERVICE}


def test_a_method_without_an_entry_is_refused_to_everybody() -> None:
    assert allowed_roles("/callscribe.v1.IngestService/Erase") == frozenset()


def test_roles_include_what_the_role_before_them_reads() -> None:
    for method, roles in ALLOWED.items():
        if ANALYST in roles:
            assert SUPERVISOR in roles and ADMIN in roles, method
    assert UPLOADER in allowed_roles("/callscribe.v1.IngestService/UploadRecording")
    assert allowed_roles("/callscribe.v1.IngestService/SetLegalHold") == {ADMIN}


# --------------------------------------------------------------------------- every role x every method


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roles") / "tenants.json"
    tokens = [{"sha256": _sha(t), "role": role, "name": f"acme-{role}"} for role, t in ROLE_TOKENS.items()]
    doc = {
        "tenants": {"acme": {"tokens": tokens}, "oldco": {"token_sha256": [_sha(LEGACY_TOKEN)]}},
        "service_accounts": {"pipeline": {"token_sha256": [_sha(SERVICE_TOKEN)]}},
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def server(tenants_file: Path) -> Iterator[GrpcServer]:
    """Every callscribe.v1 service, each method answering UNIMPLEMENTED (the generated base servicers): what a
    call gets past the interceptors is that; what the role check refuses is PERMISSION_DENIED."""
    settings = ServiceSettings(grpc_address="127.0.0.1:0", metrics_address="127.0.0.1:0", tenants_file=tenants_file)
    bindings = []
    for service, grpc_module in SERVICES:
        base = getattr(grpc_module, f"{service.name}Servicer")
        add = getattr(grpc_module, f"add_{service.name}Servicer_to_server")
        bindings.append(ServiceBinding(service.full_name, add, base()))
    started = GrpcServer("rolestest", settings, bindings, CollectorRegistry())
    started.start()
    yield started
    started.stop(0)


def _call(channel: grpc.Channel, method: MethodDescriptor, metadata: list[tuple[str, str]]) -> tuple[Any, str]:
    """The call's status code and details (every call fails: UNIMPLEMENTED or refused)."""
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    call = kind(_full_name(method), request_class.SerializeToString, response_class.FromString)
    request: Any = iter([request_class()]) if method.client_streaming else request_class()
    try:
        reply = call(request, metadata=metadata, timeout=10)
        if method.server_streaming:
            list(reply)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    raise AssertionError(f"{method.name} answered OK: the base servicer should have said UNIMPLEMENTED")


CALLERS = [*ROLES, "legacy", SERVICE]


def _metadata(caller: str) -> list[tuple[str, str]]:
    if caller == SERVICE:
        return [("authorization", f"Bearer {SERVICE_TOKEN}"), ("x-callscribe-tenant", "acme")]
    token = LEGACY_TOKEN if caller == "legacy" else ROLE_TOKENS[caller]
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", METHODS, ids=_full_name)
def test_each_role_may_call_exactly_what_the_table_allows(
    server: GrpcServer, method: MethodDescriptor, caller: str
) -> None:
    role = ADMIN if caller == "legacy" else caller  # a token_sha256 token is an admin
    with grpc.insecure_channel(server.address) as channel:
        code, details = _call(channel, method, _metadata(caller))
    if role in ALLOWED[_full_name(method)]:
        assert code == grpc.StatusCode.UNIMPLEMENTED, f"{caller} refused {method.name}"
        return
    assert code == grpc.StatusCode.PERMISSION_DENIED, f"{caller} allowed {method.name}"
    assert method.name in details and repr(role) in details
    needed = ALLOWED[_full_name(method)]
    if needed == {SERVICE}:
        assert "service account only" in details
    else:
        assert all(repr(r) in details for r in needed if r != SERVICE)


# --------------------------------------------------------------------------- the tenants file


def _load(tmp_path: Path, doc: dict) -> TenantRegistry:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(doc))
    return TenantRegistry.load(path)


def test_a_token_has_its_tenant_role_and_name(tmp_path: Path) -> None:
    registry = _load(
        tmp_path, {"tenants": {"acme": {"tokens": [{"sha256": _sha("t"), "role": ANALYST, "name": "qa"}]}}}
    )
    grant = registry.grant_for_token("t")
    assert grant is not None and (grant.tenant, grant.role, grant.name) == ("acme", ANALYST, "qa")
    assert registry.tenant_for_token("t") == registry.get("acme")
    assert registry.grant_for_token("other") is None


def test_token_sha256_lists_still_work_as_admins_with_a_deprecation_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="callscribe.kit.tenants"):
        registry = _load(tmp_path, {"tenants": {"oldco": {"token_sha256": [_sha("old").upper()]}}})
    grant = registry.grant_for_token("old")
    assert grant is not None and (grant.tenant, grant.role) == ("oldco", ADMIN)
    assert "oldco" in caplog.text and "deprecated" in caplog.text and "'tokens'" in caplog.text


def test_a_file_with_role_tokens_only_logs_no_deprecation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="callscribe.kit.tenants"):
        _load(tmp_path, {"tenants": {"acme": {"tokens": [{"sha256": _sha("t"), "role": UPLOADER}]}}})
    assert "deprecated" not in caplog.text


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([{"sha256": "abc", "role": ANALYST}], "64 hex digits"),
        ([{"sha256": _sha("t"), "role": "auditor"}], "role must be one of uploader, analyst, supervisor, admin"),
        ([{"sha256": _sha("t")}], "role must be one of"),
        ([{"sha256": _sha("t"), "role": ANALYST, "name": "two words"}], "name 'two words'"),
        ({"sha256": _sha("t")}, '"tokens" must be a list'),
        (["x"], "tokens\\[0\\] must be an object"),
    ],
)
def test_a_bad_token_entry_is_refused_with_what_to_fix(tmp_path: Path, tokens: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _load(tmp_path, {"tenants": {"acme": {"tokens": tokens}}})


def test_one_token_cannot_be_listed_twice(tmp_path: Path) -> None:
    entry = {"sha256": _sha("t"), "role": ANALYST}
    with pytest.raises(ValueError, match="lists too"):
        _load(tmp_path, {"tenants": {"a": {"tokens": [entry]}, "b": {"tokens": [entry]}}})
    with pytest.raises(ValueError, match="both 'tokens' and 'token_sha256'"):
        _load(tmp_path, {"tenants": {"a": {"tokens": [entry]}, "b": {"token_sha256": [_sha("t")]}}})
    with pytest.raises(ValueError, match="reuses a tenant's token"):
        _load(
            tmp_path,
            {"tenants": {"a": {"tokens": [entry]}}, "service_accounts": {"pipeline": {"token_sha256": [_sha("t")]}}},
        )
