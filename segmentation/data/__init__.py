"""Data-set files, reading and checking customer tables, fetching them, drafting a file for a raw
export."""
