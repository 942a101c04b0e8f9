"""formdigits: read handwritten digits from boxes on scanned forms into CSV.

Importing formdigits never imports torch: training is an optional extra.
"""

__version__ = "0.1.0"
