"""A miniature of benchmarks/loader_fuzz.py (issue 28 item 9): seeded random edits of saved
models, each loaded in a child process that must answer for every copy. A copy whose hashes
were kept must be refused in one line or load to the very same predictions; a copy whose hashes
were recomputed after the edit (a careful editor) may load to other predictions, but nothing may
crash, hang or raise anything but the one-line error."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tensorcost.models import create_model
from tensorcost.models.base import METADATA_FILE, seal_metadata

pytestmark = pytest.mark.slow

WEIGHTS = {"lightgbm": "model.txt", "attention": "weights.pt"}
COPIES = 40  # per family and mode
ABSURD = [b"0", b"-1", b"1e308", b"nan", b"inf", b"9223372036854775807", b"4294967297", b"-0"]

CHILD = textwrap.dedent("""
    import json, signal, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from helpers import small_featurized_table
    from tensorcost.errors import UserError
    from tensorcost.models import load_model

    table = small_featurized_table()  # the parent's table, rebuilt
    def on_alarm(*_):
        raise TimeoutError
    signal.signal(signal.SIGALRM, on_alarm)
    out = open(int(sys.argv[2]), "w", buffering=1)
    print("ready", file=out)
    for line in sys.stdin:
        signal.alarm(20)
        try:
            p = np.asarray(load_model(line.strip()).predict(table), dtype=np.float64)
            r = {"status": "loaded", "pred": p.tolist()}
        except UserError as exc:
            r = {"status": "refused" if "\\n" not in str(exc) else "multi-line", "why": str(exc)[:200]}
        except TimeoutError:
            r = {"status": "hang"}
        except Exception as exc:
            r = {"status": "error", "why": type(exc).__name__ + ": " + str(exc)[:200]}
        finally:
            signal.alarm(0)
        print(json.dumps(r), file=out)
""")


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    op = rng.choice(["flip", "truncate", "insert", "line", "number", "number"])
    n = len(data)
    if op == "flip":
        at = rng.randrange(n)
        return f"bit flip at {at}", data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
    if op == "truncate":
        cut = rng.randrange(n)
        return f"truncated to {cut}", data[:cut]
    if op == "insert":
        at = rng.randrange(n + 1)
        return f"bytes inserted at {at}", data[:at] + bytes(rng.randrange(256) for _ in range(6)) + data[at:]
    lines = data.split(b"\n")
    if op == "line" and len(lines) > 2:
        i = rng.randrange(len(lines))
        return f"line {i} deleted", b"\n".join(lines[:i] + lines[i + 1:])
    nums = list(re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", data[:100_000]))
    if not nums:
        return "bit flip at 0", bytes([data[0] ^ 1]) + data[1:]
    m, v = rng.choice(nums), rng.choice(ABSURD)
    return f"number at {m.start()} -> {v.decode()}", data[:m.start()] + v + data[m.end():]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from helpers import small_featurized_table

    root = tmp_path_factory.mktemp("fuzz")
    table = small_featurized_table()
    names = table.feature_names
    params = {"lightgbm": {"num_boost_round": 6, "min_data_in_leaf": 2, "num_threads": 1},
              "attention": {"epochs": 1, "d_model": 8, "n_heads": 2, "n_layers": 1, "max_len": 8}}
    for family in WEIGHTS:
        model = create_model(family, "t", "s", names, **params[family])
        model.fit(table)
        model.save(root / family)
    return root


def test_mutated_models_are_refused_or_load_right_and_never_crash(saved, tmp_path):
    import os

    r, w = os.pipe()
    tests_dir = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen([sys.executable, "-c", CHILD, tests_dir, str(w)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True, pass_fds=(w,), env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    os.close(w)
    # the child's answers come on a pipe of their own, so that what libraries print on stdout cannot pass as one
    with os.fdopen(r) as answers:
        assert answers.readline().strip() == "ready"

        def ask(directory) -> dict:
            child.stdin.write(f"{directory}\n")
            child.stdin.flush()
            line = answers.readline()
            assert line, f"the loader process died on {directory} (exit {child.wait()})"
            return json.loads(line)

        assert ask("/dev/null/none")["status"] == "refused"
        rng = random.Random(0)
        outcomes: dict = {}
        for family, weights in WEIGHTS.items():
            intact = ask(saved / family)
            assert intact["status"] == "loaded", intact
            for mode in ("hashed", "rehashed"):
                for i in range(COPIES):
                    d = tmp_path / f"{family}-{mode}-{i}"
                    shutil.copytree(saved / family, d)
                    name = rng.choice([weights, METADATA_FILE]) if mode == "hashed" else weights
                    what, new = _mutate((d / name).read_bytes(), rng)
                    (d / name).write_bytes(new)
                    if mode == "rehashed":
                        meta = json.loads((d / METADATA_FILE).read_text())
                        meta["files_sha256"][name] = hashlib.sha256(new).hexdigest()
                        (d / METADATA_FILE).write_text(json.dumps(meta))
                        seal_metadata(d)
                    got = ask(d)
                    case = f"{family} {mode} {name}: {what}"
                    assert got["status"] in ("refused", "loaded"), (case, got)
                    if mode == "hashed" and got["status"] == "loaded":
                        assert np.allclose(got["pred"], intact["pred"]), f"{case} loaded to other predictions"
                    outcomes[(family, mode, got["status"])] = outcomes.get((family, mode, got["status"]), 0) + 1
        child.stdin.close()
        assert child.wait(timeout=60) == 0
    # the edits were real: most hashed copies are refused
    for family in WEIGHTS:
        assert outcomes.get((family, "hashed", "refused"), 0) >= COPIES // 2, outcomes
