"""GIF's math: deterministic generators (``rng``), Eq. 1 and the update rules (``perturb``), Eqs. 5-6, the guided
step's settings and the classifier base (``guidance``), and the prior interface (``prior``)."""
