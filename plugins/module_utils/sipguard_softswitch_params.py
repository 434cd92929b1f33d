# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""The softswitch.conf parameters sipguard knows (SS_*): one table, and the checks built from it.

Both readers of the table use this very file:

- the ``softswitch`` module, which writes the parameters (on a target's Python 2.7 or 3.6, so this file
  stays Python 2.7-compatible and imports nothing but the standard library);
- the bundled responder, which reads them: ``sipresponder/softswitch_params.py`` is a relative symlink to
  this file in a clone (``pip install -e`` and the collection tarball keep it), and the
  ``sipguard_responder`` role packs the package with ``tar --dereference``, so a host gets the file itself.

Ranges are those of the VOS3000 manual (2.1.9.07, section 4.3.5.2). ``default`` is the value a reader
assumes when the file does not set the key, as the file would spell it.

Values are read from a file strictly (``file_value``: On/Off in any case, a number in range, 401 or
407, ports) and taken from a playbook leniently (``canonical_value``: also true/false, yes/no, 1/0 and
YAML booleans, a list of ports), but both check the same ranges, and whatever ``canonical_value``
writes ``file_value`` reads back.
"""

# The Python 2 lines (__future__, __metaclass__) stay although this file is also linted as part of the
# responder (sipresponder/softswitch_params.py links here):
# ruff: noqa: UP001, UP010, RUF100

from __future__ import absolute_import, division, print_function

import re

__metaclass__ = type

ON_OFF = "On or Off"
NUMBER = "number"
CHOICE = "choice"
PORTS = "ports"

# key -> kind, allowed (range or choices), unit, default as the file spells it, the responder's name for it.
PARAMS = {
    "SS_REPLY_UNAUTHORIZED": {
        "kind": ON_OFF, "allowed": None, "unit": None, "default": "On", "name": "reply_unauthorized"},
    "SS_AUTHENTICATION_MAX_RETRY": {
        "kind": NUMBER, "allowed": (0, 999), "unit": None, "default": "6", "name": "max_retry"},
    "SS_AUTHENTICATION_FAILED_SUSPEND": {
        "kind": NUMBER, "allowed": (60, 3600), "unit": "seconds", "default": "180", "name": "failed_suspend"},
    "SS_AUTHCHALLENGEMODE": {
        "kind": CHOICE, "allowed": (401, 407), "unit": None, "default": "401", "name": "challenge_mode"},
    "SS_SIP_PORT": {
        "kind": PORTS, "allowed": (1, 65535), "unit": None, "default": "5060", "name": "sip_ports"},
    "SS_ENDPOINT_EXPIRE": {
        "kind": NUMBER, "allowed": (60, 86400), "unit": "seconds", "default": "3600",
        "name": "endpoint_expire"},
    "SS_ENDPOINT_REGISTER_REPLACE": {
        "kind": ON_OFF, "allowed": None, "unit": None, "default": "On", "name": "register_replace"},
}  # fmt: skip

# A line whose first non-blank character is this is a comment; so is the rest of a line from a ``#``
# after the value (``KEY=Off  # note`` sets Off). No value of these keys contains a ``#``.
COMMENT = "#"

# One KEY=VALUE line, the pieces around the value kept apart so that the module's rewrite changes
# nothing but the value (spacing, quotes, an end-of-line comment and the line ending stay). The module
# and the responder both read values with it. ``tail`` is what follows the value: blank, or a comment.
LINE = re.compile(
    r"""^(?P<head>\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*)
        (?:(?P<quote>["'])(?P<quoted>.*?)(?P=quote)|(?P<plain>[^#\s]*(?:[ \t]+[^#\s]+)*))
        (?P<tail>[^\r\n]*)(?P<eol>\r?\n?)$""",
    re.VERBOSE,
)


class BadValue(ValueError):
    """A parameter value the softswitch would not accept."""


def expected(key):
    """What a valid value of ``key`` looks like, for messages: 'seconds 60-86400', '401 or 407' ..."""
    param = PARAMS[key]
    kind, allowed = param["kind"], param["allowed"]
    if kind == ON_OFF:
        return ON_OFF
    if kind == CHOICE:
        return " or ".join(str(choice) for choice in allowed)
    if kind == PORTS:
        return 'a port or comma-separated ports, e.g. "5060,6060"'
    span = str(allowed[0]) + "-" + str(allowed[1])
    return (param["unit"] + " " + span) if param["unit"] else ("an integer " + span)


# --------------------------------------------------------------------------- reading a file's value


def _file_int(text, low, high):
    try:
        number = int(text.strip())
    except ValueError:
        return None
    return number if low <= number <= high else None


def _file_ports(text, low, high):
    ports = []
    for part in text.split(","):
        port = _file_int(part, low, high)
        if port is None:
            return None
        if port not in ports:  # a port named twice in a file is read once
            ports.append(port)
    return tuple(ports) or None


def file_value(key, text):
    """The value of ``key`` as written in a file (quotes already removed), or None when it is invalid.

    On/Off is a bool, SS_SIP_PORT a tuple of ports, the others an int.
    """
    param = PARAMS[key]
    kind, allowed = param["kind"], param["allowed"]
    if kind == ON_OFF:
        return {"on": True, "off": False}.get(text.strip().lower())
    if kind == CHOICE:
        return {str(choice): choice for choice in allowed}.get(text)
    if kind == PORTS:
        return _file_ports(text, allowed[0], allowed[1])
    return _file_int(text, allowed[0], allowed[1])


def defaults():
    """{responder name: value} of every key when the file does not set it."""
    return {param["name"]: file_value(key, param["default"]) for key, param in PARAMS.items()}


# --------------------------------------------------------------------------- a value from a playbook

ON_OFF_WORDS = {
    "on": "On", "true": "On", "yes": "On", "1": "On",
    "off": "Off", "false": "Off", "no": "Off", "0": "Off",
}  # fmt: skip


def _on_off(value):
    if isinstance(value, bool):
        return "On" if value else "Off"
    word = str(value).strip().lower()
    if word not in ON_OFF_WORDS:
        raise BadValue("expected On or Off (on/off, true/false, yes/no, 1/0)")
    return ON_OFF_WORDS[word]


def _whole_number(value):
    """``value`` as an int, or None. bool is an int in Python; "True" seconds is a typo, not a number."""
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    if not re.match(r"[0-9]+\Z", text):
        return None
    return int(text)


def _integer(value):
    number = _whole_number(value)
    if number is None:
        raise BadValue("expected a whole number")
    return number


def _ports(value, low, high):
    items = value if isinstance(value, list) else str(value).split(",")
    ports = []
    for item in items:
        port = _whole_number(item)
        if port is None:
            raise BadValue("expected ports " + str(low) + "-" + str(high) + " separated by commas")
        if not low <= port <= high:
            raise BadValue("port " + str(port) + " is outside " + str(low) + "-" + str(high))
        if port in ports:
            raise BadValue("port " + str(port) + " is listed twice")
        ports.append(port)
    if not ports:
        raise BadValue("expected at least one port")
    return ",".join(str(p) for p in ports)


def canonical_value(key, value):
    """The text to write for ``key`` given ``value`` from a playbook; BadValue says why it is refused."""
    param = PARAMS[key]
    kind, allowed = param["kind"], param["allowed"]
    if kind == ON_OFF:
        return _on_off(value)
    if kind == PORTS:
        return _ports(value, allowed[0], allowed[1])
    number = _integer(value)
    if kind == CHOICE:
        if number not in allowed:
            raise BadValue("expected one of " + ", ".join(str(a) for a in allowed))
    elif not allowed[0] <= number <= allowed[1]:
        raise BadValue("expected a number from " + str(allowed[0]) + " to " + str(allowed[1]))
    return str(number)
