"""Files gifkit reads and writes: atomic writes, images, the expansion store, the run protocol.

``files`` (atomic writes, JSON), ``images`` (decoding any image as RGB, PIL <-> tensor), ``store`` (the
on-disk format of an expansion), ``runs`` (one folder = one run: settings, resume, shards) and ``datasets``
(torch datasets over stores). Nothing here imports a higher layer of gifkit.
"""
