"""capture: sensor and sensor-free sources of paired (colour video, skeleton) frames, optical
flow, and the crash-safe recorder that writes NTU RGB+D-compatible sessions under recordings/.

- :mod:`capture.frames`: ``Frame``, ``Body``, the ``Source`` base, drop counting and the
  Frame <-> NTU ``SkeletonSequence`` conversion (what every source kind builds on);
  :mod:`capture.registry`: the kinds and ``open_source(spec)`` (``synthetic[:preset]``,
  ``ntu:PATH``, ``mkv:PATH``, ``kinect[:N,...]``), importing each kind only when it is opened;
  :mod:`capture.source` re-exports both.
- :mod:`capture.synthetic`, :mod:`capture.ntu_replay`, :mod:`capture.mkv` (Azure Kinect MKV via
  PyAV), :mod:`capture.kinect` (pyk4a devices, wired sync): the sources.
- :mod:`capture.calibration` (k4a calibration JSON, Brown-Conrady projection in numpy) and
  :mod:`capture.bodytracking` (the Body Tracking SDK through ctypes, loaded at run time).
- :mod:`capture.flow`: DIS / TV-L1 flow at the TSN resolution, live worker process.
- :mod:`capture.recorder` and :mod:`capture.recover`: ``xmkd record`` and ``xmkd recover``.
"""
