#!/usr/bin/env python3
"""Prints the `make bench` table from one run's raw results, and saves it beside them.

Usage: bench/report.py bench/results/<run>   (writes summary.json and table.md into that folder)

Reads what scripts/bench.sh left there: one oha JSON per scenario (`<scenario>.json`),
`limit_redis.csv` (redis-benchmark --csv), `limit_pgbench.txt` (pgbench's report) and `meta.env`
(machine, settings, memory). Each scenario is shown with its latency percentiles, the count of
responses that were not 2xx (plus transport errors), its ratio to the reference the issue sets a
target against, and its ratio to the physical limit measured in the same run.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

# scenario -> (reference scenario, minimum ratio to it), from the targets.
TARGETS = {
    "health": ("bare_hyper", 0.95),
    "get_hot": ("health", 0.80),
    "get_cold": ("health", 0.33),
    "list": ("health", 0.20),
    "create": ("health", 0.15),
}
# scenario -> the physical limit it is measured against.
LIMITS = {
    "get_hot": "redis",
    "get_cold": "pgbench",
    "list": "pgbench_list",
    "create": "pgbench_insert",
}
LIMIT_LABELS = {
    "redis": "redis GET",
    "pgbench": "pgbench -S",
    "pgbench_list": "pgbench list",
    "pgbench_insert": "pgbench insert",
}
P99_CEILING_MS = 10.0
P99_SCENARIOS = ("health", "get_hot")
IDLE_RSS_MAX_MIB = 10
PEAK_RSS_MAX_MIB = 32
BINARY_MAX_MIB = 6
ORDER = ["bare_hyper", "health", "get_hot", "get_cold", "list", "create", "mixed"]
DESCRIPTIONS = {
    "bare_hyper": "GET /health on a bare hyper server (ceiling)",
    "health": "GET /health",
    "get_hot": "GET /v1/users/{id}, hot ids, cache warm",
    "get_cold": "GET /v1/users/{id}, all ids, cache off",
    "list": "GET /v1/users?limit=20",
    "create": "POST /v1/users",
    "mixed": "reads + writes at once",
    "mixed_reads": "GET /v1/users/{id}, hot ids",
    "mixed_writes": "POST /v1/users",
}


def read_meta(folder: Path) -> dict[str, str]:
    meta: dict[str, str] = {}
    path = folder / "meta.env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                meta[key.strip()] = value.strip()
    return meta


def read_oha(path: Path) -> dict | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = json.loads(path.read_text())
    summary = data.get("summary", {})
    percentiles = data.get("latencyPercentiles", {})
    statuses = {int(code): count for code, count in (data.get("statusCodeDistribution") or {}).items()}
    errors = sum((data.get("errorDistribution") or {}).values())
    responses = sum(statuses.values())
    non_2xx = sum(count for code, count in statuses.items() if not 200 <= code < 300)

    def ms(key: str) -> float | None:
        value = percentiles.get(key)
        return None if value is None else value * 1000.0

    return {
        "rps": summary.get("requestsPerSec") or 0.0,
        "seconds": summary.get("total"),
        "responses": responses,
        "p50_ms": ms("p50"),
        "p99_ms": ms("p99"),
        "p99_9_ms": ms("p99.9"),
        "non_2xx": non_2xx,
        "errors": errors,
        "statuses": statuses,
        "error_kinds": data.get("errorDistribution") or {},
    }


def read_cpu(path: Path) -> dict | None:
    """Milliseconds of CPU per process group over one scenario, as scripts/bench.sh wrote them."""
    if not path.exists():
        return None
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key and value.strip().lstrip("-").isdigit():
            values[key.strip()] = int(value)
    return values


def read_redis(folder: Path) -> dict | None:
    path = folder / "limit_redis.csv"
    if not path.exists():
        return None
    rows = list(csv.DictReader(line for line in path.read_text().splitlines() if line.strip()))
    for row in rows:
        if row.get("test", "").upper().startswith("GET"):
            return {
                "rps": float(row["rps"]),
                "p50_ms": float(row.get("p50_latency_ms") or "nan"),
                "p99_ms": float(row.get("p99_latency_ms") or "nan"),
            }
    return None


def read_pgbench(folder: Path, name: str = "limit_pgbench.txt") -> dict | None:
    path = folder / name
    if not path.exists():
        return None
    text = path.read_text()
    tps = re.search(r"^tps = ([0-9.]+)", text, re.MULTILINE)
    latency = re.search(r"^latency average = ([0-9.]+) ms", text, re.MULTILINE)
    if not tps:
        return None
    return {"rps": float(tps.group(1)), "avg_ms": float(latency.group(1)) if latency else None}


def mib(kib: str | None) -> float | None:
    if kib in (None, "", "null"):
        return None
    return int(kib) / 1024.0


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def build(folder: Path) -> dict:
    meta = read_meta(folder)
    scenarios = {}
    for name in ORDER[:-1] + ["mixed_reads", "mixed_writes"]:
        result = read_oha(folder / f"{name}.json")
        if result is not None:
            scenarios[name] = result
    if "mixed_reads" in scenarios and "mixed_writes" in scenarios:
        reads, writes = scenarios["mixed_reads"], scenarios["mixed_writes"]
        total = reads["rps"] + writes["rps"]
        scenarios["mixed"] = {
            "rps": total,
            "responses": reads["responses"] + writes["responses"],
            "p50_ms": None,
            "p99_ms": max(reads["p99_ms"] or 0, writes["p99_ms"] or 0),
            "p99_9_ms": max(reads["p99_9_ms"] or 0, writes["p99_9_ms"] or 0),
            "non_2xx": reads["non_2xx"] + writes["non_2xx"],
            "errors": reads["errors"] + writes["errors"],
            "write_share": writes["rps"] / total if total else None,
        }
    limits = {
        "redis": read_redis(folder),
        "pgbench": read_pgbench(folder),
        "pgbench_list": read_pgbench(folder, "limit_pgbench_list.txt"),
        "pgbench_insert": read_pgbench(folder, "limit_pgbench_insert.txt"),
    }
    for name in ORDER:
        cpu = read_cpu(folder / f"{name}.cpu")
        if cpu and name in scenarios:
            scenarios[name]["cpu"] = cpu

    rows = []
    for name in ORDER + ["mixed_reads", "mixed_writes"]:
        result = scenarios.get(name)
        if result is None:
            continue
        row = {"scenario": name, "measures": DESCRIPTIONS[name], **result}
        if name in TARGETS:
            reference, minimum = TARGETS[name]
            base = scenarios.get(reference)
            if base and base["rps"]:
                row["ratio"] = result["rps"] / base["rps"]
                row["ratio_to"] = reference
                row["target"] = minimum
                row["met"] = row["ratio"] >= minimum
        elif name == "mixed" and scenarios.get("health", {}).get("rps"):
            row["ratio"] = result["rps"] / scenarios["health"]["rps"]
            row["ratio_to"] = "health"
        if name in LIMITS and limits.get(LIMITS[name]):
            row["limit"] = LIMITS[name]
            row["of_limit"] = result["rps"] / limits[LIMITS[name]]["rps"]
        rows.append(row)

    checks = []
    for row in rows:
        if "target" in row:
            checks.append(
                {
                    "what": f"{row['scenario']} ≥ {row['target']:.2f} × {row['ratio_to']}",
                    "value": f"{row['ratio']:.3f}",
                    "met": row["met"],
                }
            )
    for name in P99_SCENARIOS:
        if name in scenarios and scenarios[name]["p99_ms"] is not None:
            p99 = scenarios[name]["p99_ms"]
            checks.append(
                {"what": f"{name} p99 < {P99_CEILING_MS:.0f} ms", "value": f"{p99:.2f} ms", "met": p99 < P99_CEILING_MS}
            )
    bad = sum(row["non_2xx"] + row["errors"] for row in rows if row["scenario"] not in ("mixed",))
    checks.append({"what": "no non-2xx responses or errors", "value": str(bad), "met": bad == 0})
    memory = {
        "idle_mib": mib(meta.get("idle_rss_kib")),
        "peak_mib": mib(meta.get("peak_rss_kib")),
        "end_mib": mib(meta.get("end_rss_kib")),
        "cold_peak_mib": mib(meta.get("cold_peak_rss_kib")),
        "binary_mib": int(meta["binary_bytes"]) / 1048576.0 if meta.get("binary_bytes") else None,
    }
    for key, limit, label in (
        ("idle_mib", IDLE_RSS_MAX_MIB, "idle RSS"),
        ("peak_mib", PEAK_RSS_MAX_MIB, "peak RSS"),
        ("binary_mib", BINARY_MAX_MIB, "static binary"),
    ):
        if memory[key] is not None:
            checks.append(
                {"what": f"{label} ≤ {limit} MiB", "value": f"{memory[key]:.1f} MiB", "met": memory[key] <= limit}
            )
    return {"meta": meta, "rows": rows, "limits": limits, "memory": memory, "checks": checks}


def table_lines(report: dict, markdown: bool) -> list[str]:
    header = ["scenario", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "non-2xx", "ratio (target)", "", "of physical limit"]
    body = []
    for row in report["rows"]:
        name = row["scenario"]
        label = {"mixed_reads": "  └ reads", "mixed_writes": "  └ writes"}.get(name, name)
        if name == "mixed_reads":
            label = "  ├ reads"
        bad = row["non_2xx"] + row["errors"]
        ratio = ""
        verdict = ""
        if "ratio" in row:
            ratio = f"{row['ratio']:.3f} × {row['ratio_to']}"
            if "target" in row:
                ratio += f" (≥ {row['target']:.2f})"
                verdict = "ok" if row["met"] else "SHORT"
        elif name == "bare_hyper":
            ratio = "ceiling"
        elif name == "mixed" and row.get("write_share") is not None:
            ratio = f"{row['write_share'] * 100:.0f}% writes"
        if name == "mixed" and "ratio" in row:
            ratio = f"{row['ratio']:.2f} × health, {row['write_share'] * 100:.1f}% writes"
        limit = ""
        if "of_limit" in row:
            limit_name = LIMIT_LABELS[row["limit"]]
            limit = f"{row['of_limit']:.2f} × {limit_name}"
        body.append(
            [
                label,
                fmt_rate(row["rps"]),
                fmt_ms(row["p50_ms"]),
                fmt_ms(row["p99_ms"]),
                fmt_ms(row["p99_9_ms"]),
                f"{bad:,}",
                ratio,
                verdict,
                limit,
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(h or "met" for h in header) + " |"]
        lines.append("|" + "|".join([" --- "] + [" ---: "] * 5 + [" --- "] * 3) + "|")
        for cells in body:
            lines.append(
                "| " + " | ".join(cell.strip().replace("└", "").replace("├", "") or " " for cell in cells) + " |"
            )
        return lines
    widths = [max(len(header[i]), *(len(cells[i]) for cells in body)) for i in range(len(header))]
    right = {1, 2, 3, 4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    lines = [line(header), line(["─" * w for w in widths])]
    lines.extend(line(cells) for cells in body)
    return lines


CPU_PARTS = ("service", "redis", "postgres", "oha")


def cpu_rows(report: dict) -> list[list[str]]:
    """CPU per request, in microseconds, of each process group; `other` is the rest of the machine."""
    rows = []
    for row in report["rows"]:
        cpu = row.get("cpu")
        requests = row["responses"] + row["errors"]
        if not cpu or not requests:
            continue
        cells = [row["scenario"]]
        known = 0
        for part in CPU_PARTS:
            value = cpu.get(f"{part}_ms")
            if value is None:
                cells.append("—")
            else:
                known += value
                cells.append(f"{value * 1000 / requests:.1f}")
        busy, idle = cpu.get("machine_busy_ms", 0), cpu.get("machine_idle_ms", 0)
        cells.append(f"{max(busy - known, 0) * 1000 / requests:.1f}")
        cells.append(f"{busy * 1000 / requests:.1f}")
        cells.append(f"{100 * busy / (busy + idle):.0f}%" if busy + idle else "—")
        rows.append(cells)
    return rows


def cpu_lines(report: dict, markdown: bool) -> list[str]:
    header = ["scenario", "service", "redis", "postgres", "oha", "other", "total", "machine busy"]
    body = cpu_rows(report)
    if not body:
        return []
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * 7) + "|"]
        lines.extend("| " + " | ".join(cells) + " |" for cells in body)
        return lines
    widths = [max(len(header[i]), *(len(cells[i]) for cells in body)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells))

    return [line(header), line(["─" * w for w in widths])] + [line(cells) for cells in body]


def summary_lines(report: dict) -> list[str]:
    meta, limits, memory = report["meta"], report["limits"], report["memory"]
    lines = []
    redis, pgbench = limits.get("redis"), limits.get("pgbench")
    parts = []
    if redis:
        parts.append(
            f"redis-benchmark -t get -c {meta.get('connections', '?')}: {fmt_rate(redis['rps'])} req/s "
            f"(p50 {fmt_ms(redis['p50_ms'])} ms, p99 {fmt_ms(redis['p99_ms'])} ms)"
        )
    if pgbench:
        avg = f", avg {pgbench['avg_ms']:.2f} ms" if pgbench.get("avg_ms") is not None else ""
        parts.append(
            f"pgbench -S -M prepared -s 1 -c {meta.get('pg_clients', '?')}: {fmt_rate(pgbench['rps'])} tps{avg}"
        )
    for key, what in (("pgbench_list", "the list query"), ("pgbench_insert", "the insert")):
        limit = limits.get(key)
        if limit:
            avg = f", avg {limit['avg_ms']:.2f} ms" if limit.get("avg_ms") is not None else ""
            parts.append(f"pgbench -M prepared {what}: {fmt_rate(limit['rps'])} tps{avg}")
    if parts:
        lines.append("physical limits (same machine, same run, no HTTP in the way):")
        lines.extend(f"  {part}" for part in parts)

    def m(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f} MiB"

    lines.append(
        f"memory (VmRSS/VmHWM): idle {m(memory['idle_mib'])}, peak {m(memory['peak_mib'])}, "
        f"after the run {m(memory['end_mib'])}; cache-off instance peak {m(memory['cold_peak_mib'])}; "
        f"static binary {m(memory['binary_mib'])}"
    )
    return lines


def checks_lines(report: dict) -> list[str]:
    lines = []
    for check in report["checks"]:
        mark = "ok   " if check["met"] else "SHORT"
        lines.append(f"  {mark} {check['what']}: {check['value']}")
    return lines


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(sys.argv[1])
    report = build(folder)
    meta = report["meta"]
    mem_gib = int(meta.get("mem_total_kib", "0")) / 1048576.0
    title = (
        f"gravity-bff bench · {meta.get('date', '?')} · {meta.get('nproc', '?')} cores {meta.get('cpu', '')} · "
        f"{mem_gib:.1f} GiB · {meta.get('duration_s', '?')} s per scenario at {meta.get('connections', '?')} connections · "
        f"{meta.get('oha', 'oha')}"
    )
    load = f"load average before {meta.get('load_before', '?')}, after {meta.get('load_after', '?')}"
    terminal = [title, load, ""] + table_lines(report, markdown=False) + [""] + summary_lines(report)
    cpu = cpu_lines(report, markdown=False)
    if cpu:
        terminal += [
            "",
            "CPU per request, µs (from /proc; `other` = the rest of the machine, other agents included):",
        ] + cpu
    terminal += ["", "targets:"] + checks_lines(report)
    print("\n".join(terminal))
    markdown = [f"_{title}; {load}_", ""] + table_lines(report, markdown=True) + [""]
    markdown += [f"  - {line.strip()}" if line.startswith("  ") else f"- {line}" for line in summary_lines(report)]
    cpu = cpu_lines(report, markdown=True)
    if cpu:
        markdown += ["", "CPU per request, µs (`other` is the rest of the machine):", ""] + cpu
    markdown += ["", "Targets:", ""] + [f"- {line.strip()}" for line in checks_lines(report)]
    (folder / "table.md").write_text("\n".join(markdown) + "\n")
    (folder / "summary.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nraw JSON, summary.json and table.md in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
