"""Training side of formdigits.

``augment`` is numpy/OpenCV only (evaluation uses its non-digit crops too);
``model``, ``data``, ``loop`` and ``export`` need the ``train`` extra (PyTorch).
Nothing here is imported by the scan path.
"""
