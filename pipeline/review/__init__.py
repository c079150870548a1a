"""The management-review pack: :func:`pack.build` assembles it from the published data,
:func:`render.write` writes it as DOCX, XLSX or HTML."""
