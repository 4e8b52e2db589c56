/* SPDX-License-Identifier: Apache-2.0 */
/* Drop reasons: the single source of truth.
 *
 * observe/reasons.py mirrors every DROP_* below by value and description; the test
 * tests/unit/test_reasons_mirror.py parses this file (one `#define DROP_NAME code` per
 * line, description in the trailing comment) and compares. Values follow Cilium's
 * numbering where the meaning is the same, so people who know Hubble recognise them.
 * Codes are < 256: they index the per-CPU drop counter array and fit the u8 in events.
 */
#ifndef MEMBRANE_DROP_H
#define MEMBRANE_DROP_H

#define DROP_INVALID_SIP 132          /* Invalid source ip */
#define DROP_POLICY 133               /* Policy denied */
#define DROP_INVALID 134              /* Invalid packet */
#define DROP_CT_INVALID_HDR 135       /* CT: Truncated or invalid header */
#define DROP_UNSUPPORTED_L3 139       /* Unsupported L3 protocol */
#define DROP_CT_MAP_INSERTION 155     /* CT: Map insertion failed */
#define DROP_INVALID_EXTHDR 156       /* Invalid IPv6 extension header */
#define DROP_NO_ENDPOINT 190          /* Unknown endpoint */

/* Size of the drop counter array: every reason above must be below it. */
#define DROP_REASON_MAX 256

#endif /* MEMBRANE_DROP_H */
