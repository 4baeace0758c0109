"""Promotion: the gates (validation, schema, evaluation data, metrics; artifacts that load and predict), compare-and-set under the lock, the history of every move, rollback by that history."""

from __future__ import annotations

import datetime
import getpass
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..models.probe import probe_model
from .lock import _promotion_lock
from .store import CANDIDATE, CHAMPION, ArtifactIntegrityError, RegistryError, _lookup_failed, filter_value, model_name, open_client
from .versions import _model_tmpdir, _model_version, _refuse_synthetic, canonical_version, download, get_version

log = logging.getLogger(__name__)


@dataclass
class PromotionResult:
    promoted: bool
    target: str
    version: str
    previous: str | None
    reason: str


HISTORY_EXPERIMENT = "tensorcost-registry-history"


def _record_event(target: str, action: str, result: PromotionResult) -> None:
    """Append one promotion/refusal/rollback to the history (a run in a dedicated experiment:
    MLflow aliases keep no history of their own). Called under the promotion lock, so `seq`
    (one more than the events so far) orders events even within one clock tick."""
    seq = len(history(target)) + 1
    client = open_client()
    exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(HISTORY_EXPERIMENT)
    run = client.create_run(exp_id, run_name=f"{action}-{target}-v{result.version}", tags={
        "target": target, "action": action, "version": result.version, "previous": result.previous or "",
        "promoted": str(result.promoted).lower(), "reason": result.reason[:4000], "seq": str(seq),
        "actor": f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}",
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
    })
    try:
        client.set_terminated(run.info.run_id)
    except Exception as exc:  # noqa: BLE001  (the event's tags are written with the run: it is recorded; only its status lags)
        log.warning("history event %s of %s recorded, but its run %s could not be closed: %s", action, target, run.info.run_id, exc)


