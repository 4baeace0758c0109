"""Typed params: one model per `params.yaml` section, parsed and validated once.

Every default is written here, once; `params.yaml` lists the values DVC tracks. A wrong type, a
value out of range, an unknown key or a missing file is a `ParamsError`: one line naming the
file, the key, what was wrong and what is valid.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator, model_validator

from .errors import UserError
from .models import FAMILIES, family_class
from .models.base import ModelFormatError, make_config
from .names import check_name, is_name
from .splits import DEFAULT_TEST_FAMILIES, DEFAULT_TEST_NETWORKS
from .zoo import ARCHITECTURE_FAMILIES

PARAMS_FILE = Path("params.yaml")
HOST = "host"  # the dataset slot of this machine's fresh measurements


class ParamsError(UserError):
    """params.yaml is missing, malformed, or holds a wrong value."""


PosInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]


# -- the configs of the measuring and tuning rooms (collect, rpc, tuning import them from here:
# params sits below them and imports none of them) ----------------------------------------------

class RpcConfig(BaseModel):
    """`measure.rpc`: where runs go (null: this machine, LocalRunner)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    tracker: str  # host:port of `python -m tvm.exec.rpc_tracker`
    key: str  # the device key the servers registered with (one key = one platform)
    session_timeout_s: StrictInt = Field(60, ge=1)  # a session (upload, link, run) longer than this is a run timeout
    request_timeout_s: float = Field(60.0, gt=0)  # how long a program waits for a free server of the key
    connect_timeout_s: float = Field(5.0, gt=0)  # reaching the tracker
    priority: StrictInt = Field(1, ge=0)  # the tracker serves higher priorities first
    servers: StrictInt = Field(0, ge=0)  # concurrent sessions; 0: one per server registered under the key

    @field_validator("tracker")
    @classmethod
    def _check_tracker(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port such as '127.0.0.1:9190'")
        return v

    @field_validator("key")
    @classmethod
    def _check_key(cls, v: str) -> str:
        if not is_name("device key", v):  # the names grammar: it becomes a registry and file name
            raise ValueError("a device key is letters, digits, '.', '_' or '-' (e.g. the platform id 'zen5-2c')")
        return v

    @property
    def host(self) -> str:
        return self.tracker.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.tracker.rpartition(":")[2])


class MeasureConfig(BaseModel):
    """The measurement protocol (params.yaml's `measure`: typed, bounded, defaults written here)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    number: int = Field(3, ge=1)  # runs averaged into one repeat
    repeat: int = Field(3, ge=1)  # repeats kept per record
    min_repeat_ms: int = Field(20, ge=0)
    build_timeout_s: float = Field(30.0, gt=0)
    run_timeout_s: float = Field(30.0, gt=0)
    builder_workers: int = Field(2, ge=1)
    run_batch: int = Field(32, ge=1)  # programs per LocalBuilder call (each call re-spawns its worker pool)
    rpc: RpcConfig | None = None  # null: run here (LocalRunner); else a TVM RPC tracker and device key (tensorcost.rpc)


class TuneConfig(BaseModel):
    """A tuning run's budget (params.yaml's `tune`: typed, bounded, defaults written here)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    network: str = "tiny_resnet"
    max_tasks: int = Field(3, ge=0)  # the largest tasks by FLOPs x occurrences (0: every task)
    max_trials_global: int = Field(48, ge=1)
    # `spread`: each task gets at most its share of the budget (TVM's gradient scheduler otherwise
    # may spend it all on one task) and the tasks take turns (MetaSchedule's round-robin)
    spread: bool = False
    trials_per_task: int = Field(0, ge=0)  # > 0: the budget is this many trials per tuned task (max_trials_global then ignored)
    num_trials_per_iter: int = Field(16, ge=1)
    population_size: int = Field(128, ge=2)  # evolutionary search (TVM's default 512 costs ~20 s a round on 2 cores)
    seed: int = Field(0, ge=0)
    timing_number: int = Field(20, ge=1)  # the whole network's timing: runs per repeat
    timing_repeat: int = Field(5, ge=1)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _target_id(value: str, allow_host: bool = False, allow_auto: bool = False) -> str:
    if (allow_host and value == HOST) or (allow_auto and value == "auto") or is_name("target id", value):
        return value
    extra = (" or 'host'" if allow_host else "") + (" or 'auto'" if allow_auto else "")
    raise ValueError(f"{value!r} is not a target id: expected <platform>.<variant> such as 'zen4-2c.avx2-t1'{extra} (see `tensorcost targets`)")


