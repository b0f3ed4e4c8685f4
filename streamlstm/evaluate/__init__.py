"""Detection quality on labelled data: NAB (with NAB's scoring rules) and labelled CSVs."""
