"""Validation of Kubernetes documents as the API server does it, turning them into objects.

One module per concern, the kinds on top of a small base:

    names         value rules of k8s.io/apimachinery/pkg/util/validation (DNS labels,
                  qualified names, label values, port names and numbers)
    fields        Field (typed access to an untrusted document), ObjectRef, the
                  ValidationWarning channel, quoted()
    meta          ObjectMeta: names, namespaces, labels, annotations
    selectors     metav1 label selectors
    network       IP addresses and CIDRs as the API server's sloppy parser reads them
    ports         protocols and IntOrString ports
    networkpolicy, pod, namespace, service, node, workload    one module per kind

The contract, for every kind: accept exactly what kube-apiserver accepts (each check
names the upstream rule it mirrors, e.g. `ValidateNetworkPolicySpec`), default as it
defaults, and raise `core.errors.InvalidObject` naming the object and the field path for
anything it rejects, e.g.

    networkpolicy default/web: spec.ingress[0].ports[1].endPort: must be >= port

Where Membrane has more to say than the API server (a repeated policyType, a port name
that two containers share, a CIDR with host bits set), it says it as a
`ValidationWarning` beside the object, never as a rejection: an object the API server
accepted must be enforced. Documents are untrusted input: every access goes through
`Field`, which checks the type before using a value, so a malformed document gives a
message, never a traceback.

This `__init__` imports nothing: import the module you need.
"""
