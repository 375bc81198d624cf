"""Run the Sakari / Prosody / ejabberd benchmark and write bench/results/.

    python -m bench.run                      # everything, 3 runs, full sizes
    python -m bench.run --quick --runs 1     # a small smoke run
    python -m bench.run --servers sakari,prosody --scenarios chat,login

One server process runs at a time.  For every run, every server and every
scenario a fresh server process is started (same data directory, so the
accounts are created once), measured, and stopped; runs are interleaved
(run 1 of every server, then run 2 ...) so slow drifts of a shared machine
spread over all servers alike.  The figures quoted are medians over the runs.

Before the runs, every account logs in once per server (not measured): the
generator's SCRAM key cache lives in this process and is inherited by every
forked worker, so no measured run pays for PBKDF2 on the client side.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.loadgen import raise_nofile_limit
from bench.report import write_report
from bench.scenarios import DEFAULT_SCENARIOS, SCENARIOS, Params, ScenarioError, prime_scram_cache
from bench.servers import SERVERS, default_features, drop_databases, install_debian_packages, stop_all

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="sakari,prosody,ejabberd",
                    help="comma-separated, in this order (default: %(default)s)")
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                    help="comma-separated subset of: " + ", ".join(SCENARIOS) + " (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario and server; medians are reported")
    ap.add_argument("--quick", action="store_true", help="small sizes and short windows (a smoke run)")
    ap.add_argument("--tls", action="store_true", help="STARTTLS on every connection (default: plain TCP)")
    ap.add_argument("--workers", type=int, default=None, help="generator processes (default 2)")
    ap.add_argument("--server-cpus", default="0", help="CPUs the server is pinned to (default: %(default)s)")
    ap.add_argument("--gen-cpus", default="1", help="CPUs the generator is pinned to (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=None, help="measurement window in seconds")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up before the window, seconds")
    ap.add_argument("--chat-users", type=int, default=None)
    ap.add_argument("--chat-window", type=int, default=None)
    ap.add_argument("--chat-many-users", type=int, default=None)
    ap.add_argument("--chat-many-window", type=int, default=None)
    ap.add_argument("--login-users", type=int, default=None)
    ap.add_argument("--login-parallel", type=int, default=None)
    ap.add_argument("--idle-conns", type=int, default=None)
    ap.add_argument("--idle-settle", type=float, default=None,
                    help="seconds between the last idle login and the RSS reading (default 5)")
    ap.add_argument("--muc-occupants", type=int, default=None)
    ap.add_argument("--muc-large-occupants", type=int, default=None)
    ap.add_argument("--mam-archive", type=int, default=None,
                    help="messages in the queried archive (target is stated for 1,000,000; default 20,000)")
    ap.add_argument("--mam-fill", choices=("server", "direct"), default=None,
                    help="how the archive is filled: messages sent through the server (default), or rows written "
                         "straight into its archive storage while it is stopped (Sakari, sakari-pg, Prosody)")
    ap.add_argument("--mam-queries", type=int, default=None, help="timed archive queries per run (default 20)")
    ap.add_argument("--sakari-modules", choices=("default", "core"), default="default",
                    help="Sakari's module list: the one it ships with (archive, carbons, stream management and more "
                         "on), or 'core', instant messaging only, as the other servers are configured here")
    ap.add_argument("--archive", action="store_true",
                    help="chat and chat-many with every server archiving every message (its own archive), carbons "
                         "and stream management on, enabled by the clients, which answer the servers' ack requests")
    ap.add_argument("--sakari-features", default=None,
                    help="comma-separated bench features Sakari is measured on (default: those its default "
                         "modules serve, 'muc'; '' for none)")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each measurement, wait up to this many seconds for the machine to be idle")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: bench/results)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where servers keep config/data (default: a fresh temporary directory)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep configs, data and server logs")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get / pip")
    return ap.parse_args(argv)


def cpu_set(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        elif part.strip():
            out.add(int(part))
    return out


def build_params(args: argparse.Namespace) -> Params:
    p = Params.quick() if args.quick else Params()
    overrides = {"workers": args.workers, "duration_s": args.duration, "warmup_s": args.warmup,
                 "chat_users": args.chat_users, "chat_window": args.chat_window,
                 "chat_many_users": args.chat_many_users, "chat_many_window": args.chat_many_window,
                 "login_users": args.login_users, "login_parallel": args.login_parallel,
                 "idle_conns": args.idle_conns, "muc_occupants": args.muc_occupants,
                 "muc_large_occupants": args.muc_large_occupants,
                 "mam_archive": args.mam_archive, "idle_settle_s": args.idle_settle,
                 "mam_fill": args.mam_fill, "mam_queries": args.mam_queries}
    for k, v in overrides.items():
        if v is not None:
            setattr(p, k, v)
    p.archive = args.archive
    p.gen_cpus = tuple(sorted(cpu_set(args.gen_cpus)))
    return p


def environment() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import uvloop  # type: ignore
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "generator_loop": loop,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def wait_for_quiet(max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until the whole machine is nearly idle
    before a measurement; returns the busy cores seen in the last 1 s sample.
    On a shared machine other tenants come and go; this avoids starting a
    window in the middle of someone else's burst where possible."""
    from bench.procstat import cpu_busy_seconds
    cpus = set(range(os.cpu_count() or 1))
    deadline = time.monotonic() + max_wait
    while True:
        b0, _ = cpu_busy_seconds(cpus)
        time.sleep(1.0)
        b1, _ = cpu_busy_seconds(cpus)
        busy = b1 - b0
        if busy < 0.15 or time.monotonic() >= deadline:
            return busy
        time.sleep(3.0)


