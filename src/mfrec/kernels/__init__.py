"""Numba hot loops. Everything that touches every rating lives here; the rest is NumPy/SciPy.

Importing this package sets up, before any kernel is defined, where the kernels cache and the
first-use compile notice (`mfrec.kernels.compile`)."""

from mfrec.kernels.compile import install_cache_locator, install_compile_notice

install_cache_locator()
install_compile_notice()
