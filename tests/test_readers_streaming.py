"""Streaming a large generated CSV: consistent chunks, memory bounded by the chunk."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from pipeline.readers import SOURCE_ROW, encoding, open_export

ITEMS = 35


def _write_wide_csv(path, n_rows: int, seed: int = 7) -> pd.DataFrame:
    """A survey-like CSV: id, wave, faculty, programme, level, 35 Likert items, ~3 % empty."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "respondent_id": np.arange(1, n_rows + 1).astype(str),
            "wave": rng.choice(["2023-1", "2023-2", "2024-1"], n_rows),
            "faculty": rng.choice([f"Факультет {i}" for i in range(10)], n_rows),
            "programme": rng.choice([f"P{i:02d}" for i in range(60)], n_rows),
            "level": rng.choice(["бакалавр", "магистр"], n_rows),
        }
    )
    for j in range(1, ITEMS + 1):
        answers = rng.integers(1, 6, n_rows).astype(str).astype(object)
        answers[rng.random(n_rows) < 0.03] = None
        frame[f"q{j:02d}"] = answers
    frame.to_csv(path, index=False)
    return frame


@pytest.mark.slow
def test_300k_rows_stream_in_consistent_chunks(tmp_path):
    path = tmp_path / "wide.csv"
    written = _write_wide_csv(path, 300_000)
    export = open_export(path, chunk_rows=50_000)
    assert len(export.columns) == 5 + ITEMS
    sizes, first_rows, last_rows, missing = [], [], [], 0
    checksum = 0
    for chunk in export.iter_chunks():
        assert list(chunk.columns) == [SOURCE_ROW, *export.columns]
        sizes.append(len(chunk))
        first_rows.append(int(chunk[SOURCE_ROW].iloc[0]))
        last_rows.append(int(chunk[SOURCE_ROW].iloc[-1]))
        assert chunk[SOURCE_ROW].is_monotonic_increasing
        missing += int(chunk["q01"].isna().sum())
        checksum += int(chunk["respondent_id"].astype(int).sum())
    assert sizes == [50_000] * 6
    assert first_rows == [2 + 50_000 * k for k in range(6)]
    assert last_rows == [50_001 + 50_000 * k for k in range(6)]
    assert missing == int(written["q01"].isna().sum())
    assert checksum == 300_000 * 300_001 // 2


def _peak_bytes(path, chunk_rows: int) -> int:
    tracemalloc.start()
    try:
        for chunk in open_export(path, chunk_rows=chunk_rows).iter_chunks():
            del chunk
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_file_size(tmp_path, monkeypatch):
    # the encoding scan reads blocks of BLOCK_BYTES (16 MiB); make them smaller than
    # both files so that only the streaming is compared
    monkeypatch.setattr(encoding, "BLOCK_BYTES", 1 << 20)
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _write_wide_csv(small, 20_000)
    _write_wide_csv(large, 80_000)
    peak_small = _peak_bytes(small, 5_000)
    peak_large = _peak_bytes(large, 5_000)
    print(f"peak {peak_small / 1e6:.1f} MB for 20k rows, {peak_large / 1e6:.1f} MB for 80k rows")
    # four times the rows, same chunk size: peak stays about the same
    assert peak_large < 1.5 * peak_small
