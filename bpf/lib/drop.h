/* SPDX-License-Identifier: Apache-2.0 */
/* Drop reasons: the datapath's source of them.
 *
 * Numbers are Cilium's (Hubble's flow.proto DropReason), so a drop means the same in
 * `membrane observe`, the hubble CLI and Hubble's metrics: each define's comment names
 * the Hubble enum value and the text Hubble prints for it. observe/reasons.py mirrors
 * every DROP_* below (enum name, code, description) and the generated flow.proto enum
 * holds the same name with the same number; tests/unit/test_reasons_mirror.py parses
 * this file (one `#define DROP_NAME code` per line, `HUBBLE_NAME: description` in the
 * trailing comment) and checks all three. The C names are the ones bpf_lxc.c uses.
 * Codes are < 256: they index the per-CPU drop counter array and fit the u8 in events.
 */
#ifndef MEMBRANE_DROP_H
#define MEMBRANE_DROP_H

#define DROP_INVALID_SIP 132          /* INVALID_SOURCE_IP: Invalid source ip */
#define DROP_POLICY 133               /* POLICY_DENIED: Policy denied */
#define DROP_INVALID 134              /* INVALID_PACKET_DROPPED: Invalid packet */
#define DROP_CT_INVALID_HDR 135       /* CT_TRUNCATED_OR_INVALID_HEADER: CT: Truncated or invalid header */
#define DROP_UNSUPPORTED_L3 139       /* UNSUPPORTED_L3_PROTOCOL: Unsupported L3 protocol */
#define DROP_MISSED_TAIL_CALL 140     /* MISSED_TAIL_CALL: Missed tail call */
#define DROP_CT_MAP_INSERTION 155     /* CT_MAP_INSERTION_FAILED: CT: Map insertion failed */
#define DROP_INVALID_EXTHDR 156       /* INVALID_IPV6_EXTENSION_HEADER: Invalid IPv6 extension header */
/* A packet on a veth the endpoints map does not know: Cilium's "no local container". */
#define DROP_NO_ENDPOINT 152          /* NO_MATCHING_LOCAL_CONTAINER_FOUND: No matching local container found */

/* Size of the drop counter array: every reason above must be below it. */
#define DROP_REASON_MAX 256

#endif /* MEMBRANE_DROP_H */
