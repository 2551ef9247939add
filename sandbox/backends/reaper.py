"""Who owns a runner container, whether its owner still lives, and which containers are orphans to remove.

Every runner container carries labels: its role, its pool's owner id, and its owner process's identity (boot
id, pid namespace, pid, start time). If the owning process dies, its attach sockets close, the guards read
end-of-input and exit, and the next reaper pass (this or another instance's) removes the stopped containers;
one created but never started is removed after a grace period. A reaper that shares the owner's pid namespace
removes at once every container, running or not, whose owner process is gone.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any, Collection, Optional

import docker.errors

ROLE_LABEL = "iterpref.sandbox"
RUNNER_ROLE = "runner"
OWNER_LABEL = "iterpref.sandbox.owner"
OWNER_PROCESS_LABEL = "iterpref.sandbox.owner.process"  # "<boot id>|<pid namespace>|<pid>|<start ticks>"
ORPHAN_GRACE_S = 60.0  # another instance's stopped or 'created' container is left alone this long


def process_identity(pid: int) -> Optional[str]:
    """Who process ``pid`` is, unambiguously on this kernel (pids are reused; pid and start time together are
    not), or None if it is gone or /proc cannot tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if stat[0] == "Z":  # a zombie has finished: as good as gone
        return None
    return f"{boot}|{namespace}|{pid}|{stat[19]}"  # field 22 of stat: start time in clock ticks since boot


def owner_alive(identity: str) -> Optional[bool]:
    """Whether the process named by ``identity`` still runs: None when this process cannot tell (another host,
    another boot, another pid namespace, or a malformed label)."""
    parts = identity.split("|")
    mine = process_identity(os.getpid())
    if len(parts) != 4 or mine is None or not parts[2].isdigit() or mine.split("|")[:2] != parts[:2]:
        return None
    return process_identity(int(parts[2])) == identity


def owner_labels(owner: str, identity: str) -> dict[str, str]:
    """The labels a pool puts on each container it creates."""
    return {ROLE_LABEL: RUNNER_ROLE, OWNER_LABEL: owner, OWNER_PROCESS_LABEL: identity}


def orphans(api: Any, owner: str, known: Collection[str], busy: Collection[str], everything_of_ours: bool) -> list[str]:
    """The runner containers to remove: any whose owner process is known to be gone (same pid namespace),
    stopped ones (another live instance's only after a grace period, since it may still be reading why one
    stopped), running ones of ``owner`` that are not ``known`` (all of ours when ``everything_of_ours``), and
    ones stuck in 'created' for over the grace period. ``busy`` containers of ours are spared unless
    ``everything_of_ours``: their job's outcome is still being read. A container of another instance this
    process cannot check stays until its guard exits. ``api`` is the engine's low-level client."""
    found = []
    for info in api.containers(all=True, filters={"label": f"{ROLE_LABEL}={RUNNER_ROLE}"}):
        ours = info["Labels"].get(OWNER_LABEL) == owner
        if not ours and owner_alive(info["Labels"].get(OWNER_PROCESS_LABEL, "")) is False:
            found.append(info["Id"])
            continue
        if ours and info["Id"] in busy and not everything_of_ours:
            continue
        state = info.get("State", "")
        stale_created = state == "created" and time.time() - info.get("Created", 0) > ORPHAN_GRACE_S
        stopped = state in ("exited", "dead") and (ours or _stopped_for(api, info["Id"]) > ORPHAN_GRACE_S)
        leaked = ours and (everything_of_ours or info["Id"] not in known)
        if stopped or stale_created or leaked:
            found.append(info["Id"])
    return found


def _stopped_for(api: Any, container_id: str) -> float:
    """Seconds since the container stopped (0 if unknown or gone)."""
    try:
        finished = api.inspect_container(container_id)["State"]["FinishedAt"]
        stamp = datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00")  # Docker gives nanoseconds
    except (docker.errors.APIError, KeyError, ValueError):
        return 0.0
    return (datetime.now(timezone.utc) - stamp).total_seconds()
