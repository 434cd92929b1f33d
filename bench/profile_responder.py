"""Run one benchmark case against the responder under cProfile and print where the time goes.

    .venv/bin/python bench/profile_responder.py --cases digest [--duration 5] [--top 25]

Same servers, load and network namespace as responder_vs_kamailio.py; the profile
(a pstats file) is kept at --output for a closer look with `python -m pstats`.
"""

import argparse
import pstats
import sys
import tempfile
from pathlib import Path

import netns
import responder_vs_kamailio as bench
import servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25, help="functions to print, by own time")
    default = Path(tempfile.gettempdir()) / "sipresponder.prof"
    parser.add_argument("--output", type=Path, default=default, help="becomes NAME.CASE.prof per case")
    own, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
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
