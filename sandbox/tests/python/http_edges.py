"""Edges of the SandboxFusion-compatible endpoint, with `requests` as its clients use it.

Usage: http_edges.py BASE_URL. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import requests


def run(base: str, body: dict[str, Any]) -> Any:
    return requests.post(f"{base}/run_code", json=body, timeout=60).json()


def main() -> None:
    base = sys.argv[1]
    result = {
        "ping": requests.get(f"{base}/v1/ping", timeout=10).json(),
        "cpp": run(base, {"code": "int main() {}", "language": "cpp"}),
        "bad_json": requests.post(f"{base}/run_code", data=b"{", timeout=10).status_code,
        "not_found": requests.get(f"{base}/nothing", timeout=10).status_code,
        "unknown_language": requests.post(
            f"{base}/run_code", json={"code": "1", "language": "cobol"}, timeout=10
        ).status_code,
        "missing_code": requests.post(
            f"{base}/run_code", json={"language": "python"}, timeout=10
        ).json(),
        "exit_3": run(base, {"code": "import sys\nsys.exit(3)", "language": "python"}),
        "stdin": run(
            base,
            {
                "code": "print(sum(map(int, input().split())))",
                "stdin": "1 2 3\n",
                "language": "python",
            },
        ),
    }
    # /metrics, read by Prometheus's own parser: every family, the run above counted.
    from prometheus_client.parser import text_string_to_metric_families

    metrics = requests.get(f"{base}/metrics", timeout=10)
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    tasks = {
        s.labels.get("verdict"): s.value
        for s in families["azr_sandbox_tasks"].samples
        if s.name == "azr_sandbox_tasks_total"
    }
    result["metrics"] = {
        "content_type": metrics.headers.get("content-type", ""),
        "families": sorted(families),
        "tasks_ok": tasks.get("ok", 0),
        "tasks_error": tasks.get("error", 0),
        "duration_count": next(
            s.value
            for s in families["azr_sandbox_request_duration_seconds"].samples
            if s.name == "azr_sandbox_request_duration_seconds_count"
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
