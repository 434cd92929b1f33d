"""Make the clone importable as the collection sipguard.hardening, as ./run does.

Module and filter code imports its helpers the collection way
(ansible_collections.sipguard.hardening.plugins.module_utils...), so the tests import it the same way:
.ansible/collections is on pytest's pythonpath (pyproject.toml); this links the clone there.
"""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

subprocess.run([str(ROOT / "scripts" / "link-collection.sh")], check=True)
