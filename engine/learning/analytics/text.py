"""The report as aligned plain text: what `pulseguard report` prints above its charts and the
console's Analytics screen shows."""

from __future__ import annotations

from typing import Any

from engine.core.durations import format_span as hd
from engine.learning.analytics.report import trend_arrow


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned plain text (what `pulseguard report` prints above its charts)."""
    p = report["period"]
    out = [f"Incident report {p['label']} ({p['timezone']})"]
    trends = report.get("trends")
    if trends:
        out.append(f"compared with {report['previous_period']['label']}")
    out.append("")
    freq = ""
    ttr = ""
    if trends:
        f, r = trends["incident_frequency"], trends["resolution_time"]
        pct = f" {f['change_percent']:+.1f}%" if f["change_percent"] is not None else ""
        freq = f"  {trend_arrow(f['direction'])} {f['direction']}: {f['current_per_day']:.2f}/day vs {f['previous_per_day']:.2f}/day{pct}"
        pct = f" {r['change_percent']:+.1f}%" if r["change_percent"] is not None else ""
        if r["direction"] == "no data":
            ttr = "  (nothing resolved to compare with)" if r["current_seconds"] is not None else ""
        else:
            ttr = f"  {trend_arrow(r['direction'])} {r['direction']} vs {hd(r['previous_seconds'])}{pct}"
    fp_rate = f" ({report['false_positive_rate']:.1f}%)" if report["false_positive_rate"] is not None else ""
    rows = [
        ("Incidents", f"{report['total_incidents']}{freq}"),
        ("False positives", f"{report['false_positives']}{fp_rate}"),
        ("Resolved", str(report["resolved"])),
        ("Avg resolution", f"{hd(report['average_resolution_seconds'])}{ttr}"),
    ]
    out += [f"  {k:<16}{v}" for k, v in rows]
    out += ["", "By severity", f"  {'SEVERITY':<10}{'INCIDENTS':>10}{'FALSE POS':>10}{'RESOLVED':>10}{'MTTR':>10}{'MTTA':>10}{'MTTD':>10}"]
    for sev, s in report["by_severity"].items():
        out.append(
            f"  {sev:<10}{s['incidents']:>10}{s['false_positives']:>10}{s['resolved']:>10}"
            f"{hd(s['mttr_seconds']):>10}{hd(s['mtta_seconds']):>10}{hd(s['mttd_seconds']):>10}"
        )
    k = report["kpis"]
    prevention = (
        # Of the incidents monitoring found, those fixed before a public update ("0 of 2 detected
        # by monitoring" read as if monitoring had found none).
        f"{k['prevention_rate']:.1f}% ({k['prevented']} of {k['monitoring_detected']} fixed before going public)"
        if k["prevention_rate"] is not None
        else "- (no incident detected by monitoring)"
    )

    def rated(mean: float | None, n: int) -> str:
        return f"{mean:.2f}/5 ({n} rating{'' if n == 1 else 's'})" if mean is not None else "- (no ratings)"

    cust = rated(k["customer_satisfaction"], k["customer_ratings"])
    team = rated(k["team_satisfaction"], k["team_ratings"])
    out += ["", "KPIs"]
    out += [
        f"  {a:<26}{b}"
        for a, b in (
            ("mean time to detect", hd(k["mttd_seconds"])),
            ("mean time to acknowledge", hd(k["mtta_seconds"])),
            ("mean time to resolve", hd(k["mttr_seconds"])),
            ("incident prevention rate", prevention),
            ("customer satisfaction", cust),
            ("team satisfaction", team),
        )
    ]
    out += ["", "Root causes"]
    if report["root_causes"]:
        width = max(len(c["category"]) for c in report["root_causes"])
        for c in report["root_causes"]:
            bar = "#" * max(1, round((c["percent"] or 0) / 5))
            out.append(f"  {c['category']:<{width}}  {c['count']:>6}  {c['percent']:>5.1f}%  {bar}")
    else:
        out.append("  (no resolved incidents)")
    return "\n".join(out)
