"""`membrane relay`: one Observer API over every node's (Hubble Relay's job).

    peers.py    who the nodes are: a fixed list, a peers file a lab keeps, or the agents'
                Peer service (observer discovery in a cluster)
    pool.py     one connection per node, its state (connected, unavailable, gone,
                error) and why; TLS to the agents in a cluster
    h2client.py one node's followed GetFlows read over HTTP/2 in batches (grpcio's
                client takes one message at a time)
    merge.py    flows of several nodes in time order: whole histories, and followed
                streams through a short sort buffer
    server.py   the Observer service over the pool: GetFlows, GetNodes, GetNamespaces,
                ServerStatus

This package imports none of its modules; server imports pool, merge and h2client,
pool imports peers.
"""
