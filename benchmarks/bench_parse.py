"""Header parsing speed: mailhat_nb.sync.parse vs the stdlib ``email`` package.

Usage::

    .venv/bin/python benchmarks/bench_parse.py [--n 100000] [--seed 7] [--stdlib-n N]
                                               [--json out.json]

Builds ``--n`` header blocks shaped like an IMAP ``BODY.PEEK[HEADER.FIELDS
(DATE FROM TO CC SUBJECT MESSAGE-ID IN-REPLY-TO REFERENCES DELIVERED-TO)]``
answer (CRLF lines, folded long lines, ending in a blank line) from the real
Enron headers of the test corpus (tests/data), perturbed so that they look
like a modern mailbox rather than one company's 2001 mail: ~45 % quoted display names,
~35 % replies with In-Reply-To and References chains, a Delivered-To on
every message, ~6 % RFC 2047 subjects (UTF-8 and ISO-8859-1, Q and B),
~3 % group syntax, and fresh Message-IDs. Then, in one run, it times:

- ``parse_columns``         (this package, column by column, in chunks of
                            5,000 as the sync does), from empty field caches
- stdlib compat32           ``BytesHeaderParser(policy=compat32)`` + the same
                            fields (getaddresses, decode_header, parsedate_to_datetime)
- stdlib default            ``BytesHeaderParser(policy=default)`` + the same fields
                            (header objects: ``.addresses``, ``.datetime``, ``str()``)
- stdlib parse only         both policies, without reading any field (a lower
                            bound for any stdlib-based parse)

and prints µs/message and ratios, plus the time and memory of the 100k-row
``messages`` frame built from the parsed rows. ``--stdlib-n`` times the stdlib
on a prefix of the blocks only (it is ~10-20x slower); default: all of them.
"""

from __future__ import annotations

import argparse
import base64
import email.header
import email.policy
import email.utils
import gc
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from mailhat_nb.analysis.frames import add_direction, messages_frame
from mailhat_nb.lab.corpus import corpus_root
from mailhat_nb.sync.memory import gc_paused
from mailhat_nb.sync.parse import clear_field_memo, parse_columns, parse_headers

