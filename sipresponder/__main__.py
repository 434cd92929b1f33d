import sys

from sipresponder.cli import main

sys.exit(main())
