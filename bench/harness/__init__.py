"""Pieces of the data-plane benchmark: processes, topology, load generator, report."""
