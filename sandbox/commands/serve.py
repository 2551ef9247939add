"""`sandbox serve`: run the HTTP executor service with the docker (isolated) or process (development) backend."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sandbox.backends.docker_pool import DEFAULT_RUNNER_IMAGE
from sandbox.cache import DEFAULT_MAX_ENTRIES
from sandbox.models import TOKEN_ENV


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve POST /v1/runs and /v1/batch over HTTP",
        description="Run the executor service. Binds 127.0.0.1 unless --host says otherwise; set "
        f"{TOKEN_ENV} to require `Authorization: Bearer <token>`.",
    )
    parser.add_argument("--backend", choices=["docker", "process"], default="docker",
                        help="docker: warm pool of hardened containers; process: local subprocess (weaker)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--pool-size", type=int, default=0,
                        help="warm runner containers (docker backend); 0 (default): two per CPU of this host")
    parser.add_argument("--jobs-per-container", type=int, default=1000,
                        help="jobs a runner container serves, with a verified reset between two, before it is "
                        "replaced (docker backend; 1: a new container for every job)")
    parser.add_argument("--image", default=os.environ.get("SANDBOX_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE),
                        help="runner image (docker backend; env SANDBOX_RUNNER_IMAGE)")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPU quota per runner container")
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory (and swap) cap per runner container")
    parser.add_argument("--pids-limit", type=int, default=256, help="process cap per runner container")
    parser.add_argument("--workers", type=int, default=0,
                        help="programs run at once per container (docker) or per batch (process); 0: one per CPU")
    parser.add_argument("--queue", type=int, default=2000,
                        help="programs waiting or running before requests are answered 429")
    parser.add_argument("--cache-mb", type=float, default=0,
                        help="memory for the result cache, MiB: a program identical to one answered recently (same "
                        "code, tests, limits, runner) is answered from it, marked cached; 0 (default): no cache")
    parser.add_argument("--cache-entries", type=int, default=DEFAULT_MAX_ENTRIES,
                        help=f"most results the cache keeps (default {DEFAULT_MAX_ENTRIES})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


def bad_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags, in one line, or None."""
    if args.pool_size < 0:
        return f"--pool-size must be 0 (two per CPU) or more, got {args.pool_size}"
    for name in ("jobs_per_container", "queue", "memory_mb", "pids_limit", "cache_entries"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
    if args.cpus <= 0:
        return f"--cpus must be positive, got {args.cpus}"
    if args.cache_mb < 0:
        return f"--cache-mb must be 0 (no cache) or more, got {args.cache_mb}"
    if args.workers < 0:
        return f"--workers must be 0 (auto) or more, got {args.workers}"
    if not 0 < args.port < 65536:
        return f"--port must be in 1..65535, got {args.port}"
    return None


def default_pool_size() -> int:
    """Two containers per CPU: while one resets after its job, the other serves the next request."""
    return 2 * (os.cpu_count() or 1)


def build_backend(args: argparse.Namespace):
    if args.backend == "process":
        from sandbox.backends.process import ProcessBackend

        return ProcessBackend(workers=args.workers or None)
    from sandbox.backends.docker import DockerBackend, DockerSettings
    from sandbox.backends.docker_pool import ContainerSpec

    spec = ContainerSpec(image=args.image, cpus=args.cpus, memory_mb=args.memory_mb, pids_limit=args.pids_limit)
    pool_size = args.pool_size or default_pool_size()
    return DockerBackend(DockerSettings(pool_size=pool_size, spec=spec, workers_per_container=args.workers,
                                        jobs_per_container=args.jobs_per_container))


def run(args: argparse.Namespace) -> int:
    problem = bad_arguments(args)
    if problem:
        print(f"sandbox serve: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from sandbox.server import ServiceSettings, create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    backend = build_backend(args)
    if args.backend == "docker":
        try:  # fail here with one line, not inside uvicorn's lifespan with a traceback
            backend.pool.check_engine_and_image()
        except RuntimeError as exc:
            print(f"sandbox serve: {exc}", file=sys.stderr)
            return 2
    app = create_app(backend, ServiceSettings(queue_capacity_runs=args.queue, cache_bytes=int(args.cache_mb * 2**20),
                                              cache_entries=args.cache_entries))
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    except KeyboardInterrupt:
        pass
    return 0

