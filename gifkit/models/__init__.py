"""Models by id or folder (``hub``, ``checkpoints``), tiny random models of the real classes (``tiny``), the guides
(``guides``, ``protoguide``) and the trained classifiers (``classifiers``, ``mininet``)."""
