"""Figures. matplotlib is imported in this package and nowhere else in the library."""