def history(target: str) -> list[dict]:
    """Every promotion, refusal and rollback of `target`, oldest first (by `seq`; events written
    before it existed have none and sort first, by time)."""
    name = model_name(target)  # a valid id before any store is opened
    query = f"tags.target = {filter_value(target)}"
    client = open_client()
    runs, token = [], None
    try:
        exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
        while exp is not None:  # every page: a long history must not lose its newest events
            page = client.search_runs([exp.experiment_id], filter_string=query, order_by=["attributes.start_time ASC"], max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
    except Exception as exc:  # noqa: BLE001  (rollbacks replay this: a partial history must not pass for the whole)
        raise _lookup_failed(f"the promotion history of {name}", exc) from exc
    keys = ("time", "action", "version", "previous", "promoted", "reason", "actor", "seq")
    events = [{k: r.data.tags.get(k, "") for k in keys} for r in runs]
    return sorted(events, key=lambda e: (int(e["seq"]) if e["seq"].isdigit() else 0, e["time"]))


def champion_chain(events: list[dict]) -> list[str]:
    """The champions so far, oldest first, replayed from the history: a promotion pushes its
    version, a rollback pops back to the one before. So repeated rollbacks walk further back
    instead of swapping between the last two."""
    chain: list[str] = []
    for e in events:
        if e["promoted"] != "true":
            continue
        if e["action"] == "promote":
            chain.append(e["version"])
        elif e["action"] == "rollback":
            if chain and chain[-1] == e["previous"]:
                chain.pop()
            if not chain or chain[-1] != e["version"]:  # a history that does not replay cleanly (old swap-style rollbacks)
                chain.append(e["version"])
    return chain


def _move_champion(client, target: str, version: str, action: str, result: PromotionResult) -> None:
    """Move `champion` to `version` and record it; if the record cannot be written, put the
    alias back (an unrecorded move would break the history that rollbacks replay)."""
    name = model_name(target)
    try:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    except Exception as exc:  # noqa: BLE001  (nothing moved: say so in one line)
        raise RegistryError(f"{name}: could not move '{CHAMPION}' to version {version} ({type(exc).__name__}: {exc}); "
                            f"champion left at {result.previous or 'none'}") from exc
    try:
        _retrying(lambda: _record_event(target, action, result))  # a store locked for a moment (sqlite) is waited out
    except Exception as exc:
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"

        def restore():
            if result.previous:
                client.set_registered_model_alias(name, CHAMPION, result.previous)
            else:
                client.delete_registered_model_alias(name, CHAMPION)

        try:
            _retrying(restore)
        except Exception as again:  # noqa: BLE001  (say exactly what state the registry is in)
            raise RegistryError(f"{name}: '{CHAMPION}' moved to version {version} but the {action} could not be recorded ({why}) nor the alias "
                                f"put back ({type(again).__name__}); set it back by hand: tensorcost promote --rollback is refused until then") from None
        raise RegistryError(f"{name}: could not record the {action} of version {version} ({why}); champion left at {result.previous or 'none'}") from None


def _retrying(fn, attempts: int = 4, delay_s: float = 0.2):
    """`fn()`, retried with a doubling delay (about 1.4 s in all) when the store is busy for a moment."""
    for i in range(attempts):
        try:
            return fn()
        except Exception:  # noqa: BLE001  (the last attempt's error is the caller's)
            if i == attempts - 1:
                raise
            time.sleep(delay_s * 2 ** i)


REQUIRED_TAGS = ("target", "feature_schema", "eval_data_hash", "validation")


def _tag_problem(tags: dict, target: str, who: str, metric_keys: tuple[str, ...]) -> str | None:
    """Why the tags the gates read cannot be trusted (None: they can): required tags present, the
    version's target the registered model's, metrics finite numbers in [0, 1]."""
    missing = [t for t in REQUIRED_TAGS + tuple(f"metric.{k}" for k in metric_keys) if not str(tags.get(t, "")).strip()]
    if missing:
        return f"{who} lacks the tag(s) {', '.join(missing)}"
    if tags["target"] != target:
        return f"{who} is a model of {tags['target']!r}, not of {target!r}"
    for key in metric_keys:
        raw = tags[f"metric.{key}"]
        try:
            value = float(raw)
        except ValueError:
            return f"{who}'s metric.{key} tag {str(raw)[:40]!r} is not a number"
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            return f"{who}'s metric.{key} tag {str(raw)[:40]!r} is not a finite number in [0, 1]"
    return None


def _check_gates(target: str, version: str, min_gain: float, metric_keys: tuple[str, ...]) -> PromotionResult:
    """The gates; any failed lookup raises (fails closed) rather than passing a gate."""
    tags = dict(_model_version(open_client(), target, version).tags)
    champ = get_version(target, CHAMPION)

    def refuse(why: str) -> PromotionResult:
        return PromotionResult(False, target, str(version), champ.version if champ else None, why)

    problem = _tag_problem(tags, target, f"version {version}", metric_keys)
    if problem:
        return refuse(problem)
    if tags.get("validation") != "passed":
        return refuse(f"version {version}: data validation is {tags.get('validation', 'unknown')!r}, not 'passed'")
    if champ is not None:
        problem = _tag_problem(dict(champ.tags), target, f"champion {champ.version}", metric_keys)
        if problem:
            return refuse(f"{problem}: the gates cannot compare against it (promote by hand after checking it)")
        if champ.version == str(version):
            return refuse(f"version {version} is already the champion")
        if champ.tags.get("feature_schema") != tags.get("feature_schema"):
            return refuse(f"feature schema {tags.get('feature_schema')!r} differs from the champion's {champ.tags.get('feature_schema')!r}")
        if champ.tags.get("eval_data_hash") != tags.get("eval_data_hash"):
            return refuse(
                f"version {version} was evaluated on data {tags.get('eval_data_hash')} but champion {champ.version} on "
                f"{champ.tags.get('eval_data_hash')}: metrics are not comparable; re-run the pipeline so both are evaluated on the same data"
            )
        for key in metric_keys:
            new, old = float(tags.get(f"metric.{key}", "nan")), float(champ.tags.get(f"metric.{key}", "nan"))
            if not new >= old + min_gain:
                worse = "worse than" if new < old else "not enough above"
                return refuse(f"{key} {new:.4f} is {worse} champion {champ.version}'s {old:.4f} (min gain {min_gain:+g})")
    ok, why = _artifacts_load(target, str(version), tags)
    if not ok:
        return refuse(f"version {version}: {why}")
    return PromotionResult(True, target, str(version), champ.version if champ else None, "all gates passed")


PROBE_TIMEOUT_S = 60.0  # inside the promotion lock's lease (120 s by default)


def _artifacts_load(target: str, version: str, tags: dict) -> tuple[bool, str]:
    """Whether the version's artifacts hash to their registered digest *and* load and predict on
    a small probe table in a child process within PROBE_TIMEOUT_S: a crash or a hang of the
    model's library is a refusal, not the CLI's death."""
    with _model_tmpdir() as tmp:
        try:
            directory = download(target, version, Path(tmp), tags)
        except ArtifactIntegrityError as exc:
            return False, str(exc)
        return probe_model(directory, tags.get("feature_schema"), timeout_s=PROBE_TIMEOUT_S)


def promote(target: str, version: str | None = None, min_gain: float = 0.0, metric_keys: tuple[str, ...] = ("pca", "top1", "top5")) -> PromotionResult:
    """Move `champion` to `version` (default: the candidate) if its gates pass; every attempt,
    promoted or refused, is appended to the history.

    Gates: validation passed; same feature schema as the champion; evaluated on the same
    evaluation data as the champion; every metric in `metric_keys` not worse than the
    champion's plus `min_gain` (0: not worse; negative: a tolerated drop). Checked and applied under a per-target lock, so two
    racing promotions end with one consistent champion.
    """
    model_name(target)  # a valid id before any store is opened
    _refuse_synthetic(target)
    client = open_client()
    if version is not None:
        version = canonical_version(version)
    with _promotion_lock(target) as lock:
        if version is None:
            cand = get_version(target, CANDIDATE)
            if cand is None:
                raise RegistryError(f"{model_name(target)} has no '{CANDIDATE}' version to promote")
            version = cand.version
        result = _check_gates(target, str(version), min_gain, metric_keys)
        lock.check()  # the alias and `seq` are only ours to write while we hold the lock
        if result.promoted:
            _move_champion(client, target, str(version), "promote", result)
        else:
            try:
                _record_event(target, "refuse", result)
            except Exception as exc:  # noqa: BLE001  (the gate held; say so, and that the history lacks it)
                raise RegistryError(f"{model_name(target)}: promotion of version {version} refused ({' '.join(result.reason.split())}), "
                                    f"but the refusal could not be recorded ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})") from exc
    return result


def rollback(target: str) -> PromotionResult:
    """Restore the champion before the current one, by the history (`champion_chain`): a
    second rollback goes one further back, not back to where the first started."""
    name = model_name(target)  # a valid id before any store is opened
    client = open_client()
    with _promotion_lock(target) as lock:
        champ = get_version(target, CHAMPION)
        if champ is None:
            raise RegistryError(f"{name} has no champion to roll back")
        chain = champion_chain(history(target))
        if chain and chain[-1] != champ.version:
            raise RegistryError(f"{name}: champion is version {champ.version} but the history's last champion is {chain[-1]} "
                                f"(the alias was moved outside `tensorcost promote`); refusing to guess a rollback target")
        if len(chain) < 2:
            raise RegistryError(f"{name}: no previous champion recorded for version {champ.version}")
        result = PromotionResult(True, target, chain[-2], champ.version, f"rolled back from version {champ.version}")
        lock.check()
        _move_champion(client, target, chain[-2], "rollback", result)
    return result
