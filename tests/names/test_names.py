"""One shared, full-match grammar for every name that becomes a path (issue 28, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tensorcost.names import GRAMMARS, NameError_, check_name, is_name

HOSTILE = ["..", "../x", "a/../../x", "/tmp/x", "x/y", "x\\y", "x\n", "x\r", " x", "x ", "", ".hidden", "-flag",
           "zеn5-2c.avx2-t1",  # Cyrillic 'е': a look-alike
           "zen5-2c.avx2-t1\n", "a" * 500, "x\x00y"]


@pytest.mark.parametrize("kind", sorted(GRAMMARS))
@pytest.mark.parametrize("value", HOSTILE)
def test_no_hostile_name_passes_any_grammar(kind, value):
    with pytest.raises(NameError_) as err:
        check_name(kind, value, where="somewhere")
    assert "\n" not in str(err.value).replace("\\n", "") and "somewhere" in str(err.value)


@pytest.mark.parametrize("kind,value", [("target id", "zen5-2c.avx2-t1"), ("target id", "synthetic-zen5-2c.tenset"), ("platform id", "sapphirerapids-2c-0ceb"),
                                        ("model preset", "lightgbm_reg"), ("experiment", "tensorcost"), ("alias", "pruned-kcenter-20"),
                                        ("variant", "kcenter-20"), ("device key", "zen5-2c")])
def test_the_names_the_project_uses_pass(kind, value):
    assert check_name(kind, value) == value and is_name(kind, value)


def test_a_trailing_newline_is_not_the_end_of_a_target_id():
    from tensorcost.hardware.catalog import split_target_id
    from tensorcost.hardware import UnknownTargetError

    assert split_target_id("zen5-2c.avx2-t1") == ("zen5-2c", "avx2-t1")
    with pytest.raises(UnknownTargetError):
        split_target_id("zen5-2c.avx2-t1\n")


@pytest.mark.parametrize("key,value,expect", [
    ("models", {"/tmp/x": {"family": "random"}}, "is not a valid model preset"),
    ("models", {"e/../../../x": {"family": "random"}}, "is not a valid model preset"),
    ("registry", {"experiment": ""}, "experiment is empty"),
    ("registry", {"experiment": "../x"}, "is not a valid experiment"),
    ("tune", {"alias": "champion\n"}, "is not a valid alias"),
])
def test_params_names_that_would_become_paths_are_one_line_errors(tmp_path, key, value, expect):
    import yaml

    repo = Path(__file__).resolve().parents[2]
    p = yaml.safe_load((repo / "params.yaml").read_text())
    if key == "models":
        p["models"].update(value)
    else:
        p[key].update(value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    from tensorcost.params import ParamsError, load_params

    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "params.yaml")
    msg = str(err.value)
    assert expect in msg and len(msg.splitlines()) == 1, msg
