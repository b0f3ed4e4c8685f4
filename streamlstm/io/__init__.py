"""Input and output: parsing lines into events, result records, the Unix filter's loop,
checkpoint files and plots."""
