"""alignrec-lite."""
