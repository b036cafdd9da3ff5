"""Numba hot loops. Everything that touches every rating lives here; the rest is NumPy/SciPy."""
