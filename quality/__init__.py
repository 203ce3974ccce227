"""Live model quality from delayed labels: feedback, the join with logged predictions, quality per
version, the estimate before labels arrive (CBPE). See docs/quality.md."""
