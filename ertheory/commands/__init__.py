"""Sub-commands of the ``ertheory`` console script (one module each; see ``ertheory.cli``)."""
