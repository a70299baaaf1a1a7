"""The agent's record of each step: status, times, errors. Written atomically after every change."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from firstboot.files import atomic_write

DEFAULT_PATH = "/var/lib/goldstack/state.json"


def default_path(root: Path, override: Path | None = None) -> Path:
    from firstboot.files import under_root

    return override or under_root(root, DEFAULT_PATH)


PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
# Earlier runs kept in the record (`history`), oldest first: a node's runs after a kill, a power loss or a
# reconfiguration, each with the steps it did the work of.
KEPT_RUNS = 20


def _now() -> float:
    return round(time.time(), 3)


class StateStore:
    """A JSON file: {"agent": {...}, "steps": {name: {...}}, "history": [...]}. A crash leaves the last complete
    write."""

    def __init__(self, path: Path):
        self.path = path
        # Steps run side by side and report progress from their threads: every change and write holds it.
        self.lock = threading.RLock()
        self.data: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"agent": {}, "steps": {}, "history": []}
        except json.JSONDecodeError:
            # Only a hand edit can do this (writes are atomic); start afresh and say so in the record.
            return {"agent": {"note": f"{self.path} was unreadable and was reset"}, "steps": {}, "history": []}
        data.setdefault("agent", {})
        data.setdefault("steps", {})
        data.setdefault("history", [])
        return data

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, (json.dumps(self.data, indent=2, sort_keys=True) + "\n").encode(), 0o600)

    def step(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self.data["steps"].setdefault(name, {"status": PENDING, "runs": 0})

    def _archive_last_run(self) -> None:
        """Keep the run that ended (its times, outcome and the steps it did) before a new one begins."""
        agent = self.data["agent"]
        began = agent.get("started")
        if not began:
            return
        ended = agent.get("finished") or _now()
        steps = {name: {k: rec.get(k) for k in ("status", "started", "finished", "seconds")}
                 for name, rec in self.data["steps"].items()
                 if rec.get("started") is not None and began <= rec["started"] <= ended}
        self.data["history"] = [*self.data["history"], {"started": began, "finished": agent.get("finished"),
                                                  "status": agent.get("status"), "error": agent.get("error"),
                                                  "document": agent.get("document"), "steps": steps}][-KEPT_RUNS:]

    def begin_run(self, **info: Any) -> None:
        with self.lock:
            self._archive_last_run()
            agent = self.data["agent"]
            agent.update(info)
            agent.update({"status": RUNNING, "started": _now(), "finished": None, "pid": os.getpid(), "error": None,
                          "changed_files": [], "restarted": []})
            self.save()

    def end_run(self, status: str, error: str | None = None) -> None:
        with self.lock:
            self.data["agent"].update({"status": status, "finished": _now(), "error": error})
            self.save()

    def start(self, name: str) -> None:
        with self.lock:
            rec = self.step(name)
            rec.update({"status": RUNNING, "started": _now(), "finished": None, "error": None, "detail": None})
            rec["runs"] = rec.get("runs", 0) + 1
            self.save()

    def finish(self, name: str, detail: str | None, already: bool = False) -> None:
        with self.lock:
            rec = self.step(name)
            now = _now()
            if already:
                # Found done without running it: keep the times of the run that did the work.
                rec.update({"status": DONE, "checked": now, "error": None})
                rec.setdefault("detail", detail)
            else:
                rec.update({"status": DONE, "finished": now, "error": None, "detail": detail,
                            "seconds": round(now - rec.get("started", now), 3)})
            self.save()

    def record_changes(self, files: list[str] = (), restarted: list[str] = ()) -> None:
        """What this run changed: files it wrote and units it restarted (`status` and the lab show them)."""
        with self.lock:
            agent = self.data["agent"]
            agent["changed_files"] = sorted(set(agent.get("changed_files") or []) | set(files))
            agent["restarted"] = sorted(set(agent.get("restarted") or []) | set(restarted))
            self.save()

    def note(self, name: str, message: str) -> None:
        with self.lock:
            self.step(name)["detail"] = message
            self.save()

    def fail(self, name: str, error: str) -> None:
        with self.lock:
            rec = self.step(name)
            now = _now()
            rec.update({"status": FAILED, "finished": now, "error": error,
                        "seconds": round(now - rec.get("started", now), 3)})
            self.save()
