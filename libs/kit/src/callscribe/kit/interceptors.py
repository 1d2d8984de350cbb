"""Server interceptors: metrics (outermost), bearer-token auth and role check, domain-error mapping (innermost).

Each wraps the method's behaviour function, so it runs in the handler thread: the tenant
context variable set by auth is visible to the servicer, and errors raised while a
response stream is iterated are seen too.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, NoReturn

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from callscribe.kit.errors import DomainError, InvalidArgument, PermissionDenied, Unauthenticated
from callscribe.kit.roles import SERVICE, Actor, refusal
from callscribe.kit.status import status_of
from callscribe.kit.tenants import Tenant, TenantRegistry

log = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.ServicerContext], Any]

# Metadata a service account sets to name the tenant it acts for.
ACTING_TENANT_HEADER = "x-callscribe-tenant"

_current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("callscribe_tenant", default=None)
# The service account that made the call (None: a tenant's own token).
_current_account: contextvars.ContextVar[str | None] = contextvars.ContextVar("callscribe_account", default=None)
# Who made the call: its token's name and role, or the service account (role `service`).
_current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("callscribe_actor", default=None)

# RFC 6750 b64token after exactly one space: nothing else is a bearer credential.
_BEARER = re.compile(r"Bearer ([A-Za-z0-9\-._~+/]+=*)")

# Health checks and reflection answer without a token: probes and grpcurl need them.
PUBLIC_SERVICE_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def caller_tenant() -> Tenant:
    """The tenant the current call authenticated as."""
    tenant = _current_tenant.get()
    if tenant is None:
        raise Unauthenticated("no authenticated tenant for this call")
    return tenant


def caller_actor() -> Actor:
    """Who made the current call: the token's name and role, or the service account (what the trail records)."""
    actor = _current_actor.get()
    if actor is None:
        raise Unauthenticated("no authenticated caller for this call")
    return actor


def caller_role() -> str:
    """The role of the current call's token (`kit.roles`), `service` for a service account. The auth
    interceptor has already checked it against the method's entry in the role table."""
    return caller_actor().role


def require_service_account(what: str) -> str:
    """The service account making the call; a tenant's own token is refused (pipeline-internal RPCs)."""
    account = _current_account.get()
    if account is None:
        raise PermissionDenied(f"{what} is for the pipeline's service account only; a tenant's token cannot call it")
    return account


def resolve_tenant(requested: str) -> Tenant:
    """The caller's tenant; a request naming another tenant is refused, an empty one means the caller's."""
    tenant = caller_tenant()
    if requested and requested != tenant.name:
        raise PermissionDenied(f"your token belongs to tenant {tenant.name!r}, not {requested!r}")
    return tenant


class _WrappingInterceptor(grpc.ServerInterceptor):
    """Runs every non-public call's behaviour inside `guard(method, context)`."""

    wraps_public = True

    def guard(self, method: str, context: grpc.ServicerContext) -> AbstractContextManager[None]:
        raise NotImplementedError

    def wrap(self, method: str, behavior: Behavior, streams_response: bool) -> Behavior:
        if not self.wraps_public and method.startswith(PUBLIC_SERVICE_PREFIXES):
            return behavior
        if streams_response:

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with self.guard(method, context):
                    yield from behavior(request, context)

            return stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            with self.guard(method, context):
                return behavior(request, context)

        return unary

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        kinds = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler, False),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler, True),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler, False),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler, True),
        )
        for behavior, make_handler, streams_response in kinds:
            if behavior:
                return make_handler(
                    self.wrap(method, behavior, streams_response),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


class Undecodable:
    """What a request that could not be deserialized becomes (instead of gRPC's INTERNAL "Exception
    deserializing request!" and a traceback): the method then answers INVALID_ARGUMENT."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            f"the request could not be decoded ({self.reason}): every string field must be valid UTF-8 "
            "and the message must match the service's .proto"
        )


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - any failure to decode is the caller's malformed request
            return Undecodable(f"{type(exc).__name__}: {exc}"[:200])

    return deserialize


def _checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            raise request.error()
        yield request


class ErrorMappingInterceptor(_WrappingInterceptor):
    """Turns domain errors into their gRPC status; anything unexpected into INTERNAL with a reference.
    Requests that cannot be deserialized are INVALID_ARGUMENT (the innermost interceptor decodes them)."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        kinds = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler, False, False),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler, False, True),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler, True, False),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler, True, True),
        )
        for behavior, make_handler, streams_request, streams_response in kinds:
            if behavior:
                return make_handler(
                    self.wrap(method, _decoded(behavior, streams_request), streams_response),
                    request_deserializer=_safe(handler.request_deserializer),
                    response_serializer=handler.response_serializer,
                )
        return handler

    @contextlib.contextmanager
    def guard(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        try:
            yield
        except DomainError as exc:
            code = status_of(exc)
            log.info("%s -> %s: %s", method, code.name, exc.message)
            context.abort(code, exc.message)
        except Exception as exc:
            if context.code() is not None:  # context.abort() already chose the status
                raise
            ref = uuid.uuid4().hex[:12]
            log.exception("%s failed (ref %s)", method, ref)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref}): {type(exc).__name__}")


