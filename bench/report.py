"""results.md and chart.png from the medians of a benchmark run.

Targets are reported, never asserted: the bench is a measurement, not a test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Headline figures that a saturated generator would cap (marked with a dagger).
HEADLINE = {"chat": "msgs_per_s", "chat-many": "msgs_per_s", "login": "logins_per_s", "muc": "deliveries_per_s",
            "muc-large": "deliveries_per_s"}
HEADLINE["component"] = "msgs_per_s"
HEADLINE["pep"] = "deliveries_per_s"
GEN_CPUS = [1]

# Reference figures the targets were set against (issue 8).
REF_CHAT = {"prosody": 25_500, "ejabberd": 23_600}


@dataclass
class Row:
    scenario: str
    label: str
    key: str
    unit: str
    higher_is_better: bool
    target_text: str
    # (sakari_value, {other: value}) -> met? (None when it cannot be judged)
    judge: Callable[[float, dict[str, float]], bool | None]
    digits: int = 0


def _best(others: dict[str, float], higher: bool) -> tuple[str, float] | None:
    vals = {k: v for k, v in others.items() if v is not None and not math.isnan(v)}
    if not vals:
        return None
    name = (max if higher else min)(vals, key=vals.get)  # type: ignore[arg-type]
    return name, vals[name]


def _chat_judge(s: float, others: dict[str, float]) -> bool | None:
    best = _best(others, True)
    ref = best[1] if best else max(REF_CHAT.values())
    return s >= 1.5 * ref


def _chat_many_judge(s: float, others: dict[str, float]) -> bool | None:
    # No reference figure was taken in this regime: without another server measured, it cannot be judged.
    best = _best(others, True)
    return None if best is None else s >= 1.5 * best[1]


ROWS = [
    Row("chat", "chat throughput", "msgs_per_s", "msgs/s", True,
        "≥ 1.5× the better other server measured here", _chat_judge),
    Row("chat", "chat throughput vs the reference figure", "msgs_per_s", "msgs/s", True,
        "≥ 38,250 (1.5 × Prosody's 25,500)", lambda s, o: s >= 1.5 * max(REF_CHAT.values())),
    Row("chat", "chat latency p50", "p50_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("chat", "chat latency p99", "p99_ms", "ms", False,
        "no worse than the better-throughput other server", lambda s, o: None, 1),
    Row("chat", "chat lost messages", "lost", "msgs", False, "0", lambda s, o: s == 0),
    Row("chat", "chat server CPU", "server_cpu", "cores", False, "—", lambda s, o: None, 2),
    Row("chat", "chat msgs per server CPU-second", "msgs_per_server_cpu_s", "msgs/CPU-s", True, "—",
        lambda s, o: None),
    Row("chat-many", "chat, many connections: throughput", "msgs_per_s", "msgs/s", True,
        "≥ 1.5× the better other server measured here", _chat_many_judge),
    Row("chat-many", "chat, many connections: latency p99", "p99_ms", "ms", False,
        "no worse than the better-throughput other server", lambda s, o: None, 1),
    Row("chat-many", "chat, many connections: lost messages", "lost", "msgs", False, "0", lambda s, o: s == 0),
    Row("s2s", "chat between two servers (s2s): throughput", "msgs_per_s", "msgs/s", True,
        "≥ 1.5× the better other pair measured here", _chat_many_judge),
    Row("s2s", "chat between two servers: latency p99", "p99_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("s2s", "chat between two servers: lost messages", "lost", "msgs", False, "0", lambda s, o: s == 0),
    Row("s2s", "chat between two servers: CPU of both servers", "server_cpu", "cores", False, "—",
        lambda s, o: None, 2),
    Row("login", "logins (SCRAM-SHA-1 + bind)", "logins_per_s", "logins/s", True, "> 1,900/s",
        lambda s, o: s > 1900),
    Row("login", "login latency p99", "p99_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("idle", "memory per idle connection", "kib_per_conn", "KiB", False, "≤ 30 KiB",
        lambda s, o: s <= 30, 1),
    Row("muc", "room fan-out ({muc_occupants} occupants)", "deliveries_per_s", "deliveries/s", True,
        "≥ 1.5× the better other server measured here", _chat_many_judge),
    Row("muc", "room fan-out latency p50", "p50_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("muc", "room fan-out latency p99", "p99_ms", "ms", False,
        "no worse than the better-throughput other server", lambda s, o: None, 1),
    Row("muc", "room fan-out lost deliveries", "lost", "deliveries", False, "0", lambda s, o: s == 0),
    Row("muc", "room fan-out server CPU", "server_cpu", "cores", False, "—", lambda s, o: None, 2),
    Row("muc", "room deliveries per server CPU-second", "deliveries_per_server_cpu_s", "deliveries/CPU-s", True,
        "—", lambda s, o: None),
    Row("muc-large", "large room ({muc_large_occupants} occupants): fan-out", "deliveries_per_s", "deliveries/s",
        True, "reported", lambda s, o: None),
    Row("muc-large", "large room: message latency p50", "p50_ms", "ms", False, "reported", lambda s, o: None, 1),
    Row("muc-large", "large room: message latency p99", "p99_ms", "ms", False, "reported", lambda s, o: None, 1),
    Row("muc-large", "large room: join latency p50", "join_p50_ms", "ms", False, "reported", lambda s, o: None, 1),
    Row("muc-large", "large room: join latency p99", "join_p99_ms", "ms", False, "reported", lambda s, o: None, 1),
    Row("muc-large", "large room: all occupants in", "join_all_s", "s", False, "reported", lambda s, o: None, 2),
    Row("muc-large", "large room: lost deliveries", "lost", "deliveries", False, "0", lambda s, o: s == 0),
    Row("muc-large", "large room: server CPU", "server_cpu", "cores", False, "—", lambda s, o: None, 2),
    Row("component", "component traffic (users ↔ echoing component)", "msgs_per_s", "msgs/s", True,
        "≥ 1.5× the better other server measured here", _chat_many_judge),
    Row("component", "component round trip p50", "p50_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("component", "component round trip p99", "p99_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("component", "component lost messages", "lost", "msgs", False, "0", lambda s, o: s == 0),
    Row("component", "component server CPU", "server_cpu", "cores", False, "—", lambda s, o: None, 2),
    Row("component", "component msgs per server CPU-second", "msgs_per_server_cpu_s", "msgs/CPU-s", True, "—",
        lambda s, o: None),
    Row("pep", "PEP notifications to {pep_contacts} contacts", "deliveries_per_s", "deliveries/s", True,
        "reported", lambda s, o: None),
    Row("pep", "PEP publishes", "publishes_per_s", "publishes/s", True, "reported", lambda s, o: None),
    Row("pep", "PEP notification latency p50", "p50_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("pep", "PEP notification latency p99", "p99_ms", "ms", False, "—", lambda s, o: None, 1),
    Row("pep", "PEP lost notifications", "lost", "deliveries", False, "0", lambda s, o: s == 0),
    Row("pep", "PEP server CPU", "server_cpu", "cores", False, "—", lambda s, o: None, 2),
    Row("pep", "PEP deliveries per server CPU-second", "deliveries_per_server_cpu_s", "deliveries/CPU-s", True, "—",
        lambda s, o: None),
    Row("mam", "MAM last page of 50 (archive of {mam_archive:,}), median", "ms_per_page", "ms", False,
        "—", lambda s, o: None, 1),
    Row("mam", "MAM last page of 50 (archive of {mam_archive:,}), p99", "p99_ms", "ms", False,
        "< 20 ms at 1,000,000 messages", lambda s, o: s < 20, 1),
    Row("mam", "MAM first (cold) query after start", "cold_ms", "ms", False, "—", lambda s, o: None, 1),
]


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _cell(medians: dict, unsupported: dict, server: str, scenario: str, row: Row) -> tuple[str, float | None]:
    reason = unsupported.get(server, {}).get(scenario)
    if reason:
        return f"*{reason}*", None
    m = medians.get(server, {}).get(scenario)
    if m is None:
        return "not run", None
    if "error" in m and row.key not in m:
        return "failed", None
    v = m.get(row.key)
    if v is None:
        return "n/a", None
    text = _fmt(v, row.digits)
    if row.key == HEADLINE.get(scenario) and m.get("gen_cpu", 0) >= 0.9 * GEN_CPUS[0]:
        text += " †"
    lo, hi = m.get(row.key + "_min"), m.get(row.key + "_max")
    if m.get("runs_ok", 1) > 1 and lo is not None and hi is not None and row.key not in ("lost",):
        text += f" <sub>({_fmt(lo, row.digits)}–{_fmt(hi, row.digits)})</sub>"
    return text, v


def write_report(out: Path, raw: dict, medians: dict, unsupported: dict, servers: list[str],
                 scenarios: list[str]) -> Path:
    lines: list[str] = []
    env = raw["environment"]
    p = raw["params"]
    GEN_CPUS[0] = len(p["gen_cpus"]) or 1
    lines.append("# Sakari benchmark results\n")
    lines.append(f"Measured {env['date']} on {env['cpu']} ({env['cpus']} CPUs), Linux {env['kernel']}, "
                 f"generator: Python {env['python']} with {env['generator_loop']}, {p['workers']} worker processes "
                 f"pinned to CPU {','.join(map(str, p['gen_cpus']))}; each server pinned to CPU "
                 f"{','.join(map(str, raw['server_cpus']))}. "
                 f"{'STARTTLS on every connection' if raw['tls'] else 'Plain TCP c2s (no TLS)'}, SASL SCRAM-SHA-1. "
                 f"Figures are medians of {raw['runs']} run(s); (min–max) below a median.\n")
    vers = ", ".join(f"{s} {raw['servers'][s]['version']}" for s in servers if s in raw["servers"])
    lines.append(f"Versions: {vers}.\n")
    others = [s for s in servers if not s.startswith("sakari")]  # sakari-pg is Sakari too, on PostgreSQL
    head = ["figure"] + servers
    if "sakari" in servers and others:
        head.append("Sakari ÷ best other")
    head += ["target (Sakari)", "met?"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for row in ROWS:
        if row.scenario not in scenarios:
            continue
        cells = [f"{row.label.format(**p)} ({row.unit})"]
        vals: dict[str, float | None] = {}
        for s in servers:
            text, v = _cell(medians, unsupported, s, row.scenario, row)
            cells.append(text)
            vals[s] = v
        if "sakari" in servers and others and row.key == "server_cpu":
            cells.append("—")
        elif "sakari" in servers and others:
            sv = vals.get("sakari")
            best = _best({o: vals[o] for o in others if vals.get(o) is not None}, row.higher_is_better)
            if sv is not None and best and best[1]:
                cells.append(f"{sv / best[1]:.2f}× ({best[0]})")
            else:
                cells.append("—")
        met = "—"
        sv = vals.get("sakari")
        if row.key == "p99_ms" and row.scenario in ("chat", "chat-many", "muc") and sv is not None:
            thr = {o: (medians.get(o, {}).get(row.scenario) or {}).get(HEADLINE[row.scenario]) for o in others}
            best = _best({o: v for o, v in thr.items() if v is not None}, True)
            if best and vals.get(best[0]) is not None:
                met = "yes" if sv <= vals[best[0]] else "no"  # type: ignore[operator]
        elif sv is not None:
            ok = row.judge(sv, {o: vals[o] for o in others if vals.get(o) is not None})  # type: ignore[misc]
            met = "—" if ok is None else ("yes" if ok else "no")
        elif "sakari" in servers:
            reason = unsupported.get("sakari", {}).get(row.scenario)
            met = "pending" if reason else "—"
        cells += [row.target_text, met]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Reference figures the targets were set against: Prosody 25,500 msgs/s, ejabberd 23,600 msgs/s "
                 "(1:1 chat). Ratios are Sakari's median over the best other server's median measured in this "
                 "run (for ms and KiB lower is better, so a ratio below 1 is better).\n")

    lines.append("† the generator used ≥ 90 % of its CPU during the window: the figure is a lower bound "
                 "for that server.\n")
    noise = []
    for s in servers:
        for sc, m in medians.get(s, {}).items():
            if "server_cpu" in m:
                noise.append(f"| {s} | {sc} | {m['server_cpu']:.2f} | {m.get('gen_cpu', float('nan')):.2f} | "
                             f"{m.get('server_core_other', float('nan')):.2f} | "
                             f"{m.get('server_core_steal', float('nan')):.2f} |")
    if noise:
        lines.append("## CPU during the measurement windows (medians, in cores)\n")
        lines.append("Server = the server's process tree; generator = the load generator's workers; other = "
                     "anything else that ran on the server's CPU (a shared machine); steal = time the "
                     "hypervisor took from that CPU. A server below 1.0 with other/steal above 0 was disturbed.\n")
        lines.append("| server | scenario | server | generator | other on server CPU | steal |")
        lines.append("|---|---|---|---|---|---|")
        lines.extend(noise)
        lines.append("")

    # Failures, if any
    fails = []
    for s in servers:
        for sc, m in medians.get(s, {}).items():
            for err in m.get("failed_runs", []) or ([m["error"]] if "error" in m else []):
                fails.append(f"- {s} / {sc}: {err}")
    if fails:
        lines.append("## Failed runs\n")
        lines.extend(fails)
        lines.append("")

    lines.append("## Parameters\n")
    lines.append(f"- chat: {p['chat_users']} online users in pairs (each sent initial presence), each sending "
                 f"1:1 `type=chat` messages to its partner's full JID flat out, with {p['chat_window']} in flight "
                 f"(a message's arrival lets its sender send the next one); warm-up {p['warmup_s']} s, window "
                 f"{p['duration_s']} s, then sending stops and the bench waits up to {p['drain_s']} s for every "
                 "message sent to arrive (lost = sent − received). This is the regime of the reference figures "
                 "(see bench/README.md).")
    if "chat_many_users" in p:
        lines.append(f"- chat-many: the same with {p['chat_many_users']} users and {p['chat_many_window']} in "
                     "flight per sender: each read and each write carries one or two stanzas, so per-connection "
                     "and per-syscall costs dominate.")
    if "s2s" in scenarios:
        lines.append(f"- s2s: two servers of the same kind (a.s2s.test, b.s2s.test, each on its own loopback address, "
                     "both on the server CPUs) federating over STARTTLS with dialback; the chat exchange with "
                     f"{p['chat_users'] // 2} users on each, u<i> of one server paired with u<i> of the other, "
                     f"{p['chat_window']} in flight per sender, so every message crosses the server-to-server link "
                     "and is routed by both. CPU is both servers' together.")
    if p.get("archive"):
        lines.append("- **--archive**: in chat and chat-many every server archives every message for sender and "
                     "recipient in its own archive (Sakari's default modules, Prosody's mod_mam on SQL storage with "
                     "SQLite, ejabberd's mod_mam on its default storage), with carbons and stream management on; "
                     "every client enables carbons and stream management (XEP-0198, no resumption) after binding and "
                     "answers each ack request of the server. Each user has one resource, so carbons copy nothing.")
    lines.append(f"- login: {p['login_users']} accounts, {p['login_parallel']} connections in parallel, each "
                 "connect → stream → SCRAM-SHA-1 → stream restart → bind, then `</stream:stream>` and close; "
                 "logins completed inside the window per second.")
    lines.append(f"- idle: {p['idle_conns']:,} connections authenticated and bound"
                 f"{' with initial presence' if p['idle_presence'] else ''}; (VmRSS after − VmRSS before) ÷ "
                 f"connections, read {p['idle_settle_s']} s after the last one logged in. RSS is summed over "
                 "the server's process tree.")
    lines.append(f"- muc: {p['muc_occupants']} occupants in one room, {p['muc_senders']} of them sending "
                 f"groupchat messages with at most {p['muc_window']} in flight each (a sender's own reflected "
                 "message frees a slot); deliveries = messages received by occupants per second.")
    if "muc_large_occupants" in p:
        lines.append(f"- muc-large: the same in a room of {p['muc_large_occupants']} occupants. Join latency: from "
                     "an occupant's presence to the room to its own presence back (after the others'), with every "
                     "occupant but the creator entering at once, 20 joins in flight per generator worker; "
                     "\"all occupants in\" is the time until the last one is in.")
    if "component_users" in p:
        lines.append(f"- component: {p['component_users']} online users, each sending 1:1 `type=chat` messages to "
                     "an external component (XEP-0114; one per generator worker, a raw-socket client like the users) "
                     f"with {p['component_window']} in flight; the component sends each message back to its sender, "
                     "whose receipt of the echo lets it send the next. msgs/s counts both hops (user → component and "
                     "component → user) inside the window; latency is the round trip.")
    filled = ("written straight into each server's archive storage while it was stopped (bench/mam_fill.py: "
              "Sakari's storage API, Prosody's SQL archive table)" if p.get("mam_fill") == "direct"
              else "sent to u1 through the server (archiving on; not timed)")
    lines.append(f"- mam: u1's archive filled once per server with {p['mam_archive']:,} 1:1 messages {filled}; "
                 "Prosody keeps its archive in SQL storage (SQLite), ejabberd in its default one. "
                 f"Then {p['mam_queries']} queries "
                 f"for the last page of {p['mam_page']} (XEP-0313 with RSM `<before/>`), one after another, each "
                 "timed from the iq to its result; the median is quoted. The first query after the server started "
                 "is timed apart (cold). The target is stated for 1,000,000 messages; see bench/README.md for why "
                 "the default archive is smaller.")
    lines.append("")
    lines.append("## Settings relaxed, per server\n")
    lines.append("Every server: its own temporary config and data directory, loopback ports only, started in the "
                 "foreground by the runner, `RLIMIT_NOFILE` raised to the hard limit, pinned with CPU affinity. "
                 "Rate limits off for c2s on all three.\n")
    for s in servers:
        info = raw["servers"].get(s)
        if not info:
            continue
        lines.append(f"**{s}**\n")
        lines.extend(f"- {r}" for r in info["relaxed"])
        lines.append("")
    lines.append("![chart](chart.png)\n")
    out.mkdir(parents=True, exist_ok=True)
    md = out / "results.md"
    md.write_text("\n".join(lines))
    try:
        _chart(out / "chart.png", medians, unsupported, servers, scenarios)
    except Exception as e:  # matplotlib missing or broken: the table is what matters
        (out / "chart-error.txt").write_text(f"chart not drawn: {e!r}\n")
    return md


CHART = [
    ("chat", "msgs_per_s", "1:1 chat, msgs/s (higher is better)", None),
    ("chat", "p99_ms", "chat latency p99, ms (lower is better)", None),
    ("chat-many", "msgs_per_s", "chat, many connections, msgs/s", None),
    ("login", "logins_per_s", "logins/s (higher is better)", 1900),
    ("idle", "kib_per_conn", "KiB per idle connection (lower is better)", 30),
    ("muc", "deliveries_per_s", "room fan-out, deliveries/s", None),
    ("muc", "p99_ms", "room fan-out latency p99, ms", None),
    ("muc-large", "join_p99_ms", "large room join latency p99, ms", None),
]

COLORS = {"sakari": "#2a7ab9", "prosody": "#6b8e23", "ejabberd": "#c0504d"}


def _chart(path: Path, medians: dict, unsupported: dict, servers: list[str], scenarios: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [c for c in CHART if c[0] in scenarios]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    for ax, (sc, key, title, target) in zip(axes[0], panels):
        names, vals, lo, hi = [], [], [], []
        for s in servers:
            m = medians.get(s, {}).get(sc) or {}
            v = m.get(key)
            names.append(s)
            if v is None or unsupported.get(s, {}).get(sc):
                vals.append(0.0)
                lo.append(0.0)
                hi.append(0.0)
                continue
            vals.append(v)
            lo.append(v - m.get(key + "_min", v))
            hi.append(m.get(key + "_max", v) - v)
        bars = ax.bar(names, vals, yerr=[lo, hi], capsize=4, color=[COLORS.get(n, "#888") for n in names])
        for b, s, v in zip(bars, names, vals):
            label = "n/a" if v == 0 else (f"{v:,.0f}" if v >= 100 else f"{v:,.1f}")
            if unsupported.get(s, {}).get(sc):
                label = "not yet"
            ax.annotate(label, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
        if (sc, key) in (("chat", "msgs_per_s"), ("chat-many", "msgs_per_s"), ("muc", "deliveries_per_s")):
            others = [v for n, v in zip(names, vals) if n != "sakari" and v]
            if others:
                target = 1.5 * max(others)
        if target:
            ax.axhline(target, color="black", linestyle="--", linewidth=1)
            ax.annotate("target", (0.01, target), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Rewrite results.md and chart.png from a results.json (e.g. after
    changing this file): ``python -m bench.report [bench/results/results.json]``."""
    import json
    import sys

    from bench.run import median_metrics

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results" / "results.json"
    raw = json.loads(path.read_text())
    medians = {s: {sc: median_metrics(runs) for sc, runs in per.items() if runs}
               for s, per in raw["results"].items()}
    servers = list(raw["results"])
    md = write_report(path.parent, raw, medians, raw.get("unsupported", {}), servers, raw["scenarios"])
    print(md)


if __name__ == "__main__":
    main()
