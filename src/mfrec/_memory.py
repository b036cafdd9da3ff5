"""One memory check before large allocations (the OS kills a process that takes more, with no message)."""

from __future__ import annotations

import os


def physical_memory() -> int | None:
    """The machine's RAM in bytes (None where POSIX sysconf cannot say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def require_memory(need: float, what: str, detail: str = "") -> None:
    """MemoryError naming ``what`` (and ``detail``: for what the memory is) when ``need`` bytes
    exceed the machine's memory."""
    total = physical_memory()
    if total is not None and need > total:
        raise MemoryError(f"{what} needs at least {need / 2**30:.1f} GiB{detail}; this machine has "
                          f"{total / 2**30:.1f} GiB")
