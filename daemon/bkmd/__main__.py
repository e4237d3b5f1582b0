import sys

from bkmd.main import main

sys.exit(main())
