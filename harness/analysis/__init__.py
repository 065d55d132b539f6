"""Analysis: the reference data, tidy-table functions (``tables``: frontier, attribution, identities), the paper's
figures (``paper``), its findings recomputed (``findings``), summaries and prediction. Pure functions over
DataFrames; nothing here measures, draws a chart or parses a command line."""
