"""A blend of other families' rankings (issue 13): members trained on the same rows, their
scores put on one scale and averaged.

Why a blend: on networks of architecture families no training network had (by_family), the tree
models and the attention model are wrong about different programs (docs/RESULTS.md); averaging
two rankings whose errors are not the same cancels part of each.

The scale: each member's score divided by the spread of its scores *within a task* on the
training rows (label-free). Dividing by a constant fixed at training time, not re-ranking each
call, keeps scores of different calls comparable: MetaSchedule's evolutionary search keeps the
best candidates of many `predict` calls in one heap.

Artifact: `metadata.json` plus one sub-directory per member (`member-0/`, ...), each a complete
model directory of its own family (hash-checked, loaded without executing code).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..features import FeatureTable
from . import FAMILIES, create_model, family_class, load_model
from .base import CostModel, FamilyConfig, ModelFormatError, ModelMetadata, make_config

MAX_MEMBERS = 8
MEMBER_INPUTS = ("tokens", "flat", "ms_features")  # what members may read; a blend reads the union of its members'


class MemberSpec(BaseModel):
    """One member: a family and its params (params.yaml names presets; `params.model_spec`
    resolves them to this)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field("", max_length=200)  # the preset it came from, for model cards
    family: str
    params: dict = {}
    weight: float = Field(1.0, gt=0.0, le=1e6)


class EnsembleConfig(FamilyConfig):
    members: list[MemberSpec] = Field(..., min_length=2, max_length=MAX_MEMBERS)

    @field_validator("members")
    @classmethod
    def _check_members(cls, v: list[MemberSpec]) -> list[MemberSpec]:
        for m in v:
            if m.family not in FAMILIES:
                raise ValueError(f"member family {m.family!r} is not one of {', '.join(FAMILIES)}")
            # one level of nesting (a blend of platforms' models, some of them blends): never deeper
            if m.family == "ensemble" and any(isinstance(x, dict) and x.get("family") == "ensemble" for x in (m.params.get("members") or [])):
                raise ValueError(f"ensemble member {m.name or m.family!r} is a blend of blends: an ensemble nests one level at most")
            member = family_class(m.family)
            if not set(member.inputs) <= set(MEMBER_INPUTS):
                raise ValueError(f"member family {m.family!r} reads {member.inputs}; an ensemble's members read only {MEMBER_INPUTS}")
            # a member that reads MetaSchedule's features whole would make the blend read them whole
            if "ms_features" in member.inputs and not member.streams_ms_features:
                raise ValueError(f"member family {m.family!r} reads MetaSchedule's features whole; a member may read them only a fragment "
                                 f"at a time (the LightGBM family, e.g. lightgbm_joint)")
            make_config(family_class(m.family).Config, m.params, f"ensemble member {m.name or m.family}")
        return v


