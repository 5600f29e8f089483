"""The report's Figure 3 claims (report §5) and the tests that judge them against a measured curve."""

from __future__ import annotations

REPORT_CLAIMS = {
    0.90: "vanishing: the norm falls below 1 and keeps falling",
    0.99: "near stable: the norm hovers around 10^1, no marked rise or fall over the run",
    1.20: "exploding: the norm grows, passing about 2x10^1 by the end",
}


def judge_claim(rho: float, summary: dict) -> dict:
    """The report's Figure 3 claim for ``rho`` (one of :data:`REPORT_CLAIMS`) against a :func:`curve_summary`.

    Tests, stated so they can fail: 0.90 -- end < 1 and trend falling; 0.99 -- every median value
    within [10^0.5, 10^1.5] (a factor sqrt(10) of 10^1) and trend flat; 1.20 -- end > 20 and trend
    rising. Returns dict(rho, claim, test, measured, verdict in {"agrees", "disagrees", "no data"}).
    """
    key = min(REPORT_CLAIMS, key=lambda r: abs(r - rho))
    if abs(key - rho) > 1e-9:
        raise ValueError(f"rho {rho} is not one of the report's {sorted(REPORT_CLAIMS)}")
    s = summary
    if s.get("end") is None:
        return {"rho": key, "claim": REPORT_CLAIMS[key], "test": "", "measured": "no finite step", "verdict": "no data"}
    if key == 0.90:
        test, ok = "end < 1 and trend falling", s["end"] < 1 and s["trend"] == "falling"
    elif key == 0.99:
        test = "median within [3.16, 31.6] at every step and trend flat"
        ok = s["min"] >= 10**0.5 and s["max"] <= 10**1.5 and s["trend"] == "flat"
    else:
        test, ok = "end > 20 and trend rising", s["end"] > 20 and s["trend"] == "rising"
    measured = (f"start {s['start']:.3g}, end {s['end']:.3g}, min {s['min']:.3g}, max {s['max']:.3g}; "
                f"{s['trend']} ({s['change_decades']:+.2f} decades first to last, {s['decades']:+.2f} fitted)")
    return {"rho": key, "claim": REPORT_CLAIMS[key], "test": test, "measured": measured,
            "verdict": "agrees" if ok else "disagrees"}
