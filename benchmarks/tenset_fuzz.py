"""The importer's differential fuzzer, run at full size (the engine is the test-support module
tests/tenset_fuzz.py, which `make test` runs in miniature):

    .venv/bin/python benchmarks/tenset_fuzz.py --lines 1000000 --seed 0
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # benchmarks may import test support, not the other way round

from tenset_fuzz import main  # noqa: E402

if __name__ == "__main__":
    main()
