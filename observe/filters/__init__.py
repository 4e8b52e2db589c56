"""Flow filters, Hubble's way (pkg/hubble/filters): one small module per kind.

    base.py      FilterFunc, and the MatchAll / MatchOne / MatchNone combinators
    <kind>.py    build(ff) -> the FilterFuncs for the FlowFilter fields it owns
    build.py     the registered builders; one FlowFilter -> one FilterFunc; the
                 allow/deny composition a GetFlows request asks for

Within one FlowFilter every field that is set must match (AND) and the values inside a
field are alternatives (OR). A request's filters combine as: the flow passes if any
allow-list (whitelist) filter matches, or the allow list is empty, and no deny-list
(blacklist) filter matches. A builder returns no FilterFunc for unset fields and raises
ValueError on a bad value, which the server turns into INVALID_ARGUMENT.

This package imports none of its modules: each kind imports only `base`, and `build`
imports the kinds, so nothing imports back up.
"""
