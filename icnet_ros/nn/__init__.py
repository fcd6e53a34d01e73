"""
The network: ICNet (model.py), its EfficientNet-Lite branch and the cascade loss.

Imports nothing else of the package.
"""
