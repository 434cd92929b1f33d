"""Make the clone importable as the collection sipguard.hardening, as ./run does.

Module and filter code imports its helpers the collection way
(ansible_collections.sipguard.hardening.plugins.module_utils...), so the tests import it the same way.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".ansible" / "collections"

subprocess.run([str(ROOT / "scripts" / "link-collection.sh")], check=True)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
