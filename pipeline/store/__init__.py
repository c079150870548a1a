"""The store: the only writer of the DuckDB database."""

from pipeline.store.database import (
    BASE_COLUMNS,
    COUNT_GROUP,
    Store,
    arrow_table,
    count_answers,
    fact_table,
    quarantine_json,
    response_ids,
    scale_codes,
    touched,
    verify_audit,
)

__all__ = [
    "BASE_COLUMNS",
    "COUNT_GROUP",
    "Store",
    "arrow_table",
    "count_answers",
    "fact_table",
    "quarantine_json",
    "response_ids",
    "scale_codes",
    "touched",
    "verify_audit",
]
