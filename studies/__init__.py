"""Experiments that use the ertoolkit libraries (``ertrain``, ``ertheory``); the libraries never import them.

``studies.reproduction`` is the reproduction study of the paper's claims (``ertoolkit-study``).
"""
