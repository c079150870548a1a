"""What readers see: result lists built on the read door (:mod:`pipeline.publish`).

Each view reads gated rows, puts names in the reader's language beside the codes and
returns one tidy frame; the CLI, the dashboard and the review pack all show the same
views, so a dean reads the same list wherever he looks. No statistics library is
imported here (reads stay fast).
"""