class HostParams(Section):
    """This machine's fresh measurement: a sample of the bundled CPU tasks (their programs: `programs`)."""

    target: str = "auto"  # auto: this platform with the first of `variants` it supports
    variants: list[str] = ["avx2-t1", "sse42-t2", "avx512-t1"]
    tasks: NonNegInt = 12  # bundled tasks re-measured here (0: all), chosen by hash
    programs_per_task: NonNegInt = 24  # programs of each (0: all)
    seed: NonNegInt = 0
    # fresh: programs of the chosen tasks the set does not hold (seed FRESH_SEED + seed), so the
    # transfer's and by_hardware's test sides are programs no model trained on; bundled: the
    # set's own (records line up with every platform's, program by program)
    programs: Literal["fresh", "bundled"] = "fresh"

    @field_validator("target")
    @classmethod
    def _check_target(cls, v: str) -> str:
        return _target_id(v, allow_auto=True)

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one variant such as 'avx2-t1'")
        return v




class SplitParams(Section):
    strategy: Literal["within_task", "by_task", "by_network", "by_family"] = "by_family"  # by_hardware holds out a whole platform: studies only
    test_fraction: Fraction = 0.2
    seed: NonNegInt = 0
    test_networks: Annotated[list[str], Field(min_length=1)] = list(DEFAULT_TEST_NETWORKS)  # by_network (TenSet/TLP's)
    test_families: Annotated[list[str], Field(min_length=1)] = list(DEFAULT_TEST_FAMILIES)  # by_family (zoo.ARCHITECTURE_FAMILIES)

    @field_validator("test_families")
    @classmethod
    def _known_families(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in ARCHITECTURE_FAMILIES]
        if unknown:
            raise ValueError(f"unknown architecture families {unknown}; the zoo's: {', '.join(ARCHITECTURE_FAMILIES)}")
        return v


