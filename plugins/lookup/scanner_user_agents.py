# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""The scanner User-Agent list, read from the one data file the responder ships."""

DOCUMENTATION = r"""
name: scanner_user_agents
author: sipguard maintainers (@sipguard)
short_description: The default scanner User-Agent list
version_added: 0.3.0
description:
  - Returns the User-Agent substrings sipguard treats as scanners by default, read from
    C(sipresponder/scanner_user_agents.json) in this collection, the same file the bundled responder reads
    when its configuration names no list, so the roles and the responder cannot disagree.
  - Takes no terms. Use it with C(query) to get the list.
"""

EXAMPLES = r"""
- name: Show the default scanner list
  ansible.builtin.debug:
    msg: "{{ query('sipguard.hardening.scanner_user_agents') }}"
"""

RETURN = r"""
_list:
  description: The User-Agent substrings, in the file's order.
  type: list
  elements: str
"""

import json
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# plugins/lookup/ -> the collection's root -> sipresponder/
DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sipresponder",
                         "scanner_user_agents.json")


def read_scanner_user_agents(path=DATA_FILE):
    """The list in ``path``; raises ValueError when it is not a JSON list of non-empty strings."""
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{path}: expected a JSON list of non-empty strings")
    return value


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("sipguard.hardening.scanner_user_agents takes no terms")
        try:
            return read_scanner_user_agents()
        except (OSError, ValueError) as err:
            raise AnsibleLookupError(f"cannot read the scanner list: {err}") from err
