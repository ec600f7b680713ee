"""What crosses the wire between the kernel and the window: plain dataclasses and
numpy arrays, never torch. The window, the export and the kernel all read these."""
