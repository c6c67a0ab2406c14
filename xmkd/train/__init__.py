"""Training: the student distillation trainer, the TSN teacher trainer, the teacher-label cache,
progress reporting and torchrun/DDP helpers."""
