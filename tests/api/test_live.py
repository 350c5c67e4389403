"""The API as it is deployed: `bespoke up` serves it (its address in the banner),
`bespoke api` serves it alone against the same Temporal, both real uvicorn on
free loopback ports; a token made by `bespoke principal add` works on both, and
the OpenAPI schema and docs are served."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.processes import bespoke_command, clean_env, free_port


def _wait_for(proc: subprocess.Popen[str], log: Path, pattern: str, timeout: float = 90) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        assert proc.poll() is None, f"exited {proc.returncode}: {log.with_suffix('.err').read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} in {log.read_text()!r}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bespoke_up_serves_the_api_and_bespoke_api_serves_it_alone(tmp_path: Path) -> None:
    env = clean_env(BESPOKE_HOME=str(tmp_path), TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
                    BESPOKE_UI_PORT=str(free_port()), BESPOKE_API_BIND="127.0.0.1:0")
    procs = []
    try:
        with (tmp_path / "up.out").open("w") as out, (tmp_path / "up.err").open("w") as err:
            procs.append(subprocess.Popen([*bespoke_command(), "up", "--headless"], env=env, stdout=out,
                                          stderr=err, text=True))
        up_url = _wait_for(procs[0], tmp_path / "up.out", r"HTTP API:\s+(http://127\.0\.0\.1:\d+)").group(1)
        _wait_for(procs[0], tmp_path / "up.out", "Press Ctrl-C")
        issued = subprocess.run([*bespoke_command(), "principal", "add", "seller:acme", "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert issued.returncode == 0, issued.stderr
        token = json.loads(issued.stdout)["token"]
        api_port = free_port()
        with (tmp_path / "api.out").open("w") as out, (tmp_path / "api.err").open("w") as err:
            procs.append(subprocess.Popen([*bespoke_command(), "api"], env={**env, "BESPOKE_API_BIND":
                                          f"127.0.0.1:{api_port}"}, stdout=out, stderr=err, text=True))
        _wait_for(procs[1], tmp_path / "api.out", "HTTP API listening")
        auth = {"Authorization": f"Bearer {token}"}
        for url in (up_url, f"http://127.0.0.1:{api_port}"):
            with httpx.Client(base_url=url, timeout=30) as http:
                assert http.get("/openapi.json").json()["info"]["title"] == "bespoke"
                assert "swagger" in http.get("/docs").text.lower()
                assert http.get("/api/policies").status_code == 200  # public
                assert http.get("/api/me").status_code == 401
                assert http.get("/api/me", headers=auth).json()["principal"] == "seller:acme"
                created = http.post("/api/orders", json={"buyer": "alice", "price": 100_000}, headers=auth)
                assert created.status_code == 201, created.text
                oid = created.json()["order_id"]
                view = http.get(f"/api/orders/{oid}", headers=auth)
                assert view.status_code == 200 and view.json()["buyer_consented"] is False
                assert http.get("/", headers={"Accept": "text/html"}).status_code == 200  # the portal too
    finally:
        for proc in reversed(procs):
            _stop(proc)
    for name in ("up", "api"):
        assert "Traceback" not in (tmp_path / f"{name}.err").read_text()
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
