"""Command line entry point (placeholder until the responder lands)."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sipresponder")
    parser.parse_args(argv)
    return 0
