"""Where the responder's time goes: the live server under cProfile, or its core in-process.

    .venv/bin/python bench/profile_responder.py --cases digest [--duration 5] [--top 25]
    .venv/bin/python bench/profile_responder.py --in-process [--cases silent options register digest]

Live: same servers, load and network namespace as responder_vs_kamailio.py; the profile (a
pstats file) is kept at --output for a closer look with `python -m pstats`.

--in-process: `Core.handle` called directly on the benchmark's own requests, with the
benchmark's configuration: CPU time per request in µs (best of --rounds), then a cProfile of
one round. No sockets, no load generators competing for the cores, so it is the steadiest
measure of the code itself (the live numbers add the kernel's and the event loop's share).
Steadier still, on a busy machine, are the instructions per request (docs/performance.md):

    for n in 1000 3000; do valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        .venv/bin/python bench/profile_responder.py --in-process --cases options --rounds 1 \
        --requests 3000 --handled $n --top 0 2>&1 | grep 'I *refs'; done   # (second - first) / 2000
"""

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import netns
import responder_vs_kamailio as bench
import servers
import sipmsg

from sipresponder import config as config_mod
from sipresponder.core import Core

IN_PROCESS_CASES = ("silent", "options", "register", "digest")


def in_process_requests(case: str, core: Core, count: int) -> tuple[str, list[bytes]]:
    """The source address and `count` requests of `case`, as the load generators send them."""
    target = "127.0.0.1:5060"
    if case == "digest":
        template = sipmsg.request_template("REGISTER", user=servers.ACCOUNT, server=target,
                                           client=f"{servers.PHONE}:40000", lane="p")  # fmt: skip
        challenge = core.handle(template % (0, 0, 0), servers.PHONE, 40000, "udp", time.time())[0][1]
        answer = sipmsg.DigestAnswer(sipmsg.parse_challenge(challenge), servers.ACCOUNT, servers.PASSWORD,
                                     "REGISTER", f"sip:{target}")  # fmt: skip
        signed = [(template % (n, n, n), answer.header(n, "c")) for n in range(1, count + 1)]
        return servers.PHONE, [sipmsg.with_header(data, f"Authorization: {auth}") for data, auth in signed]
    method, user = ("REGISTER", "9999") if case == "register" else ("OPTIONS", "100")
    template = sipmsg.request_template(method, user=user, server=target, client=f"{servers.SCANNER}:5060")
    return servers.SCANNER, [template % (n, n, n) for n in range(count)]


def in_process(args: argparse.Namespace, own: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="profile-responder-"))
    for name in own.cases or IN_PROCESS_CASES:
        case = bench.CASES[name]
        server = servers.Responder(reply_unauthorized=case.reply_unauthorized, per_source_limit=False)
        server.workdir = workdir
        options = server.write_config()
        cfg = config_mod.load(*(options[i + 1] for i in (0, 2, 4)))
        best = float("inf")
        rounds = []
        for _ in range(own.rounds):
            core = Core(cfg, os.urandom(32), time.time())  # fresh state: nonce counts start over
            source, requests = in_process_requests(name, core, own.requests)
            requests = requests[: own.handled or None]
            handle, now = core.handle, time.time()
            started = time.process_time()
            for data in requests:
                handle(data, source, 5060, "udp", now)
            rounds.append((time.process_time() - started) / len(requests) * 1e6)
            best = min(best, rounds[-1])
        print(f"{name}: {best:.2f} µs per request (best of {own.rounds}; all: "
              f"{' '.join(f'{r:.2f}' for r in rounds)})")  # fmt: skip
        if own.top:
            core = Core(cfg, os.urandom(32), time.time())
            source, requests = in_process_requests(name, core, own.requests)
            profile = cProfile.Profile()
            profile.enable()
            for data in requests:
                core.handle(data, source, 5060, "udp", time.time())
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(own.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25, help="functions to print, by own time (0: none)")
    default = Path(tempfile.gettempdir()) / "sipresponder.prof"
    parser.add_argument("--output", type=Path, default=default, help="becomes NAME.CASE.prof per case")
    parser.add_argument("--in-process", action="store_true", help="time Core.handle without sockets")
    parser.add_argument("--rounds", type=int, default=5, help="in-process: rounds, the best counts")
    parser.add_argument("--requests", type=int, default=20000, help="in-process: requests per round")
    parser.add_argument("--handled", type=int, default=0,
                        help="in-process: handle only the first N of them (0: all); two runs under "
                        "valgrind that differ only in N give the instructions per request")  # fmt: skip
    own, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if own.in_process:
        own.cases = [c for c in bench.parse_args(rest).cases if c in IN_PROCESS_CASES] if rest else None
        return in_process(bench.parse_args([]), own)
    args = bench.parse_args(rest)
    if not args.host_netns and not netns.inside():
        return netns.rerun_inside([__file__, *(sys.argv[1:] if argv is None else argv)])
    for case in (bench.CASES[name] for name in args.cases):
        output = own.output.resolve().with_suffix(f".{case.name}.prof")
        server = servers.Responder(
            reply_unauthorized=case.reply_unauthorized, per_source_limit=case.per_source_limit, profile=output
        )
        try:
            measured = case.run(server.start(), args)
        finally:
            server.stop()  # SIGTERM: the responder returns from run() and cProfile writes the file
        print(f"== {case.name}: {bench.format_value(measured.value, case.unit)} {case.unit} under cProfile "
              f"(slower than without); {measured.detail}\n   profile: {output}")
        stats = pstats.Stats(str(output))
        stats.sort_stats("tottime").print_stats(own.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
