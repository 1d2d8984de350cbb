"""The real servers of the local stack: SeaweedFS (S3), noida-db (Elasticsearch API), Redis, Prometheus."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
from minio import Minio
from minio.error import S3Error

from callscribe.stack.binaries import find_noida, find_on_path, find_weed
from callscribe.stack.procs import (
    ManagedProcess,
    StackError,
    free_port,
    free_port_with_offset,
    spawn,
    stop,
    wait_until,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # "http://127.0.0.1:P"
    access_key: str
    secret_key: str
    metrics_url: str
    process: ManagedProcess

    @property
    def host(self) -> str:
        """``127.0.0.1:P``, the form the MinIO client takes."""
        return urlsplit(self.endpoint).netloc


@dataclass(frozen=True)
class RedisServer:
    url: str  # "redis://127.0.0.1:P/0"
    process: ManagedProcess


@dataclass(frozen=True)
class EsServer:
    url: str  # "http://127.0.0.1:P"
    process: ManagedProcess


@dataclass(frozen=True)
class PromServer:
    url: str  # "http://127.0.0.1:P"
    process: ManagedProcess


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of ``GET url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def _log_path(data_dir: Path, name: str, log_path: Path | None) -> Path:
    return log_path if log_path is not None else data_dir / f"{name}.log"


def _await(proc: ManagedProcess, ready: Callable[[], bool], what: str) -> None:
    """Wait for readiness; on failure stop the process so nothing is left behind."""
    try:
        wait_until(ready, START_TIMEOUT_S, what, proc)
    except BaseException:
        stop(proc)
        raise


def start_seaweedfs(data_dir: Path, log_path: Path | None = None, name: str = "s3") -> S3Server:
    """SeaweedFS ``weed mini`` (S3 API with Object Lock) with fresh random credentials; `name` names the process
    (a second server: the cold tier on another S3)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = secrets.token_hex(10).upper(), secrets.token_urlsafe(30)
    ports = {role: free_port_with_offset() for role in ("master", "volume", "filer", "s3", "admin")}
    metrics_port = free_port()
    argv = [find_weed(), "mini", f"-dir={data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}"]
    argv += [f"-{role}.port={port}" for role, port in ports.items()]
    argv += [f"-metricsPort={metrics_port}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    argv += ["-webdav=false", "-admin.ui=false"]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }
    proc = spawn(name, argv, env, _log_path(data_dir, name, log_path))
    endpoint = f"http://{HOST}:{ports['s3']}"
    # An anonymous request is refused (403) once the S3 gateway serves.
    _await(proc, lambda: http_status(f"{endpoint}/") == 403, f"SeaweedFS S3 at {endpoint}")
    metrics_url = f"http://{HOST}:{metrics_port}/metrics"
    return S3Server(endpoint, access_key, secret_key, metrics_url, proc)


def minio_client(s3: S3Server) -> Minio:
    return Minio(s3.host, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)


def create_locked_buckets(s3: S3Server, names: Iterable[str]) -> None:
    """Create each bucket with Object Lock enabled; an existing bucket must already have it."""
    client = minio_client(s3)
    for name in names:
        if not client.bucket_exists(name):
            client.make_bucket(name, object_lock=True)
            log.info("created bucket %s with Object Lock", name)
            continue
        try:
            client.get_object_lock_config(name)
        except S3Error as exc:
            raise StackError(f"bucket {name} exists without Object Lock: {exc.code}") from exc


def create_keys_bucket(s3: S3Server, name: str) -> None:
    """The bucket of wrapped data keys: neither versioning nor Object Lock (erasure deletes keys for good)."""
    client = minio_client(s3)
    if not client.bucket_exists(name):
        client.make_bucket(name)
        log.info("created keys bucket %s (no versioning, no Object Lock)", name)


def _redis_pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def start_redis(
    data_dir: Path, log_path: Path | None = None, port: int | None = None, durable: bool = False
) -> RedisServer:
    """Redis on loopback; ``port`` to restart one where its clients expect it. ``durable``: an append-only
    file in ``data_dir`` written every second (``appendfsync everysec``), so the queue, progress and dead
    letters survive a restart (the local stack); otherwise nothing is kept on disk (tests of a Redis that
    lost its data)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        find_on_path("redis-server"),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "yes" if durable else "no",
    ]
    if durable:
        argv += ["--appendfsync", "everysec"]
    argv += ["--dir", str(data_dir)]
    proc = spawn("redis", argv, dict(os.environ), _log_path(data_dir, "redis", log_path))
    url = f"redis://{HOST}:{port}/0"
    _await(proc, lambda: _redis_pings(url), f"Redis at {url}")
    return RedisServer(url, proc)


def start_elasticsearch(data_dir: Path, log_path: Path | None = None, port: int | None = None) -> EsServer:
    """noida-db serving only its Elasticsearch API; ``port`` to restart one (same data) where clients expect it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        find_noida(),
        "start",
        "--data-dir",
        str(data_dir),
        "--only",
        "elasticsearch",
    ]
    argv += ["--host", HOST, "--elasticsearch-port", str(port)]
    proc = spawn(
        "elasticsearch",
        argv,
        dict(os.environ),
        _log_path(data_dir, "elasticsearch", log_path),
    )
    url = f"http://{HOST}:{port}"
    _await(proc, lambda: http_status(f"{url}/") == 200, f"Elasticsearch API at {url}")
    return EsServer(url, proc)


def prometheus_config(targets: Mapping[str, str]) -> dict[str, object]:
    """One scrape job per metrics URL (``http://host:port/path``)."""
    jobs = []
    for job, url in sorted(targets.items()):
        parts = urlsplit(url)
        jobs.append(
            {
                "job_name": job,
                "scheme": parts.scheme or "http",
                "metrics_path": parts.path or "/metrics",
                "static_configs": [{"targets": [parts.netloc]}],
            }
        )
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": jobs,
    }


def start_prometheus(data_dir: Path, targets: Mapping[str, str], log_path: Path | None = None) -> PromServer | None:
    """Prometheus scraping ``targets`` (job name -> metrics URL); None when it is not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        log.warning("prometheus is not installed: the local stack runs without it")
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "prometheus.yml"
    # JSON is YAML: no YAML library needed.
    config.write_text(json.dumps(prometheus_config(targets), indent=2) + "\n")
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
    ]
    argv += [f"--web.listen-address={HOST}:{port}"]
    proc = spawn(
        "prometheus",
        argv,
        dict(os.environ),
        _log_path(data_dir, "prometheus", log_path),
    )
    url = f"http://{HOST}:{port}"
    _await(proc, lambda: http_status(f"{url}/-/ready") == 200, f"Prometheus at {url}")
    return PromServer(url, proc)
