"""What every Membrane package shares and nothing else: the error tree, wire constants
(IP protocols, directions), the version. Imports nothing from the project."""
