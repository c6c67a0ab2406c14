"""Synthetic paired data (the embedded default): simulated subjects perform parametric actions,
seen by NTU-like cameras; each clip is an NTU ``.skeleton`` file plus the RGB video rendered from
the same motion, written in the recordings layout (``xmkd synth``).

- :mod:`xmkd.synth.motion`: subjects, the action library, the kinematic body.
- :mod:`xmkd.synth.render`: camera placement, projection, the RGB renderer.
- :mod:`xmkd.synth.generator`: sensor errors, files, presets, parallel generation.
"""

from xmkd.synth.generator import (
    PRESETS,
    Summary,
    SynthConfig,
    generate,
    make_clip,
    plan,
    preset,
    summarize,
)
from xmkd.synth.motion import ACTIONS, MAX_CLASSES, action_library

__all__ = [
    "ACTIONS",
    "MAX_CLASSES",
    "PRESETS",
    "Summary",
    "SynthConfig",
    "action_library",
    "generate",
    "make_clip",
    "plan",
    "preset",
    "summarize",
]
