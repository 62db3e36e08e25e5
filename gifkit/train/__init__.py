"""One training loop with an objective hook (``loop``), its config, data, metrics, checkpoints, evaluation, AMST and
Stable Diffusion fine-tuning (prior tuning)."""
