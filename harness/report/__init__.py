"""Report: the book builder (papermill + Jupyter Book), offline Altair charts and the offline Sphinx extension."""
