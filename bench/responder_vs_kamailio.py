"""Benchmark sipguard's responder against Kamailio 5.6, side by side, and print a table.

    .venv/bin/python bench/responder_vs_kamailio.py [--duration 10] [--cases silent options register ...]

Each case starts a fresh server (Kamailio, then the responder) on 127.0.0.1, runs the
same load for a bounded time, stops the server and moves on. All traffic goes to
127.0.0.0/8 inside a network namespace the benchmark creates and deletes (see
netns.py). Not part of the test suite: it needs root and Kamailio and takes a few minutes.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import loadgen
import netns
import procstats
import servers
import sipmsg

SETTLE_S = 0.3  # let every generator process start before the clock runs
MIB = 1024
PROBE_S = 3.0  # each try while looking for the silent case's offered rate
FIRST_RATE = 200_000.0  # the first offered rate tried (and the rate used when none is searched for)
MAX_PROBES = 8


@dataclass
class Measurement:
    value: float  # the number compared between the two servers
    detail: str  # what else a reader needs to trust it (loss, timeouts, ...)
    loss: float = 0.0  # fraction of offered requests the kernel dropped (silent case)
    handled: int = 0  # requests the server processed, for its CPU time per request
    cpu_us: float = 0.0  # server CPU time (user + system, all its processes) per handled request
    offered: float = 0.0  # requests/s the generators managed to send (silent case)


def run_parallel(jobs: list[tuple[Callable, dict]]) -> list[dict]:
    """Run generator functions in separate processes, started on a common clock."""
    start_at = time.monotonic() + SETTLE_S
    with ProcessPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(func, start_at=start_at, **kwargs) for func, kwargs in jobs]
        return [future.result() for future in futures]


def total(results: list[dict], key: str) -> int:
    return sum(result.get(key, 0) for result in results)


def seconds(results: list[dict]) -> float:
    return max(result["elapsed_ns"] for result in results) / 1e9


# --- cases: each takes a started server and the options, returns a Measurement ---------


def scanner_templates(server: servers.Server) -> list[bytes]:
    """What a sweep sends: OPTIONS, REGISTER and INVITE for accounts that do not exist."""
    target = f"127.0.0.1:{server.port}"
    return [
        sipmsg.request_template(method, user=user, server=target, client=f"{servers.SCANNER}:5060", lane="s")
        for method, user in (("OPTIONS", "100"), ("REGISTER", "9999"), ("INVITE", "0044123456"))
    ]


def scanners(args: argparse.Namespace) -> list[str]:
    """The addresses the scanner load comes from: 127.1.0.1 onwards (--addresses of them)."""
    return loadgen.loopback_sources(args.addresses, servers.SCANNER)


def phones(args: argparse.Namespace) -> list[str]:
    """The phones' addresses, 127.0.0.1 onwards: inside the account network 127.0.0.0/16."""
    return loadgen.loopback_sources(args.addresses, servers.PHONE)


def case_silent(server: servers.Server, args: argparse.Namespace) -> Measurement:
    """Two blasters from many source ports at a fixed offered rate; loss counted by the kernel."""
    address = ("127.0.0.1", server.port)
    templates = scanner_templates(server)
    drops_before, snmp_before = procstats.read_udp_drops(server.port), procstats.read_snmp_udp()
    job = {
        "templates": templates, "client": servers.SCANNER, "clients": tuple(scanners(args)),
        "duration": args.duration,
        "rate": (args.silent_rate or FIRST_RATE) / 2, "ports": 64,
    }
    results = run_parallel([(loadgen.blast, {"server": address, **job})] * 2)
    time.sleep(0.2)  # a drop is counted on arrival; the last packets are still in flight
    drops = procstats.read_udp_drops(server.port) - drops_before
    snmp_after = procstats.read_snmp_udp()
    sent, elapsed = total(results, "sent"), seconds(results)
    consumed = (sent - drops) / elapsed
    rcvbuf, in_errors = (snmp_after[k] - snmp_before[k] for k in ("RcvbufErrors", "InErrors"))
    own = server.counters()
    own_text = f", server counted {own['received']:.0f} received" if "received" in own else ""
    return Measurement(
        consumed,
        f"offered {sent / elapsed / 1000:.0f}k/s, lost {100 * drops / max(sent, 1):.1f}% "
        f"(socket drops {drops}, Udp RcvbufErrors +{rcvbuf}, InErrors +{in_errors}{own_text})",
        loss=drops / max(sent, 1),
        handled=sent - drops,
        offered=sent / elapsed,
    )


