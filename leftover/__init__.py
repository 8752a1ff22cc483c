"""leftover: reap processes of users who hold no Slurm job on this node.

The package is standard library only: it runs frozen on nodes with no Python.
"""
