"""Growing the dataset by one platform: the catalog and params.yaml edits keep every comment and
add each entry once (the measurement itself: tests/collect)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tensorcost import hardware
from tensorcost.newplatform import add_to_catalog, add_to_params_block, catalog_entry_yaml

REPO = Path(__file__).resolve().parents[2]


def test_params_blocks_grow_by_one_entry_and_keep_comments():
    text = (REPO / "params.yaml").read_text()
    out = add_to_params_block(text, "targets", "zen3-2c.avx2-t1: data/bundled/platforms/zen3-2c/avx2-t1.parquet")
    out = add_to_params_block(out, "train.targets", "- zen3-2c.avx2-t1")
    assert add_to_params_block(out, "train.targets", "- zen3-2c.avx2-t1") == out  # once only
    p = yaml.safe_load(out)
    assert p["targets"]["zen3-2c.avx2-t1"] == "data/bundled/platforms/zen3-2c/avx2-t1.parquet"
    assert p["train"]["targets"][-1] == "zen3-2c.avx2-t1" and len(p["train"]["targets"]) == len(yaml.safe_load(text)["train"]["targets"]) + 1
    assert [l for l in text.splitlines() if l.lstrip().startswith("#")] == [l for l in out.splitlines() if l.lstrip().startswith("#")]


def test_a_new_platform_is_appended_to_the_catalog_as_data(tmp_path, monkeypatch):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text((REPO / "src/tensorcost/data/catalog.yaml").read_text())
    # A platform no catalog holds (the host's own may already be in it).
    new = hardware.Platform(id="zen2-6c", kind="cpu", vendor="AuthenticAMD", model_name='AMD EPYC 7402P "Rome"', microarch="zen2", cores=6, clock_ghz=2.8,
                            l1d_kb=32, l2_kb=512, l3_kb=16384, isa=("sse4_2", "avx2", "fma"), fingerprint={"cpu_family": 23, "cpu_model": 49}, source="detected")
    assert add_to_catalog(new, catalog) is True
    doc = yaml.safe_load(catalog.read_text())
    again = hardware.Platform.from_dict({"id": "zen2-6c", **doc["platforms"]["zen2-6c"]})
    assert again == new  # the text block reads back as the same platform
    assert "# The platform catalog" in catalog.read_text()
    assert add_to_catalog(hardware.get_platform("zen5-2c"), catalog) is False  # already there: untouched
    assert catalog_entry_yaml(new).startswith("  zen2-6c:\n")