def next_rate(rate: float, probe: Measurement, loss: float) -> float:
    """The next offered rate to try: enough that a server consuming what it did now loses `loss`
    (plus 10 %), at least 1.25x and at most 2x the last one."""
    wanted = probe.value / (1 - loss) * 1.1
    return min(max(wanted, rate * 1.25), rate * 2)


def find_silent_rate(args: argparse.Namespace) -> tuple[float, str]:
    """Raise the silent case's offered rate until Kamailio loses at least --silent-loss.

    Each try is a fresh Kamailio under PROBE_S of load. When the generators cannot send what is
    asked (they share the cores with the server) the search stops at the most they sent; the
    returned note says so, and lists every try.
    """
    rate, tries = FIRST_RATE, []
    probe_args = argparse.Namespace(**{**vars(args), "duration": PROBE_S})
    for _ in range(MAX_PROBES):
        probe_args.silent_rate = rate
        with servers.running(servers.Kamailio, reply_unauthorized=False, workers=args.workers) as server:
            probe = case_silent(server, probe_args)
        tries.append(f"{probe.offered / 1000:.0f}k/s: {100 * probe.loss:.0f}%")
        print(f"  silent rate search: offered {probe.offered / 1000:.0f}k/s, Kamailio lost "
              f"{100 * probe.loss:.1f}%", file=sys.stderr, flush=True)  # fmt: skip
        if probe.loss >= args.silent_loss:
            return rate, f"Kamailio's loss by offered rate ({PROBE_S:g} s tries): {', '.join(tries)}"
        if probe.offered < 0.85 * rate:
            note = f"the generators could not offer more than {probe.offered / 1000:.0f}k/s"
            return probe.offered, f"{note}; Kamailio's loss by offered rate: {', '.join(tries)}"
        rate = next_rate(rate, probe, args.silent_loss)
    return rate, f"no {100 * args.silent_loss:.0f}% loss within {MAX_PROBES} tries: {', '.join(tries)}"


def _answered(server: servers.Server, args: argparse.Namespace, template: bytes, code: int) -> Measurement:
    address = ("127.0.0.1", server.port)
    job = {"server": address, "templates": [template], "duration": args.duration, "window": args.window}
    clients = scanners(args)
    results = run_parallel([(loadgen.closed_loop, {**job, "client": clients[index % len(clients)]})
                            for index in range(args.generators)])  # fmt: skip
    elapsed = seconds(results)
    counts = total_counts(results)
    others = sum(v for k, v in counts.items() if k.startswith("status_") and k != f"status_{code}")
    return Measurement(
        total(results, f"status_{code}") / elapsed,
        f"other replies {others}, window timeouts {total(results, 'timeouts')}",
        handled=answered(results),
    )


def answered(results: list[dict]) -> int:
    return sum(v for k, v in total_counts(results).items() if k.startswith("status_"))


def total_counts(results: list[dict]) -> dict[str, int]:
    keys = {key for result in results for key in result}
    return {key: total(results, key) for key in keys}


def scanner_request(server: servers.Server, method: str, user: str) -> bytes:
    target = f"127.0.0.1:{server.port}"
    return sipmsg.request_template(method, user=user, server=target, client=f"{servers.SCANNER}:5060")


def case_options(server: servers.Server, args: argparse.Namespace) -> Measurement:
    return _answered(server, args, scanner_request(server, "OPTIONS", "100"), 403)


def case_register(server: servers.Server, args: argparse.Namespace) -> Measurement:
    return _answered(server, args, scanner_request(server, "REGISTER", "9999"), 401)


def case_digest(server: servers.Server, args: argparse.Namespace) -> Measurement:
    address = ("127.0.0.1", server.port)
    jobs = [
        (loadgen.digest_register, {
            "server": address, "client": phones(args)[index % args.addresses],
            "user": servers.ACCOUNT, "password": servers.PASSWORD,
            "duration": args.duration, "lanes": args.lanes, "name": f"p{index}",
        })
        for index in range(args.generators)
    ]
    results = run_parallel(jobs)
    return Measurement(
        total(results, "status_200") / seconds(results),
        f"401 challenges {total(results, 'status_401')}, timeouts {total(results, 'timeouts')}",
        handled=answered(results),
    )


