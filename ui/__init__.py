"""`membrane ui`: a local web page of the service map, the flows and the policy matrix.

    flowview.py    a Flow -> the page's JSON (sides, verdict, reason, policy names)
    servicemap.py  flows -> workloads grouped by namespace, edges with verdict counts
    feed.py        the one follower of an Observer (agent or relay): history, then follow
    filters.py     the page's filter fields -> the observe filters
    policies.py    the agents' policies and pods -> `policy matrix`'s verdicts
    server.py      aiohttp: the page, static files (vendored: works offline), JSON, SSE
    static/        index.html, app.js, app.css; vendor/ (Cytoscape.js + fcose layout,
                   versions and licenses in vendor/VERSIONS.md)

A top-level package above `lab` (it may read a lab's nodes) and below `cli`.
"""
