"""Reading a server's memory and CPU from /proc (Linux only).

A server is measured as the process the runner started plus all of its
descendants, so a server that forks helpers is charged for them too (for
ejabberd the process started is beam.smp itself; for Prosody it is the lua
interpreter; for Sakari the Python interpreter).
"""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        rest = stat[stat.rfind(b")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        ticks += int(rest[11]) + int(rest[12])  # utime, stime
    return ticks / CLK_TCK


def cpu_busy_seconds(cpus: set[int] | tuple[int, ...]) -> tuple[float, float]:
    """(busy, steal) seconds so far of the given CPUs, from /proc/stat.

    Busy minus the server's own CPU time over a window is the load that
    something else (another tenant, the generator spilling over, kernel work)
    put on the server's core: the noise figure in the raw results."""
    want = {f"cpu{c}" for c in cpus}
    busy = steal = 0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in want:
                v = list(map(int, parts[1:]))
                # user nice system idle iowait irq softirq steal ...
                busy += v[0] + v[1] + v[2] + v[5] + v[6]
                steal += v[7] if len(v) > 7 else 0
    return busy / CLK_TCK, steal / CLK_TCK
