"""Only the C extension lives here; all other metadata is in pyproject.toml."""

from setuptools import Extension, setup

# The TenSet importer's C fast path. Optional: without a C compiler the install still succeeds
# and the importer takes its reference path (orjson) for every line: 132,850 against 173,943
# records/s on 1M records here (docs/RESULTS.md, "Third session").
setup(ext_modules=[Extension("tensorcost.records._recscan", ["src/tensorcost/records/_recscan.c"], optional=True)])
