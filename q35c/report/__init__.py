"""Reports: the comparison table, JSON and CSV, report.md, plots, the IR of every stage per target, report
directories, and `q35c compare` over earlier reports."""