def case_memory(server: servers.Server, args: argparse.Namespace) -> Measurement:
    """RSS of the whole process tree after `--memory-requests` from `--memory-sources` addresses.

    Closed loop, so every request reached the server (and was answered) before we read
    its memory; source address n % sources sends request n, so all sources stay live.
    """
    sources = loadgen.loopback_sources(args.memory_sources, servers.MANY_SCANNERS_FROM)
    job = {
        "server": ("127.0.0.1", server.port), "templates": scanner_templates(server),
        "client": servers.SCANNER, "duration": 300,
        "window": args.window, "limit": args.memory_requests // 2,
    }
    results = run_parallel([(loadgen.closed_loop, {**job, "sources": sources[half::2]}) for half in range(2)])
    pids = server.pids()
    rss, pss = procstats.rss_kib(pids), procstats.pss_kib(pids)
    replies = answered(results)
    return Measurement(
        sum(rss) / MIB,
        f"{total(results, 'sent')} sent, {replies} answered in {seconds(results):.0f} s; VmRSS summed over "
        f"{len(rss)} processes (largest {max(rss) / MIB:.1f} MiB), PSS sum {sum(pss) / MIB:.1f} MiB",
        handled=replies,
    )


def case_startup(server: servers.Server, args: argparse.Namespace) -> Measurement:
    return Measurement(server.startup_s, "until the UDP port is bound")


@dataclass
class Case:
    name: str
    run: Callable[[servers.Server, argparse.Namespace], Measurement]
    reply_unauthorized: bool
    per_source_limit: bool
    unit: str
    target: str
    met: Callable[[Measurement, Measurement], bool]  # (kamailio, responder)


def ratio(kamailio: Measurement, responder: Measurement) -> float:
    return responder.value / kamailio.value if kamailio.value else float("inf")


BARE_CASES = ("silent", "options", "register")  # the bare reference has no digest or state

