"""Segment identity across refits: which new segment is which old one, and how customers moved."""
