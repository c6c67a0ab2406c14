"""xmkd: cross-modal knowledge distillation from an RGB/flow teacher to skeleton students.

The learning core: NTU RGB+D formats, skeleton conventions, datasets, the TSN teacher, the ST-GCN
and HCN students, the paper's losses, the distillation trainer, evaluation and the ``xmkd`` CLI.
"""

__version__ = "0.1.0"