def median_metrics(runs: list[dict]) -> dict:
    """Median of every numeric figure over the successful runs."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[-1].get("error", "no run succeeded") if runs else "not run"}
    out: dict = {"runs_ok": len(ok), "runs": len(runs)}
    for key in ok[0]:
        vals = [r[key] for r in ok if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        if len(vals) == len(ok):
            out[key] = statistics.median(vals)
            out[key + "_min"] = min(vals)
            out[key + "_max"] = max(vals)
        elif key in ok[0]:
            out[key] = ok[0][key]
    if any("error" in r for r in runs):
        out["failed_runs"] = [r["error"] for r in runs if "error" in r]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = build_params(args)
    server_names = [s.strip() for s in args.servers.split(",") if s.strip()]
    scenario_names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in server_names:
        if s not in SERVERS:
            sys.exit(f"unknown server {s!r} (known: {', '.join(SERVERS)})")
    for s in scenario_names:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    nofile = raise_nofile_limit()
    server_cpus = cpu_set(args.server_cpus)
    if set(params.gen_cpus) & server_cpus:
        print("warning: server and generator share CPUs; figures are not comparable", file=sys.stderr)
    if "idle" in scenario_names and params.idle_conns // params.workers + 100 > nofile:
        sys.exit(f"RLIMIT_NOFILE is {nofile}: too low for {params.idle_conns} idle connections")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="sakari-bench-"))
    root.mkdir(parents=True, exist_ok=True)

    def cleanup(*_a) -> None:
        stop_all()
        drop_databases()
        if not args.keep_workdir and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    servers = []
    missing_debs = []
    for name in server_names:
        srv = SERVERS[name](root, server_cpus, tls=args.tls)
        if name == "sakari":
            srv.modules = args.sakari_modules
            if srv.modules == "core":
                srv.relaxed = [*srv.relaxed, "`[modules] enabled` = the core of instant messaging only (roster, presence, "
                               "offline, disco, ping and the like: no archive, carbons or stream management), as the "
                               "other servers run here; group chat and the archive only where a scenario measures them"]
        if name == "sakari" and args.sakari_features is not None:
            srv.features = {f for f in args.sakari_features.split(",") if f}
        servers.append(srv)
        if not srv.is_installed():
            if name in ("prosody", "ejabberd"):
                missing_debs.append(name)
        if name == "prosody" and shutil.which("dpkg-query") and "ok installed" not in subprocess.run(
                ["dpkg-query", "-W", "-f", "${Status}", "lua-dbi-sqlite3"], capture_output=True, text=True).stdout:
            missing_debs.append("lua-dbi-sqlite3")  # Prosody's SQL archive (mam, --archive) on SQLite
    if missing_debs and not args.no_install:
        print(f"installing {', '.join(missing_debs)} from Debian packages", flush=True)
        install_debian_packages(missing_debs)
    for srv in servers:
        if srv.name == "sakari" and not srv.is_installed() and not args.no_install:
            srv.install()
            if args.sakari_features is None:
                srv.features = default_features()  # now that Sakari is there to ask

    raw = {"params": params.as_dict(), "environment": environment(), "servers": {},
           "server_cpus": sorted(server_cpus), "tls": args.tls, "runs": args.runs,
           "scenarios": scenario_names}
    results: dict[str, dict[str, list[dict]]] = {s.name: {sc: [] for sc in scenario_names} for s in servers}
    unsupported: dict[str, dict[str, str]] = {s.name: {} for s in servers}
    usable = []
    need = params.accounts_needed(scenario_names)
    for srv in servers:
        raw["servers"][srv.name] = {"version": srv.version(), "relaxed": srv.relaxed}
        try:
            t0 = time.monotonic()
            print(f"[{srv.name}] creating {need} accounts", flush=True)
            srv.ensure_accounts(need)
            print(f"[{srv.name}] accounts ready in {time.monotonic() - t0:.1f}s", flush=True)
            if set(scenario_names) & {"chat", "login", "idle", "muc", "muc-large"}:
                t0 = time.monotonic()
                srv.start()
                try:
                    failed = prime_scram_cache(srv, params, need)
                finally:
                    srv.stop()
                print(f"[{srv.name}] SCRAM key cache primed in {time.monotonic() - t0:.1f}s"
                      f"{f' ({failed} logins failed)' if failed else ''}", flush=True)
            usable.append(srv)
        except Exception as e:
            traceback.print_exc()
            for sc in scenario_names:
                results[srv.name][sc].append({"error": f"setup failed: {e}"})

    for run in range(1, args.runs + 1):
        for srv in usable:
            for sc_name in scenario_names:
                sc = SCENARIOS[sc_name]
                reason = sc.supported(srv)
                if reason:
                    unsupported[srv.name][sc_name] = reason
                    continue
                label = f"[{srv.name}] {sc_name} run {run}/{args.runs}"
                print(label, "...", flush=True)
                busy = wait_for_quiet(args.quiet_wait)
                try:
                    if getattr(sc, "starts_servers", False):
                        figures = sc.run(srv, params)  # it starts and stops servers of its own (s2s: a pair)
                    else:
                        features_for = getattr(sc, "server_features_for", None)  # features that depend on options
                        extra = features_for(params) if features_for else getattr(sc, "server_features", set())
                        srv.start(extra=extra)
                        try:
                            figures = sc.run(srv, params)
                        finally:
                            srv.stop()
                except (ScenarioError, Exception) as e:
                    if not isinstance(e, ScenarioError):
                        traceback.print_exc()
                    figures = {"error": f"{type(e).__name__}: {e}"}
                figures["run"] = run
                figures["machine_busy_before"] = round(busy, 2)
                results[srv.name][sc_name].append(figures)
                shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()
                         if k not in ("lat",)}
                print(label, shown, flush=True)
                # keep partial results on disk as we go
                _write_raw(args.out, raw, results, unsupported)
    medians = {s: {sc: median_metrics(runs) for sc, runs in per.items() if runs}
               for s, per in results.items()}
    raw_path = _write_raw(args.out, raw, results, unsupported, medians)
    md = write_report(args.out, raw, medians, unsupported, server_names, scenario_names)
    print(f"\nwrote {raw_path}, {md} and {args.out / 'chart.png'}")
    print(md.read_text())
    return 0


def _write_raw(out: Path, raw: dict, results: dict, unsupported: dict, medians: dict | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    doc = {**raw, "results": results, "unsupported": unsupported}
    if medians is not None:
        doc["medians"] = medians
    path = out / "results.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


if __name__ == "__main__":
    sys.exit(main())
