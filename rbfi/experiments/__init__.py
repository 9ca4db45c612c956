"""Experiments built on the library: the paper's tables and figures as items made of jobs
(``spec``, ``paper/``), studies beyond the paper (``studies/``; every item: ``items``), their
sizes (``profiles``), what a job runs (``jobs``), the reproduction (``reproduce``, ``render``).
The robustness evaluation itself is :mod:`rbfi.evaluation`; the README's generated sections are
repository tooling (``tools/readme.py``)."""
