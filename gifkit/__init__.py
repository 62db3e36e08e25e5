"""gifkit: dataset expansion with guided imagination (GIF, NeurIPS 2023).

Expand a small labelled image dataset with pretrained generative priors
(Stable Diffusion, unCLIP, MAE) guided by CLIP zero-shot predictions, train
classifiers on the result and compare with the paper.
"""
__version__ = "0.1.0"
