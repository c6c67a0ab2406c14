"""capture: sensor and sensor-free sources of paired (colour video, skeleton) frames, optical
flow, and the crash-safe recorder that writes NTU RGB+D-compatible sessions under recordings/."""
