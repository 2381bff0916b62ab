"""The ``jetgate`` command line: flags as the NATS server has them, then run or check.

``jetgate -c FILE`` runs the gateway with a configuration file (built-in
embedded defaults without one); ``jetgate -t -c FILE`` only loads and
validates it, TLS files and operator-mode JWTs included. Flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from conf import ConfigError
from gateway import __version__
from gateway.auth.check import check_operator
from gateway.auth.operator import OperatorError
from gateway.build_info import message_path
from gateway.gc_tuning import tune_gc
from gateway.options import Options, load_options
from gateway.server import Gateway, GatewayError
from gateway.tls.context import check_options as check_tls

log = logging.getLogger("jetgate")

#: Log level below DEBUG for protocol traces (``-V``), as the NATS server's trace.
TRACE = 5

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_NOT_SERVING = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the NATS server's spelling of the flags that apply."""
    parser = argparse.ArgumentParser(
        prog="jetgate",
        description="MQTT 3.1.1/5.0 and NATS gateway, configured in the NATS server's language.",
    )
    parser.add_argument("-c", "--config", metavar="FILE", help="configuration file")
    parser.add_argument(
        "-t",
        "--check",
        action="store_true",
        help="load and validate the configuration, print the result and exit",
    )
    parser.add_argument("-v", "--version", action="version", version=f"jetgate {__version__}")
    parser.add_argument("-a", "--addr", "--net", metavar="HOST", help="NATS client listen host")
    parser.add_argument("-p", "--port", type=int, metavar="PORT", help="NATS client port")
    parser.add_argument("--mqtt-port", type=int, metavar="PORT", help="MQTT port")
    parser.add_argument(
        "--store-dir", "--sd", metavar="DIR", help="log (JetStream) store directory"
    )
    parser.add_argument("-D", "--debug", action="store_true", help="enable debug logging")
    parser.add_argument("-V", "--trace", action="store_true", help="enable protocol tracing")
    parser.add_argument("-l", "--log", metavar="FILE", help="write the log to FILE")
    return parser


def apply_overrides(options: Options, args: argparse.Namespace) -> Options:
    """Options with the command-line flags laid over the file's values."""
    return options.with_overrides(
        host=args.addr,
        port=args.port,
        mqtt_port=args.mqtt_port,
        store_dir=args.store_dir,
        debug=True if args.debug else None,
        trace=True if args.trace else None,
        log_file=args.log,
    )


def configure_logging(options: Options) -> None:
    """Log to stderr (or the log file) at INFO, DEBUG with ``debug``, TRACE with ``trace``."""
    logging.addLevelName(TRACE, "TRACE")
    level = TRACE if options.trace else logging.DEBUG if options.debug else logging.INFO
    handler: logging.Handler
    if options.log_file:
        handler = logging.FileHandler(options.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["jwt"]:  # jetgate jwt operator|account|user|decode ...
        from gateway.auth.jwt_cli import main as jwt_main

        return jwt_main(words[1:])
    if words[:1] == ["ca"]:  # jetgate ca init|server|client|list|revoke ...
        from gateway.tls.ca_cli import main as ca_main

        return ca_main(words[1:])
    args = build_parser().parse_args(argv)
    try:
        options = apply_overrides(load_options(args.config), args)
        check_tls(options)  # certificate files are read now, not at the first connection
        if args.check:
            check_operator(options)  # every operator and preloaded account JWT verified
    except ValueError as exc:  # a flag out of range
        print(f"jetgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        if args.check:
            print("configuration has errors", file=sys.stderr)
        return EXIT_CONFIG
    for warning in options.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.check:
        print("configuration OK")
        return EXIT_OK
    try:
        configure_logging(options)
    except OSError as exc:
        print(f"jetgate: cannot open log file {options.log_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    source = args.config or "built-in defaults"
    log.info(
        "jetgate %s: configuration loaded from %s (%s mode, %s message path)",
        __version__,
        source,
        options.mode,
        message_path(),
    )
    try:
        asyncio.run(serve(options))
    except (GatewayError, OperatorError) as exc:
        log.error("%s", exc)
        return EXIT_NOT_SERVING
    return EXIT_OK


async def serve(options: Options) -> None:
    """Run the gateway until SIGINT or SIGTERM, then stop it cleanly."""
    gateway = Gateway(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await gateway.start()
    tune_gc()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await gateway.stop()
