"""Analysis: the reference data, tidy-table functions (frontier, attribution, identities), findings and summaries.
Pure functions over DataFrames; nothing here measures."""
