"""The promotion lock: a file lock beside a sqlite store (one machine), a lease lock held in the registry itself for a tracking server (several machines)."""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import random
import socket
import time
import uuid
from typing import Iterator

from .store import RegistryError, _epoch_iso, _file_lock, _lookup_failed, _sqlite_path, filter_value, model_name, open_client, tracking_uri

log = logging.getLogger(__name__)


class _NoFence:
    """What `_promotion_lock` yields for a file lock: an OS lock cannot be lost while held."""

    def check(self) -> None:
        return None


@contextlib.contextmanager
def _promotion_lock(target: str) -> Iterator["_NoFence | RegistryLock"]:
    """Serialize promotions of one target (compare-and-set on the alias).

    MLflow aliases have no compare-and-set, so gates are checked and the alias moved under a
    lock. A SQLite store is one machine's file: an OS file lock beside the database. Any other
    store (a tracking server, shared by machines with no common file system) gets a lock held in
    the registry itself (`RegistryLock`). The yielded object's `check()` raises if the lock was
    lost (a lease that expired mid-promotion): call it right before moving the alias.
    """
    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None:
        with _file_lock(db.with_name(f"{db.name}.{model_name(target)}.lock")):
            yield _NoFence()
        return
    lock = RegistryLock(open_client(), target)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


LOCK_PREFIX = "tensorcost.promotion-lock"  # not `tensorcost-...`: list_models must not see locks as targets


LOCK_LEASE_ENV, LOCK_TIMEOUT_ENV = "TENSORCOST_PROMOTION_LEASE_S", "TENSORCOST_PROMOTION_LOCK_TIMEOUT_S"


def lock_model_name(target: str, generation: int) -> str:
    return f"{LOCK_PREFIX}.{target}.{generation}"


class RegistryLock:
    """A lease lock made of registered models, so every machine talking to one server is excluded.

    Each acquisition creates the next *generation*, the registered model
    `tensorcost.promotion-lock.<target>.<n>`, tagged with its holder, a random token and the
    lease's expiry; MLflow's unique model name makes that creation atomic (one creator wins,
    the others get RESOURCE_ALREADY_EXISTS). Generation n may be created only when n-1 is free:
    tagged `released` by its holder, or its lease expired (holder gone). The holder is whoever
    created the highest generation.

    Why generations rather than one lock model that waiters delete when stale: MLflow has no
    compare-and-delete, so two waiters that both saw the stale lock could each delete it, the
    second deleting the fresh lock the first had just taken. Here nobody deletes or edits a lock
    another process may hold: breaking a stale lock *is* creating the next generation, which only
    one waiter can do. A creator that raced a slow reader (it recreated a generation already
    superseded and cleaned up) sees a higher generation on its check and backs off.

    Leases compare wall clocks of different machines: keep them NTP-synced (the lease, 120 s by
    default, dwarfs normal skew). A holder stalled past its lease loses the lock: `check()`
    before moving the alias says so instead of writing.
    """

    def __init__(self, client, target: str, lease_s: float | None = None, timeout_s: float | None = None):
        self.client, self.target = client, target
        self.lease_s = float(lease_s if lease_s is not None else os.environ.get(LOCK_LEASE_ENV, 120))
        self.timeout_s = float(timeout_s if timeout_s is not None else os.environ.get(LOCK_TIMEOUT_ENV, 600))
        self.token = uuid.uuid4().hex
        self.holder = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        self.generation: int | None = None

    def _generations(self) -> dict[int, dict]:
        """{generation: tags} of this target's lock models (a few: superseded ones are deleted)."""
        prefix = f"{LOCK_PREFIX}.{self.target}."
        out, token = {}, None
        while True:
            page = self.client.search_registered_models(filter_string=f"name LIKE {filter_value(prefix + '%')}", max_results=1000, page_token=token)
            for rm in page:
                rest = rm.name[len(prefix):]
                if rm.name.startswith(prefix) and rest.isdigit():  # `_` in a target id is a LIKE wildcard: match exactly here
                    out[int(rest)] = dict(rm.tags)
            token = page.token
            if not token:
                return out

    @staticmethod
    def _free(tags: dict) -> bool:
        try:
            expired = time.time() > float(tags.get("expires", "0"))
        except ValueError:
            expired = True  # an unreadable lease cannot hold anyone off forever
        return tags.get("released") == "true" or expired

    def _try_create(self, generation: int) -> bool:
        """Create `generation`; True if we did. Only RESOURCE_ALREADY_EXISTS is a clean "lost"; any
        other error (a create that raced a release, a retried request) is decided by reading who
        holds that generation now."""
        from mlflow.exceptions import MlflowException

        tags = {"holder": self.holder, "token": self.token, "lease_s": f"{self.lease_s:g}", "expires": f"{time.time() + self.lease_s:.3f}"}
        try:
            self.client.create_registered_model(lock_model_name(self.target, generation), tags=tags)
            return True
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                return False
            return self._generations().get(generation, {}).get("token") == self.token

    def acquire(self) -> None:
        deadline, attempt, tags = time.monotonic() + self.timeout_s, 0, {}
        try:
            while True:
                gens = self._generations()
                top = max(gens, default=0)
                tags = gens.get(top, {})
                if (top == 0 or self._free(tags)) and self._try_create(top + 1):
                    if max(self._generations(), default=0) == top + 1:
                        self.generation = top + 1
                        self._delete_superseded(gens)
                        return
                    self._release_generation(top + 1)  # a stale read let us recreate a superseded generation: back off
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"{model_name(self.target)}: could not take the promotion lock within {self.timeout_s:.0f} s: held by "
                        f"{tags.get('holder', '?')} until {_epoch_iso(tags.get('expires'))} (its lease frees it if that holder is gone)")
                attempt += 1
                time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))  # backoff + jitter: racers spread out
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001  (server unreachable or broken: fail closed, one line)
            raise _lookup_failed(f"the promotion lock of {model_name(self.target)}", exc) from exc

    def _delete_superseded(self, gens: dict[int, dict]) -> None:
        """Delete generations below ours (best effort: litter only, they can never be free again
        for a holder, since a higher generation exists)."""
        from mlflow.exceptions import MlflowException

        for g in gens:
            if g < (self.generation or 0):
                try:
                    self.client.delete_registered_model(lock_model_name(self.target, g))
                except MlflowException:
                    pass

    def check(self) -> None:
        """Raise unless we still hold the lock (ours is the highest generation, lease not over)."""
        gens = self._generations()
        top = max(gens, default=0)
        ours = gens.get(self.generation or -1, {})
        if top != self.generation or ours.get("token") != self.token or time.time() > float(ours.get("expires", "0")):
            raise RegistryError(f"{model_name(self.target)}: lost the promotion lock (lease of {self.lease_s:g} s expired); "
                                f"nothing was moved, promote again")

    def _release_generation(self, generation: int) -> None:
        self.client.set_registered_model_tag(lock_model_name(self.target, generation), "released", "true")

    def release(self) -> None:
        """Tag our generation released (if it is still ours); a failure leaves it to its lease."""
        if self.generation is None:
            return
        try:
            if self._generations().get(self.generation, {}).get("token") == self.token:
                self._release_generation(self.generation)
        except Exception as exc:  # noqa: BLE001  (the lease frees it; the promotion itself is done)
            log.warning("could not release the promotion lock of %s (its %g s lease frees it): %s", model_name(self.target), self.lease_s, exc)
        self.generation = None
