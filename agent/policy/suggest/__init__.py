"""`membrane policy suggest`: least-privilege NetworkPolicies from observed flows, checked.

    observed.py   flows -> the distinct connections they show (pods and addresses)
    build.py      connections -> one NetworkPolicy per workload and direction
    verify.py     the policy engine decides every observed connection under policies
    diff.py       the suggestion against the policies in force (--diff)

Pure Python over flow messages and the engine: no I/O, no gRPC. The CLI (cli/suggest.py)
reads the flows and prints.
"""
