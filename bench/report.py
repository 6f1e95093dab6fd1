"""The bench's results: rows, the ratios the targets are stated in, the Markdown table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wrk_runner import WrkResult


@dataclass
class Row:
    scenario: str
    route: str
    result: WrkResult
    # CPU time the serving process (and the gateway, on gateway rows) spent per request: a
    # figure that moves far less than req/s when the machine is shared.
    cpu_ms_per_request: float | None = None
    gateway_cpu_ms_per_request: float | None = None
    database_cpu_ms_per_request: float | None = None  # the service's PostgreSQL, all backends
    expected_errors: bool = False


@dataclass
class Report:
    machine: str
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _find(report: Report, scenario: str, route: str) -> WrkResult | None:
    for row in report.rows:
        if row.scenario == scenario and row.route == route:
            return row.result
    return None


def summarise(report: Report) -> None:
    list_direct = _find(report, "GET /api/tasks?limit=20", "direct")
    list_gateway = _find(report, "GET /api/tasks?limit=20", "gateway")
    reference = _find(report, "reference: bare ASGI + PyJWT + asyncpg", "direct")
    refresh = _find(report, "POST /auth/refresh", "direct")
    login = _find(report, "POST /auth/login", "direct")
    extra = report.extra
    if list_direct and reference:
        extra["list_direct_vs_reference"] = round(list_direct.rps / reference.rps, 2)
    if list_direct and list_gateway:
        extra["list_gateway_vs_direct"] = round(list_gateway.rps / list_direct.rps, 2)
    if refresh and list_direct:
        extra["refresh_vs_list"] = round(refresh.rps / list_direct.rps, 2)
    if login and "login_hash_bound" in extra:
        bound = extra["login_hash_bound"]["verifications_per_s"]
        extra["login_vs_hash_bound"] = round(login.rps / bound, 2)


def print_report(report: Report) -> None:
    print(f"\nMachine: {report.machine}")
    print(
        f"Settings: {report.settings['connections']} connections, {report.settings['duration']} s "
        f"per scenario after {report.settings['warmup']} s warm-up, "
        f"{report.settings['users']} users x {report.settings['tasks']} tasks, one uvicorn "
        "worker per service"
    )
    if report.settings.get("limits", "on") == "on":
        print(
            "Limits: on, as deployed: every app limit counted in Redis (the gateway's too), "
            "thresholds raised to 1,000,000 per window so that the bench's few accounts on one "
            "address measure the paths\n"
        )
    else:
        print("Limits: the app limits off (`--limits off`), the gateway's raised\n")
    print(
        "| scenario | route | req/s | p50 ms | p99 ms | errors "
        "| CPU ms/req: service | gateway | PostgreSQL |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")

    def ms(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    for row in report.rows:
        r = row.result
        print(
            f"| {row.scenario} | {row.route} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.errors} | {ms(row.cpu_ms_per_request)} | {ms(row.gateway_cpu_ms_per_request)} "
            f"| {ms(row.database_cpu_ms_per_request)} |"
        )
    print()
    for key, value in report.extra.items():
        print(f"- {key}: {value}")
