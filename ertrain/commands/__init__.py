"""Sub-commands of the ``ertrain`` console script (one module each; see ``ertrain.cli``)."""
