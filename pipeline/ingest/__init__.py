"""Ingestion: an export's rows → mapped to a questionnaire → typed and validated → one load.

``mapping`` matches columns and answer texts to items, ``validate`` types the rows and
checks them with pandera, ``pseudonym`` derives keyed respondent keys, ``load`` writes one
file through the store in one transaction.
"""

from pipeline.ingest.load import LoadResult, ingest_file

__all__ = ["LoadResult", "ingest_file"]
