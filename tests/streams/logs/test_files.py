from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from streams.logs.files import EventLogError, read_lines


def test_plain_and_gzip_logs_read_the_same(tmp_path: Path) -> None:
    content = b'{"a":1}\n\n  {"b":2}  \r\n{"c":3}'
    plain = tmp_path / "night.jsonl"
    plain.write_bytes(content)
    packed = tmp_path / "night.jsonl.gz"
    packed.write_bytes(gzip.compress(content))
    misnamed = tmp_path / "night.log"  # gzip is recognised by content, not name
    misnamed.write_bytes(gzip.compress(content))
    expected = [(1, b'{"a":1}'), (3, b'{"b":2}'), (4, b'{"c":3}')]
    for path in (plain, packed, misnamed):
        assert list(read_lines(path)) == expected


def test_missing_and_corrupt_logs_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="cannot read event log"):
        list(read_lines(tmp_path / "absent.jsonl"))
    truncated = tmp_path / "cut.jsonl.gz"
    packed = gzip.compress(b"".join(b'{"n":%d}\n' % (n * 7919 % 10007) for n in range(5000)))
    truncated.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(EventLogError, match="unreadable"):
        list(read_lines(truncated))
