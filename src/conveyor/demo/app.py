"""A small shop's background work: the tasks `conveyor demo` enqueues and its workers run.

Each task writes a real file a user can open (an .eml, a .png, a .pdf) into $CONVEYOR_DEMO_DIR,
using only the standard library, and sleeps a little on the way so the live display has
something to show. Some inputs fail on purpose: flaky mail servers (retried with backoff) and
an invoice with a negative amount (a permanent failure, never retried).
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
import zlib
from contextlib import suppress
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from conveyor import Conveyor, NoCurrentJob, current_job

# No URL here: `conveyor demo` sets $CONVEYOR_URL before importing this module and before
# starting the workers, so producer and workers share one fresh store.
app = Conveyor()

SHOP = "Conveyor Coffee Co."
SENDER = "hello@conveyor-coffee.example"
# Recipient domain -> how many first attempts fail, to show retries with exponential backoff.
FLAKY_DOMAINS = {"flaky-mail.example": 1, "overloaded-mail.example": 2}
OUTBOX, THUMBNAILS, INVOICES = "outbox", "thumbnails", "invoices"


def output_dir(folder: str) -> Path:
    """The demo's output folder, made on first use (workers may start before any file exists)."""
    root = os.environ.get("CONVEYOR_DEMO_DIR")
    if not root:
        raise RuntimeError("CONVEYOR_DEMO_DIR is not set; run these tasks through `conveyor demo`")
    path = Path(root) / folder
    path.mkdir(parents=True, exist_ok=True)
    return path


def attempt_number() -> int:
    """The running attempt, or 1 when the task is called inline (a plain call has no job)."""
    try:
        return current_job().attempt
    except NoCurrentJob:
        return 1


def report(progress: float, message: str) -> None:
    """Progress for the live display; a plain inline call has no job to report on, so it skips."""
    with suppress(NoCurrentJob):
        current_job().set_progress(progress, message=message)


def write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target, then rename: a reader never sees half a file, and a retried
    attempt simply replaces what an earlier one left."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


# -- emails ---------------------------------------------------------------------------------


def welcome_message(to: str, username: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{SHOP} <{SENDER}>"
    message["To"] = to
    message["Subject"] = f"Welcome to {SHOP}, {username}!"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="conveyor-coffee.example")
    message.set_content(
        f"Hi {username},\n\n"
        f"Thanks for signing up at {SHOP}\n"
        "Your first bag of beans ships free: use the code WELCOME at checkout.\n\n"
        "-- The Conveyor Coffee team\n"
    )
    return message


@app.task(name="demo.send_welcome_email", max_retries=3, retry_delay=0.2, retry_backoff="exponential")
def send_welcome_email(to: str, username: str) -> dict[str, Any]:
    """Write the welcome email to the outbox, as an SMTP relay would receive it."""
    time.sleep(random.uniform(0.03, 0.08))  # the SMTP round trip
    failures = FLAKY_DOMAINS.get(to.rpartition("@")[2], 0)
    if attempt_number() <= failures:
        raise ConnectionError("SMTP server busy")
    path = output_dir(OUTBOX) / f"welcome-{username}.eml"
    data = bytes(welcome_message(to, username))
    write_atomically(path, data)
    return {"to": to, "file": str(path), "bytes": len(data), "attempt": attempt_number()}


# -- thumbnails -----------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG: signature, IHDR, one IDAT of the filtered rows, IEND."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # depth 8, RGB, no interlace
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 (None) on every row
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def thumbnail_rows(image_id: int, size: int) -> list[bytes]:
    """A diagonal gradient in colours picked from the image id, with a checker pattern on top,
    so every product gets a thumbnail of its own."""
    rng = random.Random(image_id)
    start = [rng.randrange(256) for _ in range(3)]
    end = [rng.randrange(256) for _ in range(3)]
    cell = max(1, size // 8)
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            t = (x + y) / max(1, 2 * (size - 1))
            shade = 0.85 if (x // cell + y // cell) % 2 else 1.0
            row.extend(int((a + (b - a) * t) * shade) for a, b in zip(start, end, strict=True))
        rows.append(bytes(row))
    return rows


@app.task(name="demo.make_thumbnail", max_retries=2, retry_delay=0.2)
def make_thumbnail(image_id: int, size: int = 64) -> dict[str, Any]:
    """Render a product's thumbnail as a PNG, reporting progress at each step."""
    if not 1 <= size <= 1024:
        raise ValueError(f"thumbnail size {size} is outside 1..1024 pixels")
    report(5, "downloading original")
    time.sleep(random.uniform(0.05, 0.15))
    report(30, f"resizing to {size}x{size}")
    rows = thumbnail_rows(image_id, size)
    time.sleep(random.uniform(0.05, 0.15))
    report(60, "encoding PNG")
    data = encode_png(size, size, rows)
    time.sleep(random.uniform(0.05, 0.15))
    report(90, "uploading to the CDN")
    path = output_dir(THUMBNAILS) / f"product-{image_id}-{size}px.png"
    write_atomically(path, data)
    time.sleep(random.uniform(0.05, 0.15))
    report(100, "done")
    return {"image_id": image_id, "file": str(path), "bytes": len(data)}


# -- invoices -------------------------------------------------------------------------------


def pdf_text(text: str) -> str:
    """A PDF literal string: backslashes and parentheses must be escaped."""
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def invoice_lines(order_id: int, amount_cents: int) -> list[str]:
    dollars = f"${amount_cents // 100:,}.{amount_cents % 100:02d}"
    return [SHOP, "", f"Invoice for order #{order_id}", f"Date: {time.strftime('%Y-%m-%d')}", "",
            f"Coffee beans and accessories ........ {dollars}", f"Total due: {dollars}", "",
            "Thank you for your order!"]


def encode_pdf(lines: list[str]) -> bytes:
    """A one-page A4 PDF with Helvetica text. The xref table holds each object's byte offset,
    so the file is built in bytes and the offsets are measured, never guessed."""
    text = "\n".join(f"{pdf_text(line)} Tj T*" for line in lines)
    content = f"BT /F1 14 Tf 18 TL 72 770 Td\n{text}\nET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # the binary comment marks the file as binary
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)  # 20 bytes per entry
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


# Only I/O trouble is worth another attempt; a bad amount (ValueError) fails at once.
@app.task(name="demo.render_invoice", max_retries=3, retry_delay=0.2, retry_on=(OSError,))
async def render_invoice(order_id: int, amount_cents: int) -> dict[str, Any]:
    """Render an order's invoice as a PDF; an async task, so it waits without holding a thread."""
    report(10, "loading the order")
    await asyncio.sleep(random.uniform(0.05, 0.15))  # the database query
    if amount_cents < 0:
        raise ValueError(f"order #{order_id} has a negative amount ({amount_cents} cents); "
                         "refunds need a credit note, not an invoice")
    report(50, "laying out the page")
    data = encode_pdf(invoice_lines(order_id, amount_cents))
    await asyncio.sleep(random.uniform(0.05, 0.15))  # the template engine
    report(80, "storing the PDF")
    path = output_dir(INVOICES) / f"invoice-{order_id}.pdf"
    write_atomically(path, data)
    await asyncio.sleep(random.uniform(0.05, 0.1))  # the object store's upload
    report(100, "done")
    return {"order_id": order_id, "file": str(path), "bytes": len(data)}
