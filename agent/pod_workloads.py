"""A pod's workload, as Hubble shows it: the controller its owner references lead to.

The store's pods carry the labels their controllers give them rather than the owner
references themselves, and the two say the same (kube-controller-manager sets both):

    pod-template-hash=H, name <deploy>-H-<x>     ReplicaSet <deploy>-H -> Deployment
    statefulset.kubernetes.io/pod-name=<name>    StatefulSet <name minus -ordinal>
    controller-revision-hash + pod-template-generation, name <ds>-<x>    DaemonSet
    batch.kubernetes.io/job-name=J (or job-name)  Job J; CronJob C when J is C-<minutes>

Hubble maps owners the same way (a ReplicaSet to its Deployment, a Job to its CronJob).
"""

from __future__ import annotations

import re

from agent.k8s.objects import Pod
from agent.k8s.workloads import (CONTROLLER_REVISION_HASH, JOB_NAME, JOB_NAME_LEGACY,
                                 POD_TEMPLATE_GENERATION, POD_TEMPLATE_HASH,
                                 STATEFULSET_POD_NAME)
from observe.metadata import Workload

# A CronJob's Job is named <cronjob>-<scheduled time in minutes since the epoch>.
_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-\d{8,}$")


def workloads_of(pod: Pod) -> tuple[Workload, ...]:
    labels, name = pod.labels, pod.name
    template_hash = labels.get(POD_TEMPLATE_HASH)
    if template_hash and f"-{template_hash}-" in name:
        return (Workload(name.rsplit(f"-{template_hash}-", 1)[0], "Deployment"),)
    if labels.get(STATEFULSET_POD_NAME) == name and "-" in name:
        return (Workload(name.rsplit("-", 1)[0], "StatefulSet"),)
    job = labels.get(JOB_NAME) or labels.get(JOB_NAME_LEGACY)
    if job:
        cron = _CRONJOB_JOB.match(job)
        return (Workload(cron["cronjob"], "CronJob") if cron else Workload(job, "Job"),)
    if POD_TEMPLATE_GENERATION in labels and CONTROLLER_REVISION_HASH in labels and "-" in name:
        return (Workload(name.rsplit("-", 1)[0], "DaemonSet"),)
    return ()
