"""Ingestion: an export's rows → mapped to a questionnaire → typed and validated → one load.

``mapping`` matches columns and answer texts to items, ``validate`` types the rows and
checks them with pandera, ``pseudonym`` derives keyed respondent keys, ``load`` writes one
file through the store in one transaction. The heavy parts (pandera, polars) load only when
a file is ingested: ``from pipeline.ingest import ingest_file`` imports them then.
"""

from __future__ import annotations

__all__ = ["LoadResult", "ingest_file"]


def __getattr__(name: str):
    if name in __all__:
        from pipeline.ingest import load

        return getattr(load, name)
    raise AttributeError(name)
