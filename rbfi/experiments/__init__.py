"""Experiments built on the library: the paper's tables and figures as items made of jobs
(``spec``, ``paper/``), their sizes (``profiles``), what a job runs (``jobs``), the reproduction
(``reproduce``, ``render``) and the README's generated result sections (``readme``). The
robustness evaluation itself is :mod:`rbfi.evaluation`."""