FIELDS = re.compile(rb"^(Date|From|To|Cc|Subject|X-From):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.M)
ACCENTED = ["é", "ü", "ñ", "ø", "ç", "ß", "à", "ö"]


def enron_headers(root: Path) -> list[dict[str, bytes]]:
    """The Date/From/To/Cc/Subject/X-From values of every Enron message."""
    out = []
    for dirpath, _dirs, files in os.walk(root / "enron"):
        for name in sorted(files):
            raw = Path(dirpath, name).read_bytes()
            head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            fields = {
                m.group(1).decode(): re.sub(rb"\r?\n[ \t]+", b" ", m.group(2)).strip()
                for m in FIELDS.finditer(head)
            }
            if "From" in fields and "Date" in fields:
                out.append(fields)
    return out


def fold(name: bytes, value: bytes) -> bytes:
    """``Name: value`` folded at ~76 columns after commas (as MUAs do)."""
    line = name + b": " + value
    if len(line) <= 78 or b", " not in value:
        return line + b"\r\n"
    parts = value.split(b", ")
    lines, cur = [], name + b": " + parts[0]
    for p in parts[1:]:
        if len(cur) + len(p) + 2 > 76:
            lines.append(cur + b",")
            cur = b"\t" + p
        else:
            cur += b", " + p
    lines.append(cur)
    return b"\r\n".join(lines) + b"\r\n"


def encode_subject(rng: random.Random, subject: str) -> bytes:
    """An RFC 2047 form of ``subject`` with one accented letter added."""
    text = subject[:40] + " " + rng.choice(ACCENTED)
    if rng.random() < 0.5:
        return email.header.Header(text, "utf-8").encode().encode("ascii")
    data = base64.b64encode(text.encode("latin-1", "replace")).decode()
    return f"=?ISO-8859-1?B?{data}?=".encode()


def make_blocks(n: int, seed: int = 7) -> list[bytes]:
    """``n`` header blocks (see the module docstring)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    src = enron_headers(corpus_root())
    ids: list[bytes] = []
    blocks = []
    for i in range(n):
        h = src[rng.randrange(len(src))]
        mid = b"<%d.%d.JavaMail.bench@host%d.example.com>" % (i, rng.randrange(10**9), i % 7)
        out = [b"Date: " + h["Date"] + b"\r\n"]
        frm = h.get("From", b"nobody@example.com").strip()
        xfrom = h.get("X-From", b"").split(b"<")[0].strip()
        if xfrom and rng.random() < 0.45:
            frm = b'"' + xfrom.replace(b'"', b"") + b'" <' + frm + b">"
        out.append(b"From: " + frm + b"\r\n")
        to = re.sub(rb"\s+", b" ", h.get("To", b"")).strip()
        if rng.random() < 0.03:
            to = b"undisclosed-recipients:;"
        elif to and rng.random() < 0.5:
            # display names on most recipients, as modern clients write them
            addrs = to.split(b", ")
            for k, a in enumerate(addrs):
                if rng.random() < 0.7:
                    name = a.split(b"@")[0].replace(b".", b" ").title()
                    quoted = rng.random() < 0.5
                    addrs[k] = (b'"' + name + b'" <' if quoted else name + b" <") + a + b">"
            to = b", ".join(addrs)
        if to:
            out.append(fold(b"To", to))
        cc = re.sub(rb"\s+", b" ", h.get("Cc", b"")).strip()
        if cc:
            out.append(fold(b"Cc", cc))
        subject = h.get("Subject", b"").replace(b"\r\n", b"").strip()
        if rng.random() < 0.06:
            subject = encode_subject(rng, subject.decode("latin-1"))
        out.append(b"Subject: " + subject + b"\r\n")
        out.append(b"Message-ID: " + mid + b"\r\n")
        if ids and rng.random() < 0.35:
            chain = [ids[rng.randrange(len(ids))] for _ in range(rng.randint(1, 5))]
            out.append(b"In-Reply-To: " + chain[-1] + b"\r\n")
            out.append(fold(b"References", b", ".join(chain)).replace(b",", b""))
        out.append(b"Delivered-To: " + h.get("From", b"x@example.com").strip() + b"\r\n")
        blocks.append(b"".join(out) + b"\r\n")
        ids.append(mid)
    return blocks


# --------------------------------------------------------------------------- stdlib


def _decode(value: Any) -> str:
    parts = email.header.decode_header(str(value))
    return "".join(
        p.decode(c or "ascii", "replace") if isinstance(p, bytes) else p for p, c in parts
    )


def stdlib_compat32(block: bytes, parser: BytesHeaderParser) -> dict[str, Any]:
    """What a careful compat32-based sync does per message."""
    msg = parser.parsebytes(block)
    date = msg["date"]
    try:
        dt = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        dt = None
    frm = email.utils.getaddresses(msg.get_all("from", []))
    return {
        "message_id": msg["message-id"],
        "date": dt,
        "from": frm[0] if frm else None,
        "to": [a.lower() for _, a in email.utils.getaddresses(msg.get_all("to", []))],
        "cc": [a.lower() for _, a in email.utils.getaddresses(msg.get_all("cc", []))],
        "delivered_to": msg.get_all("delivered-to", []),
        "subject": _decode(msg["subject"]) if msg["subject"] else None,
        "in_reply_to": msg["in-reply-to"],
        "references": (msg["references"] or "").split(),
    }


def stdlib_default(block: bytes, parser: BytesHeaderParser) -> dict[str, Any]:
    """The same with policy.default's structured header objects."""
    msg = parser.parsebytes(block)
    date = msg["date"]
    frm = msg["from"]
    to = msg["to"]
    cc = msg["cc"]
    return {
        "message_id": str(msg["message-id"]),
        "date": getattr(date, "datetime", None),
        "from": frm.addresses[0].addr_spec if frm and frm.addresses else None,
        "to": [a.addr_spec.lower() for a in to.addresses] if to else [],
        "cc": [a.addr_spec.lower() for a in cc.addresses] if cc else [],
        "delivered_to": [str(v) for v in msg.get_all("delivered-to", [])],
        "subject": str(msg["subject"]),
        "in_reply_to": str(msg["in-reply-to"]),
        "references": str(msg["references"] or "").split(),
    }


def timed(label: str, fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"{label:<38} {dt:8.3f} s   {dt / n * 1e6:8.2f} µs/message   (n={n:,})")
    return dt / n, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--stdlib-n", type=int, default=None)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    blocks = make_blocks(args.n, args.seed)
    sizes = sorted(len(b) for b in blocks)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {len(blocks):,} header "
        f"blocks built in {time.perf_counter() - t0:.1f} s; bytes: median "
        f"{sizes[len(sizes) // 2]}, p10 {sizes[len(sizes) // 10]}, "
        f"p90 {sizes[len(sizes) * 9 // 10]}, total {sum(sizes) / 1e6:.1f} MB"
    )
    n = len(blocks)
    sn = min(args.stdlib_n or n, n)
    sblocks = blocks[:sn]

    clear_field_memo()
    ours, _ = timed("mailhat parse_columns (the sync's)",
                    lambda: [parse_columns(blocks[i:i + 5000]) for i in range(0, n, 5000)], n)
    c32 = BytesHeaderParser(policy=email.policy.compat32)
    dfl = BytesHeaderParser(policy=email.policy.default)
    only32, _ = timed(
        "stdlib compat32, parse only", lambda: [c32.parsebytes(b) for b in sblocks], sn
    )
    full32, _ = timed(
        "stdlib compat32 + fields", lambda: [stdlib_compat32(b, c32) for b in sblocks], sn
    )
    onlydf, _ = timed(
        "stdlib default, parse only", lambda: [dfl.parsebytes(b) for b in sblocks], sn
    )
    fulldf, _ = timed(
        "stdlib default + fields", lambda: [stdlib_default(b, dfl) for b in sblocks], sn
    )
    print()
    print(f"ratio stdlib compat32 + fields / mailhat : {full32 / ours:6.1f}x")
    print(f"ratio stdlib default  + fields / mailhat : {fulldf / ours:6.1f}x")
    print(f"ratio stdlib compat32 parse only / mailhat: {only32 / ours:6.1f}x")
    print(f"ratio stdlib default  parse only / mailhat: {onlydf / ours:6.1f}x")
    with gc_paused():
        rows = [parse_headers(b) for b in blocks]
    if args.json:
        Path(args.json).write_text(json.dumps({
            "n": n, "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
            "ours_us": ours * 1e6, "compat32_fields_us": full32 * 1e6,
            "default_fields_us": fulldf * 1e6}, indent=2))
    defects = sum(1 for r in rows if r["defects"])
    print(f"rows with defects: {defects:,} of {n:,}")

    for r, i in zip(rows, range(n), strict=False):
        r.update(account="bench@example.com", folder="INBOX" if i % 5 else "Sent",
                 folder_role="inbox" if i % 5 else "sent", uidvalidity=1, uid=i + 1,
                 size=len(blocks[i]) * 12, flags=["\\Seen"], internaldate=r["date"])  # fmt: skip
    gc.collect()
    t0 = time.perf_counter()
    frame = messages_frame(rows)
    frame = add_direction(frame, {"robert.badeer@enron.com"})
    dt = time.perf_counter() - t0
    mem = frame.memory_usage(deep=True).sum()
    print(
        f"messages_frame + add_direction: {dt:.3f} s for {len(frame):,} rows; "
        f"memory_usage(deep=True) {mem / 1e6:.1f} MB ({mem / len(frame):.0f} B/row)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
