"""The figure scripts: one module per figure, each computing with the library, plotting and writing PNG + CSV.

Run one as ``python3 figures/<name>.py --out DIR`` or all of them with ``python3 figures/make_all.py``.
"""