class ModelPreset(BaseModel):
    """A model of the studies: a family and its params (`base`: start from another preset)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    family: str | None = None
    base: str | None = None


class FeaturizeParams(Section):
    # worker processes over fragments (null: one a core); results do not depend on it
    workers: int | None = Field(default=None, ge=1, le=256)
    # rows a fragment holds at most (whole tasks): one fragment is what a worker, a validation
    # pass or a reader holds at a time
    rows_per_fragment: int = Field(default=200_000, ge=1000)


class ClusterParams(Section):
    # a Dask scheduler ("tcp://HOST:8786"; README "TenSet at full size") or "local": a LocalCluster here
    scheduler: str = Field(default="local", min_length=1)
    workers: int = Field(default=2, ge=1, le=1024)  # LocalCluster worker processes (a real scheduler has its own)


class TorchrunParams(Section):
    # the attention model under torchrun + DDP (models.ddp_train.torchrun_command): processes a
    # host and hosts; one host: `--standalone`; several: a c10d rendezvous at rdzv_endpoint
    nproc_per_node: int = Field(default=2, ge=1, le=256)
    nnodes: int = Field(default=1, ge=1, le=1024)
    rdzv_endpoint: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")  # HOST:PORT
    rdzv_id: str = Field(default="tensorcost", pattern=r"^[A-Za-z0-9_.\-]+$")

    @model_validator(mode="after")
    def _check_hosts(self) -> "TorchrunParams":
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("torchrun across hosts (nnodes > 1) needs rdzv_endpoint: HOST:PORT of the rendezvous")
        return self


class TrainParams(Section):
    # null: one process. Set: the train stage reads the feature store a fragment at a time and
    # trains LightGBM on this Dask cluster (the other families stream from the store in-process)
    cluster: ClusterParams | None = None
    # null: the attention model trains in one process; set: the torchrun launch of it
    # (models.ddp_train.torchrun_command; the train stage launches it, models.ddp_train.torchrun_fit)
    torchrun: TorchrunParams | None = None
    targets: list[str] = []  # one registered model per target
    # Joint training over hardware (the paper's): each target's models train on the split's
    # training side of every train target of its kind (CPU / GPU), its own test side unchanged;
    # the hardware features tell the platforms apart. False: the target's own rows only.
    pool_platforms: StrictBool = False
    models: Annotated[list[str], Field(min_length=1)] = ["lightgbm_reg", "lightgbm_rank", "attention"]  # every one is registered
    # `candidate`: the model with the best mean of these on the split's test side (by_family:
    # networks of architectures training never saw, where users use a model)
    candidate_metrics: Annotated[list[Literal["pca", "top1", "top5"]], Field(min_length=1)] = ["pca", "top1", "top5"]

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, v: list[str]) -> list[str]:
        return [_target_id(t) for t in v]


class EvaluateParams(Section):
    targets: list[str] = []  # the slots evaluated (empty: every slot); by_hardware trains on every other platform's slots
    # by_hardware+<split>: the platform held out *and* that split's test programs (splits.py)
    splits: list[Literal["within_task", "by_task", "by_network", "by_family", "by_hardware", "by_hardware+within_task",
                         "by_hardware+by_task", "by_hardware+by_network", "by_hardware+by_family"]] = ["by_network", "by_hardware"]
    models: list[str] = ["lightgbm_rank", "lightgbm_reg", "tvm_xgb", "attention", "random"]


class RegistryParams(Section):
    experiment: str = "tensorcost"

    @field_validator("experiment")
    @classmethod
    def _check_experiment(cls, v: str) -> str:
        return check_name("experiment", v)


class TransferParams(Section):
    target: str = HOST  # the slot models are transferred to
    sources: list[str] | Literal["auto"] = "auto"  # auto: every train target of another platform
    alias: str = "champion"  # source models are pulled by alias (falls back to candidate)
    fractions: list[Annotated[float, Field(gt=0.0, le=100.0)]] = [5, 10, 25, 50, 100]
    peers: list[str] = ["lightgbm_rank", "tvm_xgb"]  # trained from scratch on the same k%
    test_fraction: Fraction = 0.5
    pooled: list[str] = ["lightgbm_reg"]  # presets trained on the source platforms' records pooled: the default a new machine is served
    confidence: Annotated[float, Field(ge=0.5, lt=1.0)] = 0.95  # another approach replaces the default only when a bootstrap is this sure
    seed: NonNegInt = 0

    @field_validator("target")
    @classmethod
    def _check_target(cls, v: str) -> str:
        return _target_id(v, allow_host=True)

    @field_validator("alias")
    @classmethod
    def _check_alias(cls, v: str) -> str:
        return check_name("alias", v)


class TuneParams(TuneConfig):
    """`TuneConfig` (tuning.py) and which model tunes where."""

    target: str = HOST  # `host`: this machine's target (host.target)
    alias: str = "champion"  # falls back to `candidate` when no champion exists yet
    mode: Literal["frozen", "online"] = "frozen"  # online: fine-tuned on the search's own measurements (tuning.cost_model)

    @field_validator("target")
    @classmethod
    def _check_target(cls, v: str) -> str:
        return _target_id(v, allow_host=True)

    @field_validator("alias")
    @classmethod
    def _check_alias(cls, v: str) -> str:
        return check_name("alias", v)


class PruneParams(Section):
    """Pruned variants of one slot (src/tensorcost/pruning.py): the `prune` stage writes one
    records file per strategy x kept percent, `train_pruned` registers models trained on each."""

    slot: str  # the dataset slot pruned (dvc.yaml's paths name it); only its split's training side: test records are never pruned
    strategies: list[Literal["random", "random_tasks", "attention_loss", "kcenter", "uncertainty"]] = ["uncertainty"]
    percents: list[Annotated[StrictInt, Field(ge=1, le=100)]] = [20]  # kept % of the training side
    seed: NonNegInt = 0
    scout: str | None = None  # the attention preset attention_loss and kcenter look through (None: the family's defaults)
    ensemble: str | None = None  # the lightgbm preset of uncertainty's committee (None: the family's defaults)
    models: list[str] = []  # trained and registered on each variant (empty: train.models)
    alias_prefix: str = "pruned"  # the best model of a variant gets alias <prefix>-<strategy>-<percent>

    @field_validator("slot")
    @classmethod
    def _check_slot(cls, v: str) -> str:
        return _target_id(v, allow_host=True)

    @field_validator("alias_prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        return check_name("alias", v)


HOST_SOURCE = "data/raw/host"  # where the collect stage writes this machine's records


class Params(Section):
    targets: dict[str, str]  # the dataset: slot -> its raw records; `host` is this machine (host.target)
    host: HostParams = HostParams()
    measure: MeasureConfig = MeasureConfig()
    split: SplitParams = SplitParams()
    featurize: FeaturizeParams = FeaturizeParams()
    models: dict[str, ModelPreset] = {}
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    registry: RegistryParams = RegistryParams()
    transfer: TransferParams = TransferParams()
    tune: TuneParams = TuneParams()
    prune: PruneParams | None = None  # the prune and train_pruned stages need it

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("needs at least one target")
        for slot, source in v.items():
            _target_id(slot, allow_host=True)
            if slot == HOST and source != HOST_SOURCE:
                raise ValueError(f"the host slot's records are {HOST_SOURCE} (the collect stage writes them), not {source!r}")
            if not source or source.startswith("/") or ".." in Path(source).parts:
                raise ValueError(f"{slot}: {source!r} must be a path inside the repository")
        return v

    @model_validator(mode="after")
    def _cross_checks(self):
        for section, keys in (("train.models", self.train.models), ("evaluate.models", self.evaluate.models), ("transfer.peers", self.transfer.peers),
                              ("transfer.pooled", self.transfer.pooled), *self._prune_presets()):
            unknown = [k for k in keys if k not in self.models]
            if unknown:
                raise ValueError(f"{section} names {unknown}, which `models` does not define (defined: {', '.join(self.models)})")

        for name in self.models:
            check_name("model preset", name, where="models")  # a preset's name becomes models/<target>/<name>/
            self.model_spec(name)  # every preset resolves to a family and valid params
        for section, slots in (("train.targets", self.train.targets), ("evaluate.targets", self.evaluate.targets)):
            missing = [t for t in slots if t not in self.targets]
            if missing:
                raise ValueError(f"{section} {missing} are not in `targets` (the dataset slots)")
        if self.prune is not None:
            if self.prune.slot not in self.targets:
                raise ValueError(f"prune.slot {self.prune.slot!r} is not in `targets` (the dataset slots)")

            # the scout needs program embeddings; uncertainty's committee, a tree model (the contract says which family has which)
            for section, name, need, what in (("prune.scout", self.prune.scout, "embeds", "a family with program embeddings"),
                                               ("prune.ensemble", self.prune.ensemble, "tree_model", "a tree model family")):
                if name and not getattr(family_class(self.model_spec(name)[0]), need):
                    raise ValueError(f"{section} {name!r} is a {self.model_spec(name)[0]} preset; it must be of {what}")
        if self.transfer.target not in self.targets:
            raise ValueError(f"transfer.target {self.transfer.target!r} is not in `targets`")
        if isinstance(self.transfer.sources, list):
            missing = [t for t in self.transfer.sources if t not in self.train.targets]
            if missing:
                raise ValueError(f"transfer.sources {missing} are not in train.targets (a source model must be trained and registered)")
        return self

    def _prune_presets(self) -> list[tuple[str, list[str]]]:
        if self.prune is None:
            return []
        return [("prune.models", self.prune.models), ("prune.scout", [self.prune.scout] if self.prune.scout else []),
                ("prune.ensemble", [self.prune.ensemble] if self.prune.ensemble else [])]

    def _ensemble_members(self, name: str, members: Any) -> list[dict]:
        """An ensemble preset's `members` (preset names, or {preset, weight}) as the family's
        member specs: each preset resolved to its family and params."""
        if not isinstance(members, list):
            raise ValueError(f"models.{name}: members: a list of model presets, e.g. [lightgbm_reg, attention] (got {members!r})")
        out = []
        for m in members:
            preset, weight = (m, 1.0) if isinstance(m, str) else (m.get("preset"), m.get("weight", 1.0)) if isinstance(m, dict) else (None, None)
            if not isinstance(preset, str) or not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise ValueError(f"models.{name}: members: each is a preset name or {{preset: <name>, weight: <number>}} (got {m!r})")
            family, params = self.model_spec(preset, _member_of=name)
            out.append({"name": preset, "family": family, "params": params, "weight": float(weight)})
        return out

    def model_spec(self, name: str, _member_of: str | None = None) -> tuple[str, dict]:
        """(family, params) of a preset, `base` chains resolved (an ensemble's members too)."""
        seen: list[str] = []
        params: dict[str, Any] = {}
        family = None
        while name is not None:
            if name in seen:
                raise ValueError(f"models: `base` chain loops: {' -> '.join(seen + [name])}")
            if name not in self.models:
                raise ValueError(f"models: unknown preset {name!r} (defined: {', '.join(self.models)})")
            seen.append(name)
            preset = self.models[name]
            extra = dict(preset.model_extra or {})
            params = {**extra, **params}
            family = family or preset.family
            name = preset.base

        if family not in FAMILIES:
            raise ValueError(f"models.{seen[0]}: family {family!r} is not one of {', '.join(FAMILIES)}")
        if family_class(family).member_presets:  # a blend: its `members` name other presets, resolved here
            if _member_of is not None:
                raise ValueError(f"models.{_member_of}: members: {seen[0]!r} is itself an ensemble; members are single models")
            params = {**params, "members": self._ensemble_members(seen[0], params.get("members"))}
        try:
            make_config(family_class(family).Config, params, f"models.{seen[0]}")
        except ModelFormatError as exc:
            raise ValueError(str(exc)) from None
        return family, params


def _one_line(exc: ValidationError, path: Path) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-")) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    got = f" (got {err['input']!r})" if "input" in err and err["type"] not in ("extra_forbidden", "missing") and not isinstance(err["input"], dict) else ""
    more = f" [and {len(exc.errors()) - 1} more problem(s)]" if len(exc.errors()) > 1 else ""
    return f"{path}: {loc}: {msg}{got}{more}"


def _one_line_text(obj: object) -> str:
    """A parser's message on one line (PyYAML's reader errors span several)."""
    return " ".join(str(obj).split())


def _validated(model: type[BaseModel], data: Any, path: Path):
    """`data` (a parsed YAML file) as `model`, or one ParamsError line naming the file and key."""
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(_one_line(exc, path)) from None


def parse_params(data: Any, path: Path = PARAMS_FILE) -> Params:
    return _validated(Params, data, path)


MAX_PARAMS_BYTES = 1 << 20  # a params file is a page of settings: anything larger is a mistake (or an attack)


class _StrictLoader(yaml.SafeLoader):
    """YAML as params need it: a key given twice is an error (not "the last one wins"), and no
    aliases (`*name`: the road to a billion-laughs expansion; write the value out)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, f"YAML alias *{event.anchor} is not allowed in params: write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> Params:
    size = Path(path).stat().st_size
    if size > MAX_PARAMS_BYTES:
        raise ParamsError(f"{path}: {size} bytes; a params file is at most {MAX_PARAMS_BYTES} bytes")
    try:
        data = yaml.load(Path(path).read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}{where}: not valid YAML: {_one_line_text(getattr(exc, 'problem', None) or exc)}") from None
    return parse_params(data, Path(path))


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """The validated params of `path` (default: params.yaml in the working directory)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found (run from the repository root, where params.yaml is)")
    return _load(str(path), path.stat().st_mtime)


# -- collecting a dataset (new program sets, new platforms): docs/dataset-params.yaml ------------

class ZooParams(Section):
    networks: list[str] = []


class SampleParams(Section):
    reference_target: str  # design spaces are drawn for this target (a catalog GPU needs no GPU)
    max_tasks: PosInt = 42  # round-robin over networks, largest FLOPs first
    min_flops: Annotated[float, Field(ge=0.0)] = 0.0
    max_flops: PosFloat = float("inf")
    programs_per_task: NonNegInt = 104
    seed: NonNegInt = 0
    tasks_from: str | None = None  # a directory with a tasks.json: its tasks instead of the zoo's
    skip_tasks_of: str | None = None  # a directory with a tasks.json: leave its tasks out (a set that grows)
    op_kinds_first: StrictBool = False  # within a network, tasks of op kinds not chosen yet first
    op_kinds: list[str] | None = None  # only tasks of these op kinds (records.OP_KINDS; checked by collect)
    extend: StrictBool = False  # tasks_from's tasks holding fewer than programs_per_task programs: theirs plus fresh ones up to it
    workers: PosInt = 1  # tasks sampled in parallel processes

    @field_validator("reference_target")
    @classmethod
    def _check_target(cls, v: str) -> str:
        return _target_id(v)

    @model_validator(mode="after")
    def _extend_needs_a_set(self) -> "SampleParams":
        if self.extend and not self.tasks_from:
            raise ValueError("sample.extend adds programs to the tasks of an existing set: name it in sample.tasks_from")
        return self


class CollectionParams(Section):
    """A collection run: sample programs once from the zoo's networks, measure them on targets."""

    targets: list[str] = []
    zoo: ZooParams = ZooParams()
    sample: SampleParams | None = None
    measure: MeasureConfig = MeasureConfig()

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, v: list[str]) -> list[str]:
        return [_target_id(t) for t in v]


def load_collection_params(path: str | Path) -> CollectionParams:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {_one_line_text(exc)}") from None
    return _validated(CollectionParams, data, path)
