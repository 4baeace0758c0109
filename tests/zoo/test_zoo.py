"""The network zoo: every network builds and runs on its input shape; names and families."""

from __future__ import annotations

import pytest

from tensorcost import zoo

torch = pytest.importorskip("torch")
SMALL = ["tiny_resnet", "mlp", "resnet18-b1-112", "mobilenet_v2-b1-112", "bert_tiny-b1-64", "dcgan-b1-64", "vit_tiny-b1-224"]


@pytest.mark.parametrize("name", SMALL)
def test_networks_build_and_run_on_their_input(name):
    spec = zoo.get_network(name)
    with torch.no_grad():
        out = spec.build()(torch.randn(*spec.input_shape))
    assert out.shape[0] == spec.input_shape[0] and torch.isfinite(out).all()


def test_variant_names_carry_family_batch_and_size():
    for name, spec in zoo.NETWORKS.items():
        assert name == spec.name and (name == spec.family or name.startswith(spec.family + "-")), name
        if "-b" in name:
            assert f"-b{spec.input_shape[0]}-" in name
    assert {"resnet50", "mobilenet_v2", "resnext50_32x4d", "bert_base"} <= {s.family for s in zoo.NETWORKS.values()}  # TenSet's held-out networks


def test_unknown_network_is_a_user_error_listing_the_zoo():
    from tensorcost.errors import UserError

    with pytest.raises(UserError) as exc:
        zoo.get_network("resnet1000")
    assert "unknown network 'resnet1000'" in str(exc.value) and "tiny_resnet" in str(exc.value)
