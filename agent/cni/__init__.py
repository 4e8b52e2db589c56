"""Chaining Membrane into the node's existing CNI: the `membrane-cni` plugin and its installer.

`plugin` is what the container runtime executes (last in the node's conflist); `installer`
is what the DaemonSet's init container runs to put it there and take it out again.
"""
