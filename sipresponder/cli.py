"""Command line: run, check-config, stats, trace on|off."""

from __future__ import annotations

import argparse
import json
import sys

from sipresponder import config as config_mod

DEFAULT_CONTROL = "/run/sipresponder/control.sock"


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--softswitch", default=config_mod.DEFAULT_SOFTSWITCH, metavar="PATH",
                        help="VOS3000-style KEY=VALUE parameters (default: %(default)s)")
    parser.add_argument("--endpoints", default=config_mod.DEFAULT_ENDPOINTS, metavar="PATH",
                        help="accounts, gateways and LAN networks (default: %(default)s)")
    parser.add_argument("--config", default=config_mod.DEFAULT_RESPONDER, metavar="PATH",
                        help="the responder's own settings (default: %(default)s)")


def _control_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=None, metavar="PATH",
                        help="control socket (default: [stats] control_socket of --config)")
    parser.add_argument("--config", default=config_mod.DEFAULT_RESPONDER, metavar="PATH",
                        help="responder.toml to read the control socket path from (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipresponder",
        description="sipguard's reference SIP responder: answers or ignores strangers the way VOS3000's "
        "SS_REPLY_UNAUTHORIZED does. A responder, not a proxy: it never forwards or connects a call.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="serve SIP in the foreground (systemd runs this)")
    _config_options(run)
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="processes reading the UDP sockets (default 1; see docs/responder.md)")
    check = commands.add_parser("check-config", help="validate the three files; exit 0 when valid")
    _config_options(check)
    check.add_argument("--strict", action="store_true",
                       help="an unknown softswitch.conf key is an error, not a warning (for a file that "
                       "holds only sipguard's keys)")
    stats = commands.add_parser("stats", help="print the running responder's counters")
    _control_option(stats)
    stats.add_argument("--json", action="store_true", help="print JSON instead of NAME VALUE lines")
    trace = commands.add_parser("trace", help="switch the request trace on or off at run time")
    trace.add_argument("state", choices=["on", "off"])
    _control_option(trace)
    return parser


def _socket_path(args: argparse.Namespace) -> str:
    if args.socket:
        return args.socket
    try:
        text = open(args.config, encoding="utf-8").read()  # noqa: SIM115
        return config_mod.parse_settings(text, args.config).stats_control_socket or DEFAULT_CONTROL
    except (OSError, config_mod.ConfigError):
        return DEFAULT_CONTROL


def _control(args: argparse.Namespace, line: str) -> dict | None:
    from sipresponder.client import control_request  # noqa: PLC0415 - keeps check-config light

    try:
        return control_request(_socket_path(args), line)
    except ConnectionError as exc:
        print(f"sipresponder: {exc}", file=sys.stderr)
        return None


def _check_config(paths: tuple[str, str, str], strict: bool = False) -> int:
    try:
        cfg = config_mod.load(*paths, strict=strict)
    except config_mod.ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    mode = "On" if cfg.softswitch.reply_unauthorized else "Off"
    ports = ",".join(map(str, cfg.softswitch.sip_ports))
    print(f"configuration valid: SS_REPLY_UNAUTHORIZED={mode}, {len(cfg.endpoints.accounts)} accounts, "
          f"{len(cfg.endpoints.gateway_names)} gateways, ports {ports}")
    return 0


def _run(args: argparse.Namespace, paths: tuple[str, str, str]) -> int:
    if not 1 <= args.workers <= 64:
        print("sipresponder: --workers must be between 1 and 64", file=sys.stderr)
        return 2
    from sipresponder.server import run  # noqa: PLC0415 - keeps check-config and --help light

    return run(paths, args.workers)


def _stats(args: argparse.Namespace) -> int:
    answer = _control(args, "stats")
    if answer is None:
        return 1
    if args.json:
        print(json.dumps(answer["stats"], indent=1, sort_keys=True))
    else:
        for name, value in sorted(answer["stats"].items()):
            print(f"{name} {value}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    answer = _control(args, f"trace {args.state}")
    if answer is None:
        return 1
    if not answer.get("ok"):
        print(f"sipresponder: {answer.get('error', 'refused')}", file=sys.stderr)
        return 1
    print(f"trace {'on' if answer['trace'] else 'off'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = (getattr(args, "softswitch", ""), getattr(args, "endpoints", ""), args.config)
    if args.command == "check-config":
        return _check_config(paths, args.strict)
    if args.command == "run":
        return _run(args, paths)
    if args.command == "stats":
        return _stats(args)
    return _trace(args)
