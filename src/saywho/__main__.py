import sys

from saywho.cli.app import main

sys.exit(main())
