"""The replica pool: which devices, one engine replica per device x replicas_per_device, one worker each.

Devices: "cpu"; "auto" = every CUDA device this process can see, else the CPU with a WARNING; or an
explicit list "cuda:0,cuda:1". Indexes are those of the CUDA runtime, i.e. relative to
CUDA_VISIBLE_DEVICES when it is set (the runtime renumbers the visible devices from 0); an empty
CUDA_VISIBLE_DEVICES (or "-1") hides every GPU. The count comes from the engine's own runtime:
CTranslate2 for Whisper, torch for FunASR, each only if it can be imported.

Every replica has its own worker thread taking batches from the shared `Batcher` (the engines
release the GIL while they compute). `start()` loads and warms every replica, in parallel, and
returns only when all are ready (health goes SERVING after that), or raises with the first failure.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from callscribe.asr.batching import Batcher
from callscribe.asr.engines.base import Engine

log = logging.getLogger(__name__)

EngineLoader = Callable[[str, str, str, int, Path], Engine]


def visible_cuda_devices(engine: str) -> int:
    """How many CUDA devices the engine's runtime sees (0 when it is not installed or sees none)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return 0
    try:
        if engine == "whisper":
            import ctranslate2

            return int(ctranslate2.get_cuda_device_count())
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except ImportError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a broken driver install: behave as if no GPU, say why
        log.warning("cannot count CUDA devices (%s: %s): treating as none", type(exc).__name__, exc)
        return 0


def resolve_devices(spec: str, engine: str, count: Callable[[str], int] = visible_cuda_devices) -> list[str]:
    """The devices to put replicas on. Raises ValueError for a named device that does not exist."""
    if spec == "cpu":
        return ["cpu"]
    visible = count(engine)
    if spec == "auto":
        if visible == 0:
            log.warning(
                "no CUDA device visible: ASR runs on the CPU (%s engine; CUDA_VISIBLE_DEVICES=%r). "
                "Expect a fraction of GPU throughput; set ASR_DEVICES=cpu to silence this warning",
                engine,
                os.environ.get("CUDA_VISIBLE_DEVICES"),
            )
            return ["cpu"]
        return [f"cuda:{i}" for i in range(visible)]
    devices = list(dict.fromkeys(d.strip() for d in spec.split(",")))
    missing = [d for d in devices if int(d.partition(":")[2]) >= visible]
    if missing:
        raise ValueError(
            f"ASR_DEVICES names {', '.join(missing)} but the {engine} runtime sees {visible} CUDA device(s) "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    return devices


@dataclass(frozen=True)
class PoolConfig:
    engine: str
    model: str
    devices: list[str]
    replicas_per_device: int
    threads_per_replica: int  # 0: share the cores out over CPU replicas (1 thread per GPU replica)
    cache_dir: Path

    def threads_for(self, device: str) -> int:
        if self.threads_per_replica:
            return self.threads_per_replica
        if device != "cpu":
            return 1
        return max(1, (os.cpu_count() or 1) // self.replicas_per_device)


@dataclass
class Replica:
    index: int
    device: str
    engine: Engine | None = None
    thread: threading.Thread | None = None

    @property
    def label(self) -> str:
        return f"replica {self.index} ({self.device})"


class ReplicaPool:
    def __init__(self, config: PoolConfig, batcher: Batcher, loader: EngineLoader | None = None) -> None:
        self.config = config
        self.batcher = batcher
        self.replicas = [
            Replica(i * config.replicas_per_device + r, device)
            for i, device in enumerate(config.devices)
            for r in range(config.replicas_per_device)
        ]
        self._loader = loader
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def engine(self) -> Engine:
        """The first replica's engine (all replicas load the same engine and model)."""
        engine = self.replicas[0].engine
        if engine is None:
            raise RuntimeError("replicas are not loaded yet")
        return engine

    def start(self) -> None:
        """Load and warm every replica (in parallel), then start one worker thread per replica."""
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(self.replicas), thread_name_prefix="asr-load") as loaders:
            futures = [loaders.submit(self._load, replica) for replica in self.replicas]
            for future in futures:
                future.result()  # the first failure propagates
        for replica in self.replicas:
            engine = replica.engine
            assert engine is not None
            replica.thread = threading.Thread(
                target=self._work, args=(replica, engine), name=f"asr-{replica.index}-{replica.device}", daemon=True
            )
            replica.thread.start()
        self._ready.set()
        log.info("%d replica(s) ready in %.1fs", len(self.replicas), time.perf_counter() - started)

    def _load(self, replica: Replica) -> None:
        cfg = self.config
        started = time.perf_counter()
        loader = self._loader
        if loader is None:
            from callscribe.asr.engines.registry import load_engine

            loader = load_engine
        engine = loader(cfg.engine, cfg.model, replica.device, cfg.threads_for(replica.device), cfg.cache_dir)
        engine.warm_up()
        replica.engine = engine
        log.info(
            "%s: %s %s loaded and warmed in %.1fs (%d threads)",
            replica.label,
            engine.name,
            engine.model,
            time.perf_counter() - started,
            cfg.threads_for(replica.device),
        )

    def _work(self, replica: Replica, engine: Engine) -> None:
        try:
            self.batcher.serve(engine.infer, engine.name)
        except BaseException:
            log.exception("%s: worker stopped", replica.label)
            raise

    def shutdown(self, timeout: float = 30.0) -> None:
        """Fail waiting segments (UNAVAILABLE), let running batches finish, join the workers."""
        failed = self.batcher.close()
        if failed:
            log.info("shutdown: %d waiting segment(s) failed with UNAVAILABLE", failed)
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            if replica.thread is not None:
                replica.thread.join(max(0.0, deadline - time.monotonic()))
