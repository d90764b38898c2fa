import sys

from jpki_remote.cli import main

sys.exit(main())
