"""Entry script PyInstaller freezes into the standalone `membrane-cni` binary (Dockerfile).

The container runtime executes CNI plugins on the node itself, where there is no Python
(kind's and minikube's nodes ship none), so the plugin travels as one self-contained file.
"""

from agent.cni.plugin import main

main()
