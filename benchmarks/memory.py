"""Peak-memory measurement shared by the benchmark scripts (see peers.py docstring)."""

import gc


def _proc_status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class PeakRSS:
    """RSS high-water mark above a baseline, see module docstring."""

    def start(self):
        gc.collect()
        self.method = "VmHWM after clear_refs reset, minus VmRSS baseline"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset = True
        except OSError:
            self.reset = False
            self.method = "ru_maxrss minus VmRSS baseline (HWM not resettable)"
        self.base_kb = _proc_status_kb("VmRSS")

    def stop_mb(self):
        if self.reset:
            hwm = _proc_status_kb("VmHWM")
        else:
            import resource
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return max(0.0, (hwm - self.base_kb) / 1024.0)