CASES = {
    case.name: case
    for case in [
        Case("silent", case_silent, False, False, "consumed/s", ">=1.3x and loss <1%",
             lambda k, r: ratio(k, r) >= 1.3 and r.loss < 0.01),
        Case("options", case_options, True, False, "403/s", ">=1.0x", lambda k, r: ratio(k, r) >= 1.0),
        Case("register", case_register, True, False, "401/s", ">=1.0x", lambda k, r: ratio(k, r) >= 1.0),
        Case("digest", case_digest, True, False, "200 OK/s", ">=0.7x", lambda k, r: ratio(k, r) >= 0.7),
        Case("memory", case_memory, True, True, "MiB RSS", "<64 MiB", lambda k, r: r.value < 64),
        Case("startup", case_startup, True, False, "s", "<0.5 s", lambda k, r: r.value < 0.5),
    ]
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load case (default 10)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--servers", nargs="+", choices=["kamailio", "responder", "bare"], default=["kamailio", "responder"],
        help="bare = bench/bare_responder.py, a plain-Python reference (silent/options/register only)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Kamailio children / responder workers")
    parser.add_argument(
        "--silent-rate", type=float, default=0,
        help="offered req/s, two blasters (default 0: raise it until Kamailio loses --silent-loss)",
    )
    parser.add_argument("--silent-loss", type=float, default=0.30, help="Kamailio's loss to find (0.3)")
    parser.add_argument("--generators", type=int, default=2, help="client processes for reply cases")
    parser.add_argument("--window", type=int, default=64, help="requests in flight per generator")
    parser.add_argument("--lanes", type=int, default=32, help="REGISTER clients per generator (digest)")
    parser.add_argument(
        "--addresses", type=int, default=2,
        help="source addresses of the scanner load (127.1.0.1...) and of the phones (127.0.0.1...); "
        "generator or socket i uses address i %% N (default 2; 1 = all from one address)",
    )
    parser.add_argument("--memory-sources", type=int, default=100_000)
    parser.add_argument("--memory-requests", type=int, default=1_000_000)
    parser.add_argument(
        "--host-netns", action="store_true",
        help="run in the current network namespace instead of a fresh one (fills the host's conntrack table)",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.duration > 60:
        parser.error("--duration must be in (0, 60] seconds")
    # Bounds keep every run short and inside 127.0.0.0/8 (sources start at 127.2.0.1).
    bounds = {
        "workers": (1, 16), "silent_rate": (0, 2_000_000), "silent_loss": (0.01, 0.9), "generators": (1, 8),
        "window": (1, 1024), "addresses": (1, 250),
        "lanes": (1, 1024), "memory_sources": (1, 4_000_000), "memory_requests": (2, 10_000_000),
    }
    for name, (low, high) in bounds.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    return args


def format_value(value: float, unit: str) -> str:
    if unit.endswith("/s"):
        return f"{value / 1000:.1f}k"
    return f"{value:.2f}" if unit == "s" else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.host_netns and not netns.inside():
        return netns.rerun_inside([__file__, *(sys.argv[1:] if argv is None else argv)])
    kinds = {"kamailio": servers.Kamailio, "responder": servers.Responder, "bare": servers.BarePython}
    rows = []
    load_before = os.getloadavg()
    search_note = ""
    if "silent" in args.cases and not args.silent_rate and "kamailio" in args.servers:
        print("silent: finding the offered rate ...", file=sys.stderr, flush=True)
        try:
            args.silent_rate, search_note = find_silent_rate(args)
        except RuntimeError as error:
            print(f"  search failed: {error}", file=sys.stderr)
    for case in (CASES[name] for name in args.cases):
        measured: dict[str, Measurement] = {}
        for server_name in args.servers:
            if server_name == "bare" and case.name not in BARE_CASES:
                continue
            print(f"{case.name}: {server_name} ...", file=sys.stderr, flush=True)
            try:
                with servers.running(
                    kinds[server_name], reply_unauthorized=case.reply_unauthorized, workers=args.workers,
                    per_source_limit=case.per_source_limit,
                ) as server:
                    cpu_before = procstats.cpu_seconds(server.pids())
                    result = case.run(server, args)
                    cpu = procstats.cpu_seconds(server.pids()) - cpu_before
                    if result.handled:
                        # CPU per request hardly depends on how busy the machine was; rates do.
                        result.cpu_us = cpu / result.handled * 1e6
                    measured[server_name] = result
            except RuntimeError as error:
                print(f"  {server_name} failed: {error}", file=sys.stderr)
                continue
            print(f"  {format_value(measured[server_name].value, case.unit)} {case.unit}; "
                  f"{measured[server_name].detail}", file=sys.stderr, flush=True)
        rows.append((case, measured.get("kamailio"), measured.get("responder"), measured.get("bare")))
    print_table(rows)
    if search_note:
        print(f"\nsilent case offered rate {(args.silent_rate or FIRST_RATE) / 1000:.0f}k/s; {search_note}")
    print(f"\nresponder: {servers.responder_version()}; kamailio: {servers.kamailio_version()}")
    # Other work on the machine moves these numbers: the load average says how quiet it was.
    load_after = os.getloadavg()
    print(f"load average (1/5/15 min) before: {' '.join(f'{v:.2f}' for v in load_before)}, "
          f"after: {' '.join(f'{v:.2f}' for v in load_after)}; duration {args.duration:g} s per load case")
    return 0


Row = tuple[Case, Measurement | None, Measurement | None, Measurement | None]  # kamailio, responder, bare


def print_table(rows: list[Row]) -> None:
    with_bare = any(bare for *_, bare in rows)
    bare_head = " bare Python (reference) |" if with_bare else ""
    print(f"| case | unit | Kamailio 5.6 | responder | ratio | target | met? |{bare_head} notes |")
    print("|---|---|---|---|---|---|---|" + ("---|" if with_bare else "") + "---|")
    for case, kam, resp, bare in rows:
        rate = case.unit.endswith("/s")  # else an absolute target where lower is better
        ratio_text = f"{ratio(kam, resp):.2f}x" if kam and resp else "-"
        if kam and resp and not rate:
            ratio_text += " (lower is better)"
        met = ("yes" if case.met(kam, resp) else "NO") if resp and (kam or not rate) else "-"
        cells = [case.name, case.unit, cell(kam, case), cell(resp, case), ratio_text, case.target, met]
        if with_bare:
            cells.append(cell(bare, case))
        who = (("K", kam), ("R", resp), ("bare", bare))
        cells.append("; ".join(f"{name}: {m.detail}" for name, m in who if m))
        print("| " + " | ".join(cells) + " |")
    print("\nServer CPU time (user + system, all processes) per request handled, in µs:\n")
    print(f"| case | Kamailio | responder | responder / Kamailio |{bare_head}")
    print("|---|---|---|---|" + ("---|" if with_bare else ""))
    for case, kam, resp, bare in rows:
        kam_us, resp_us, bare_us = (m.cpu_us if m else 0.0 for m in (kam, resp, bare))
        if kam_us or resp_us or bare_us:
            share = f"{resp_us / kam_us:.2f}" if kam_us and resp_us else "-"
            extra = f" {micros(bare_us)} |" if with_bare else ""
            print(f"| {case.name} | {micros(kam_us)} | {micros(resp_us)} | {share} |{extra}")


def micros(value: float) -> str:
    return f"{value:.1f}" if value else "-"


def cell(measured: Measurement | None, case: Case) -> str:
    return format_value(measured.value, case.unit) if measured else "-"


if __name__ == "__main__":
    sys.exit(main())
