"""ertrain: train random (Erdos-Renyi) sparse networks.

Layerwise densities, ER masks with flow repair, masked training that keeps pruned weights
exactly zero, sparse-to-sparse methods, the paper's models and data, sweeps and reports.
May import ``ertheory``; needs torch.
"""

__version__ = "0.1.0"