def _decoded(behavior: Behavior, streams_request: bool) -> Behavior:
    """`behavior` refusing undecodable requests (a stream's as they are read) with INVALID_ARGUMENT."""
    if streams_request:
        return lambda requests, context: behavior(_checked_stream(requests), context)

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            raise request.error()
        return behavior(request, context)

    return unary


class AuthInterceptor(_WrappingInterceptor):
    """`authorization: Bearer <token>` -> tenant and role, kept in context variables for the call; a role the
    method's entry in the role table (`kit.roles.ALLOWED`) does not name is PERMISSION_DENIED, and so is every
    method without an entry."""

    wraps_public = False

    def __init__(self, registry: TenantRegistry) -> None:
        self._registry = registry

    @contextlib.contextmanager
    def guard(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        tenant, account, actor = self._authenticate(context)
        if tenant is None or actor is None:
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or unknown bearer token: send metadata 'authorization: Bearer <token>'",
            )
        refused = refusal(method, actor)
        if refused is not None:
            log.info("%s refused for %s %s of %s: %s", method, actor.kind, actor.name, tenant.name, refused)
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, refused)
        token = _current_tenant.set(tenant)
        account_token = _current_account.set(account)
        actor_token = _current_actor.set(actor)
        try:
            yield
        finally:
            _current_actor.reset(actor_token)
            _current_account.reset(account_token)
            _current_tenant.reset(token)

    def _authenticate(self, context: grpc.ServicerContext) -> tuple[Tenant | None, str | None, Actor | None]:
        pairs = [(k, v) for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)]
        values = [v for k, v in pairs if k == "authorization"]
        if len(values) > 1:
            # Which one would count is a guess a server must not make (acme's, then globex's).
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{len(values)} 'authorization' headers: send exactly one 'authorization: Bearer <token>'",
            )
        match = _BEARER.fullmatch(values[0]) if values else None
        if match is None:
            return None, None, None
        token = match.group(1)
        grant = self._registry.grant_for_token(token)
        if grant is not None:
            return self._registry.get(grant.tenant), None, Actor("token", grant.name, grant.role)
        account = self._registry.service_account_for_token(token)
        if account is None:
            return None, None, None
        # A service account (the pipeline worker) acts for the tenant it names, one tenant per call.
        acting = [v for k, v in pairs if k == ACTING_TENANT_HEADER]
        if len(acting) > 1:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{len(acting)} '{ACTING_TENANT_HEADER}' headers: a service account acts for one tenant per call",
            )
        acting_for = acting[0] if acting else ""
        tenant = self._registry.get(acting_for)
        if tenant is None:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"service account {account!r} must name a known tenant in metadata "
                f"'{ACTING_TENANT_HEADER}' (got {acting_for!r})",
            )
        return tenant, account, Actor("service_account", account, SERVICE)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("grpc's context.abort returned instead of raising")


class MetricsInterceptor(_WrappingInterceptor):
    """Requests, latency and status codes per method: callscribe_<service>_grpc_*."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        prefix = f"callscribe_{service}_grpc"
        self._requests = Counter(f"{prefix}_requests", "gRPC calls handled", ["method", "code"], registry=registry)
        self._latency = Histogram(
            f"{prefix}_request_seconds",
            "gRPC call latency",
            ["method"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )

    @contextlib.contextmanager
    def guard(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        started = time.perf_counter()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            code = context.code()
            name = code.name if code is not None else ("UNKNOWN" if failed else "OK")
            self._requests.labels(method, name).inc()
            self._latency.labels(method).observe(time.perf_counter() - started)
