"""The embedded backend: one SQLite file, one writer thread with group commit."""
