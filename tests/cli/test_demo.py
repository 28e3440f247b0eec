"""`conveyor demo`, run for real: a subprocess that starts real worker processes on SQLite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib
from email import message_from_bytes
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One demo run shared by the tests below: it takes a few seconds."""
    directory = tmp_path_factory.mktemp("demo") / "d"
    # The user's CONVEYOR_* settings must not leak in; the demo sets its own.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "demo", "--jobs", "12", "--workers", "2", "--dir", str(directory)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    return result, directory


def files(directory: Path, folder: str, suffix: str) -> list[Path]:
    found = sorted((directory / folder).glob(f"*{suffix}"))
    assert found, f"no {suffix} file in {directory / folder}"
    return found


def test_the_demo_finishes_every_job_and_sums_up(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, _ = demo
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Summary" in result.stdout
    assert re.search(r"jobs\s+12: 11 completed, 1 failed", result.stdout), result.stdout
    assert "Every job finished." in result.stdout
    retries = re.search(r"retries\s+(\d+)", result.stdout)
    assert retries is not None and int(retries.group(1)) >= 1  # the flaky mail server was retried


def test_the_negative_invoice_is_a_permanent_failure(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, _ = demo
    failure = re.search(r"demo\.render_invoice \(job \w+, (\d+) attempt\(s\)\): ValueError: order #4999 "
                        r"has a negative amount", result.stdout)
    assert failure is not None, result.stdout
    assert failure.group(1) == "1"  # ValueError is not in retry_on: no second attempt


def test_emails_are_rfc_5322_messages(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, directory = demo
    for path in files(directory, "outbox", ".eml"):
        message = message_from_bytes(path.read_bytes())
        assert message["To"] and message["From"] and message["Subject"].startswith("Welcome")
        assert message["Message-ID"] and message["Date"]


def test_thumbnails_are_png_images(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, directory = demo
    for path in files(directory, "thumbnails", ".png"):
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        idat_length = int.from_bytes(data[33:37], "big")
        pixels = zlib.decompress(data[41:41 + idat_length])
        assert len(pixels) == height * (1 + 3 * width)  # one filter byte and RGB per pixel per row


def test_invoices_are_pdfs_whose_xref_points_at_each_object(
        demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, directory = demo
    for path in files(directory, "invoices", ".pdf"):
        data = path.read_bytes()
        assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
        xref_at = int(data.rsplit(b"startxref", 1)[1].split()[0])
        lines = data[xref_at:].split(b"\n")
        assert lines[0] == b"xref"
        count = int(lines[1].split()[1])
        for number in range(1, count):
            offset = int(lines[2 + number][:10])
            assert data[offset:].startswith(b"%d 0 obj" % number)
