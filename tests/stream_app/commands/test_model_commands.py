"""The CLI commands of the modelling core, run in-process through ``stream_app.cli.main``."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stream_app.cli import main
from stream_app.events.validate import validate_event

SAMPLE = Path(__file__).resolve().parents[3] / "models" / "catalogs" / "b2b_saas.yaml"


def test_catalog_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "validate", str(SAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out


def test_catalog_validate_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "personas:\n"
        "  - {id: a, name: A}\n"
        "  - {id: a, name: B}\n"
        "linking_rules:\n"
        "  - {persona: ghost, when: {colour: [red]}, weight: 1}\n"
    )
    assert main(["catalog", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: personas[1].id: duplicate persona id 'a'" in err
    assert f"{bad}:5: linking_rules[0].persona: unknown persona 'ghost'" in err
    assert "unknown feature 'colour'" in err
    assert "3 problem(s)" in err


def test_catalog_validate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "validate", "/nonexistent/catalog.yaml"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_simulate_jsonl_is_valid_native_events(tmp_path: Path) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    args = ["simulate", "--visitors", "60", "--labelled-fraction", "0.5", "--seed", "3"]
    assert main([*args, "--out", str(out), "--truth", str(truth)]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    personas = {row["visitor_id"]: row["persona"] for row in csv.DictReader(truth.open())}
    assert len(personas) == 60
    assert {e["visitor_id"] for e in events} == set(personas)
    for event in events:
        validate_event(event, personas=set(personas.values()))  # raises on any field error
        if event["type"] == "label":
            assert event["persona"] == personas[event["visitor_id"]]
    assert {e["type"] for e in events} >= {"page_view", "touchpoint", "label"}


def test_simulate_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--labelled-fraction", "1.5"]) == 2
    assert "labelled-fraction" in capsys.readouterr().err


class _Collector(BaseHTTPRequestHandler):
    batches: list[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/events"
        type(self).batches.append(body["events"])
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"accepted": len(body["events"]), "rejected": []}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.batches = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_simulate_http_posts_batches_of_at_most_500(collector: str) -> None:
    args = ["simulate", "--visitors", "150", "--seed", "4", "--sink", "http", "--url", collector]
    assert main(args) == 0
    batches = _Collector.batches
    assert len(batches) >= 2
    assert all(0 < len(b) <= 500 for b in batches)
    assert len({e["event_id"] for b in batches for e in b}) == sum(len(b) for b in batches)


def test_personas_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "labelled.jsonl"
    args = ["simulate", "--visitors", "400", "--labelled-fraction", "1", "--seed", "5"]
    assert main([*args, "--out", str(sample)]) == 0
    n = len(sample.read_text().splitlines())
    ghost = {"visitor_id": "x", "ts": "2026-11-20T10:00:00Z", "type": "label", "persona": "wizard"}
    with sample.open("a") as f:
        f.write("{not json\n" + json.dumps(ghost) + "\n")
    capsys.readouterr()
    assert main(["personas", "validate", str(sample), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["labelled_visitors"] == 400
    assert report["trained_on"] + report["held_out"] == 400
    trained, rules = report["trained"], report["rules_only"]
    assert trained["accuracy"] > rules["accuracy"] > report["uniform"]["accuracy"]
    assert set(trained["confusion"]) == set(trained["per_persona"])
    assert trained["calibration"] and trained["separation"]
    assert f"labelled.jsonl:{n + 1}: not JSON" in captured.err
    assert f"labelled.jsonl:{n + 2}: label names unknown persona 'wizard'" in captured.err


def test_personas_validate_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "labelled.jsonl"
    assert (
        main(["simulate", "--visitors", "50", "--labelled-fraction", "1", "--out", str(sample)])
        == 0
    )
    capsys.readouterr()
    assert main(["personas", "validate", str(sample)]) == 0
    out = capsys.readouterr().out
    for heading in ("precision", "confusion", "calibration", "separation"):
        assert heading in out


def test_map_crm_skips_bad_rows_with_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = tmp_path / "customers.csv", tmp_path / "assignments.csv"
    src.write_text(
        "id,country,pages,touchpoints,last_seen\n"
        "c1,DE,/docs;/api,webinar:attend,2026-10-01T10:00:00Z\n"
        ",US,/pricing,,\n"
        'c3,US,"/pricing;\n/compare",form:submit,\n'
        "c4,US,/pricing,pigeon:post,\n"
        "c5,GB,/help,,yesterday\n"
        "c6,GB,/help,email:open,\n"
    )
    assert main(["map-crm", str(src), "--out", str(dst)]) == 0
    err = capsys.readouterr().err
    assert f"{src}:3: skipped: id: missing customer id" in err
    assert f"{src}:6: skipped: touchpoints:" in err
    assert f"{src}:7: skipped: last_seen:" in err
    assert "mapped 3 rows, skipped 3 bad rows" in err
    rows = list(csv.DictReader(dst.open()))
    assert [r["id"] for r in rows] == ["c1", "c3", "c6"]
    assert rows[0]["top_persona"] == "tech_evaluator"
    for row in rows:
        probs = [float(v) for k, v in row.items() if k.startswith("p_")]
        assert len(probs) == 5 and abs(sum(probs) - 1) < 1e-5
        assert float(row["probability"]) == max(probs)


def test_map_crm_needs_an_id_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "c.csv"
    src.write_text("name,country\nx,DE\n")
    assert main(["map-crm", str(src), "--out", str(tmp_path / "o.csv")]) == 1
    assert "'id'" in capsys.readouterr().err
