"""The server factory every service uses: interceptors, health, reflection, metrics, TLS, graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from callscribe.kit.interceptors import AuthInterceptor, ErrorMappingInterceptor, MetricsInterceptor
from callscribe.kit.limits import MAX_CHUNK_BYTES
from callscribe.kit.settings import ServiceSettings
from callscribe.kit.tenants import TenantRegistry

log = logging.getLogger(__name__)

# Chunks are at most MAX_CHUNK_BYTES (4 MiB); leave room for the message envelope.
MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + 64 * 1024


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service: its full name (for health/reflection) and how to add it to a server."""

    full_name: str
    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: Any


class GrpcServer:
    """A started server. Health answers NOT_SERVING until `mark_serving()` (models warm, backends reachable).

    `long_call_slots` adds one handler thread per long-lived call the service admits (e.g. uploads in
    flight), on top of `settings.max_workers`, so such calls can never starve probes and short calls.
    `channel_options` are further gRPC core arguments of the service (e.g. its flow-control window).
    `address` overrides `settings.grpc_address` (a second program reading the same environment).
    """

    def __init__(
        self,
        service: str,
        settings: ServiceSettings,
        bindings: Sequence[ServiceBinding],
        registry: CollectorRegistry,
        long_call_slots: int = 0,
        channel_options: Sequence[tuple[str, int | str]] = (),
        address: str | None = None,
    ) -> None:
        tenants = TenantRegistry.load(settings.tenants_file)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=settings.max_workers + long_call_slots, thread_name_prefix=f"{service}-rpc"
            ),
            interceptors=[MetricsInterceptor(service, registry), AuthInterceptor(tenants), ErrorMappingInterceptor()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                *channel_options,
            ],
        )
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._names = [b.full_name for b in bindings]
        for binding in bindings:
            binding.add_to_server(binding.servicer, self._server)
        reflection.enable_server_reflection([*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        listen = address or settings.grpc_address
        self.port = self._bind(settings, listen)
        self.address = f"{listen.rpartition(':')[0]}:{self.port}"
        self._stopped = threading.Event()

    def _bind(self, settings: ServiceSettings, address: str) -> int:
        if settings.tls_cert_file and settings.tls_key_file:
            creds = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
            )
            port = self._server.add_secure_port(address, creds)
        else:
            port = self._server.add_insecure_port(address)
        if port == 0:
            raise RuntimeError(f"cannot listen on {address}: address in use or not local")
        return port

    def _set_health(self, status: int) -> None:
        for name in ("", *self._names):
            self._health.set(name, status)

    def start(self) -> None:
        self._server.start()
        log.info("gRPC listening on %s (%s)", self.address, ", ".join(self._names))

    def mark_serving(self) -> None:
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Stop taking calls, let in-flight ones finish within `grace` seconds."""
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._server.stop(grace).wait()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()


def start_metrics_server(address: str, registry: CollectorRegistry) -> None:
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host, registry=registry)
    log.info("metrics on http://%s/metrics", address)


def serve_until_signalled(server: GrpcServer, grace: float) -> None:
    """Block until SIGTERM/SIGINT, then stop gracefully. Call from the main thread."""

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping with %.1fs grace", signal.Signals(signum).name, grace)
        threading.Thread(target=server.stop, args=(grace,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.wait()
    log.info("stopped")


def service_channel(address: str, ca_file: object = None, max_message_bytes: int = 64 * 1024 * 1024) -> grpc.Channel:
    """A client channel to another callscribe service (the pipeline worker's and the lifecycle's calls): TLS
    when `ca_file` (a PEM CA bundle) is given, messages up to `max_message_bytes` either way."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if ca_file is not None:
        with open(str(ca_file), "rb") as handle:
            return grpc.secure_channel(address, grpc.ssl_channel_credentials(handle.read()), options=options)
    return grpc.insecure_channel(address, options=options)
