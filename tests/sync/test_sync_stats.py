"""The statistics report and the progress display."""

from __future__ import annotations

import io
import json

from pylamp.sync.stats import Progress, SyncStats, format_stats, stats_json


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_report_like_rsync_stats() -> None:
    st = SyncStats(
        address="h:1", files_scanned=10, total_size=1000, files_sent=2, literal_bytes=50,
        matched_bytes=150, bytes_sent=80, bytes_received=20, files_moved=1, files_deleted=3,
    )  # fmt: skip
    text = format_stats(st)
    for line in (
        "Number of files: 10",
        "Number of regular files transferred: 2",
        "Number of files moved: 1",
        "Number of deleted files: 3",
        "Literal data: 50 bytes",
        "Matched data: 150 bytes",
        "Total bytes sent: 80",
        "Total bytes received: 20",
        "speedup is 10.00",
    ):
        assert line in text
    st.errors.append(("bad/path", "refused"))
    assert "error: bad/path: refused" in format_stats(st)
    down = SyncStats(address="h:2", error="connection refused")
    assert "ERROR: connection refused" in format_stats(down)
    doc = json.loads(stats_json([st, down]))
    assert [r["ok"] for r in doc["receivers"]] == [False, False]
    assert doc["receivers"][0]["speedup"] == 10.0
    assert doc["receivers"][0]["errors"] == [{"path": "bad/path", "message": "refused"}]


def test_progress_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(stream=out)
    p.update("h:1", "a.html", 10)
    p.update("h:1", "b.html", 20)
    p.close()
    assert out.getvalue() == "h:1 a.html 10\nh:1 b.html 20\n"


def test_progress_bar_on_a_terminal() -> None:
    out = _Tty()
    p = Progress(4, stream=out)
    p.update("h:1", "a.html", 10)
    p.update("h:1", "b.html", 20)
    p.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[###############               ] 2/4" in text
