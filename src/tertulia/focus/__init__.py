"""Focus: one conference per room; places endpoints on bridges."""
