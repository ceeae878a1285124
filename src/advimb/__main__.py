import sys

from advimb.cli import main

sys.exit(main())
