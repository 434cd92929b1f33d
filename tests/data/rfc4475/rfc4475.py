"""RFC 4475's 49 torture messages as test vectors: the loader for NAME.sip and cases.toml.

Each NAME.sip holds one message in the RFC's own notation (section 2): LF text, every line
break standing for CRLF, `<hex>..</hex>` for bytes that cannot be printed (whitespace inside is
ignored), `<repeat count=N>..</repeat>` for long repeated strings. Everything else is the
message's bytes as UTF-8. A line ending with spaces (noreason, trws) keeps them.

The messages are written from the RFC's text of each case, not decoded from its bit-exact
archive (Appendix B): the torture in each is kept, small details (mpart01's signature bytes,
some Content-Lengths, made to fit the body) may differ.

cases.toml says, for each name, the RFC section and what the responder must do with the message
when it comes from a recognised source (see docs/responder.md, "RFC 4475").
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
_MARK = re.compile(r"<hex>(.*?)</hex>|<repeat count=(\d+)>(.*?)</repeat>", re.S)


def expand(text: str) -> bytes:
    """The message bytes of a text in the RFC's notation."""
    if "\r" in text:
        raise ValueError("a vector file holds LF text; CRLF is made by the loader")
    out = bytearray()
    pos = 0
    for match in _MARK.finditer(text):
        out += text[pos : match.start()].replace("\n", "\r\n").encode("utf-8")
        if match.group(1) is not None:
            out += bytes.fromhex("".join(match.group(1).split()))
        else:
            out += (match.group(3).replace("\n", "\r\n") * int(match.group(2))).encode("utf-8")
        pos = match.end()
    out += text[pos:].replace("\n", "\r\n").encode("utf-8")
    return bytes(out)


def message(name: str) -> bytes:
    return expand((HERE / f"{name}.sip").read_text(encoding="utf-8"))


def cases() -> dict[str, dict]:
    """name -> {section, title, expect, ...} in the RFC's order."""
    with open(HERE / "cases.toml", "rb") as handle:
        return tomllib.load(handle)
