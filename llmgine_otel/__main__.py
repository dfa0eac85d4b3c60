import sys

from llmgine_otel.cli import main

sys.exit(main())