def within_task_spread(scores: np.ndarray, groups: np.ndarray) -> float:
    """Standard deviation of scores around their group's mean, pooled over groups (1.0 when the
    scores do not vary within any group: the member then adds a constant per task)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return 1.0
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    means = np.bincount(inverse, weights=scores) / np.bincount(inverse)
    dev = scores - means[inverse]
    spread = float(np.sqrt(np.mean(dev * dev)))
    return spread if np.isfinite(spread) and spread > 1e-12 else 1.0


class EnsembleCostModel(CostModel):
    family = "ensemble"
    inputs = ("tokens", "flat")  # a blend's own: its members' union (`inputs_of`, and each instance's)
    member_presets = True
    can_warm_start = True  # warm-starts the members that can; the others keep their weights
    Config = EnsembleConfig

    def __init__(self, metadata: ModelMetadata, members: list[CostModel]):
        super().__init__(metadata)
        self.members = members
        # what the blend reads is what its members read: a member reading MetaSchedule's features
        # (lightgbm_joint) makes the blend read them, and it streams them only if every such member does
        self.inputs = tuple(dict.fromkeys(i for m in members for i in m.inputs))
        self.streams_ms_features = all(m.streams_ms_features for m in members if "ms_features" in m.inputs)

    @classmethod
    def inputs_of(cls, params: dict) -> tuple[str, ...]:
        members = params.get("members") or []
        if not members or not all(isinstance(m, dict) and m.get("family") in FAMILIES for m in members):
            return cls.inputs
        return tuple(dict.fromkeys(i for m in members for i in family_class(m["family"]).inputs_of(m.get("params") or {})))

    @property
    def config(self) -> EnsembleConfig:
        return make_config(EnsembleConfig, self.metadata.params, "ensemble params")

    @classmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str], **params) -> "EnsembleCostModel":
        cfg = make_config(EnsembleConfig, params, "ensemble params")
        members = [create_model(m.family, target, feature_schema, feature_names, **m.params) for m in cfg.members]
        meta = ModelMetadata(family="ensemble", feature_schema=feature_schema, target=target, objective="blend of " + ", ".join(m.name or m.family for m in cfg.members),
                             feature_names=feature_names, params=cfg.model_dump(), extra={"spreads": []})
        return cls(meta, members)

    @classmethod
    def reuse_trained(cls, params: dict, trained: dict[str, tuple[CostModel, float]], train: FeatureTable) -> tuple[CostModel, float] | None:
        """The blend of members already trained on `train` under the same presets and params, and
        its cost (the members' seconds plus the blending); None if a member is missing: training
        members twice would only cost time, their weights would be the same."""
        t0 = time.perf_counter()
        members = params.get("members") or []
        models = []
        for m in members:
            have, _ = trained.get(m.get("name", ""), (None, 0.0))
            if have is None or have.family != m.get("family") or dict(have.metadata.params) != dict(family_class(m["family"]).Config(**m.get("params", {})).model_dump()):
                return None
            models.append(have)
        blend = cls.from_members(models, [m["name"] for m in members], train, [float(m.get("weight", 1.0)) for m in members])
        return blend, time.perf_counter() - t0 + sum(trained[m["name"]][1] for m in members)

    @classmethod
    def run_params(cls, params: dict) -> dict:
        """The members as their preset names and weights (`lightgbm_regx1,attentionx1`), not nested dicts."""
        if "members" not in params:
            return dict(params)
        return {**{k: v for k, v in params.items() if k != "members"}, "members": ",".join(f"{m['name']}x{m['weight']:g}" for m in params["members"])}

    @classmethod
    def from_members(cls, members: list[CostModel], names: list[str], train: FeatureTable, weights: list[float] | None = None) -> "EnsembleCostModel":
        """An ensemble of members already trained on `train` (the train stage trains each family
        once and blends those, instead of training them again inside the ensemble)."""
        weights = weights or [1.0] * len(members)
        first = members[0].metadata
        params = {"members": [{"name": n, "family": m.family, "params": dict(m.metadata.params), "weight": float(w)} for m, n, w in zip(members, names, weights)]}
        cfg = make_config(EnsembleConfig, params, "ensemble params")
        meta = ModelMetadata(family="ensemble", feature_schema=first.feature_schema, target=first.target, objective="blend of " + ", ".join(names),
                             feature_names=list(first.feature_names), params=cfg.model_dump(), extra={"spreads": []})
        model = cls(meta, list(members))
        model._calibrate(train)
        return model

    def _calibrate(self, train: FeatureTable) -> None:
        self.metadata.extra["spreads"] = [within_task_spread(m.predict(train), train.groups) for m in self.members]

    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, warm_start: bool = False, seed: int | None = None, log=None) -> dict[str, list[float]]:
        curves: dict[str, list[float]] = {}
        for i, m in enumerate(self.members):
            if warm_start and not m.can_warm_start:
                continue
            for k, v in m.fit(train, valid, warm_start=warm_start, seed=seed, log=log).items():
                curves[f"member{i}_{k}"] = v
        self._calibrate(train)
        return curves

    def predict(self, table: FeatureTable) -> np.ndarray:
        spreads = self.metadata.extra.get("spreads") or []
        self._check_trained(len(spreads) == len(self.members))
        total = np.zeros(len(table))
        for m, spec, spread in zip(self.members, self.config.members, spreads):
            total += spec.weight * np.asarray(m.predict(table), dtype=np.float64) / spread
        return total

    def describe(self) -> dict:
        d = super().describe()
        d["members"] = [m.describe() | {"name": s.name, "weight": s.weight} for m, s in zip(self.members, self.config.members)]
        return d

    def _save_weights(self, directory: Path) -> None:
        for i, m in enumerate(self.members):
            m.save(directory / f"member-{i}")

    @classmethod
    def _load(cls, metadata: ModelMetadata, directory: Path) -> "EnsembleCostModel":
        cfg = make_config(EnsembleConfig, metadata.params, f"{directory}: ensemble params")
        spreads = metadata.extra.get("spreads")
        if not (isinstance(spreads, list) and len(spreads) == len(cfg.members) and all(isinstance(s, (int, float)) and np.isfinite(s) and s > 0 for s in spreads)):
            raise ModelFormatError(f"{directory}: ensemble metadata needs one positive finite spread per member, got {spreads!r}")
        members = []
        for i, spec in enumerate(cfg.members):
            sub = directory / f"member-{i}"
            member = load_model(sub, metadata.feature_schema)
            if member.family != spec.family:
                raise ModelFormatError(f"{sub}: a {member.family} model where the ensemble's metadata says {spec.family}")
            members.append(member)
        return cls(metadata, members)
