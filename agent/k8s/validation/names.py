"""Value rules of k8s.io/apimachinery/pkg/util/validation (validation.go and
api/validate/content), each a function returning None when the value is valid, else what
is wrong with it in words. Pure functions of a string: no document, no field path."""

from __future__ import annotations

import re

# Go's regexp `^...$` anchors at the ends of the text; fullmatch below does the same
# (Python's `$` would also accept a trailing newline). [0-9], not \d: \d is Unicode.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IANA_SVC_NAME_CHARS = re.compile(r"[-a-z0-9]+")
_ONE_LETTER = re.compile(r"[a-z]")

MAX_LABEL_LENGTH = 63          # DNS1123LabelMaxLength, LabelValueMaxLength
MAX_SUBDOMAIN_LENGTH = 253     # DNS1123SubdomainMaxLength
MAX_PORT_NAME_LENGTH = 15      # IsValidPortName

DNS1123_LABEL_RULE = ("must be a lowercase RFC 1123 label: at most 63 lowercase letters, "
                      "digits and '-', starting and ending with a letter or digit")
DNS1123_SUBDOMAIN_RULE = ("must be a lowercase RFC 1123 subdomain: at most 253 lowercase "
                          "letters, digits, '-' and '.', each dot-separated part starting "
                          "and ending with a letter or digit")
DNS1035_LABEL_RULE = ("must be an RFC 1035 label: at most 63 lowercase letters, digits and "
                      "'-', starting with a letter and ending with a letter or digit")
NAME_PART_RULE = ("at most 63 letters, digits, '-', '_' and '.', starting and ending with "
                  "a letter or digit")


def dns1123_label_problem(value: str) -> str | None:
    """IsDNS1123Label: namespace names, service port names."""
    if len(value) > MAX_LABEL_LENGTH or not _DNS1123_LABEL.fullmatch(value):
        return DNS1123_LABEL_RULE
    return None


def dns1123_subdomain_problem(value: str) -> str | None:
    """IsDNS1123Subdomain: most object names (NameIsDNSSubdomain)."""
    if len(value) > MAX_SUBDOMAIN_LENGTH or not _DNS1123_SUBDOMAIN.fullmatch(value):
        return DNS1123_SUBDOMAIN_RULE
    return None


def dns1035_label_problem(value: str) -> str | None:
    """IsDNS1035Label: Service names (NameIsDNS1035Label; they become DNS names)."""
    if len(value) > MAX_LABEL_LENGTH or not _DNS1035_LABEL.fullmatch(value):
        return DNS1035_LABEL_RULE
    return None


def qualified_name_problem(value: str) -> str | None:
    """IsQualifiedName (content.IsLabelKey): label keys, `[prefix/]name`, the prefix a
    DNS subdomain. strings.Split on "/": more than one slash is an error."""
    parts = value.split("/")
    if len(parts) > 2:
        return "a label key may contain at most one '/'"
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "the prefix before '/' must not be empty"
        if dns1123_subdomain_problem(prefix):
            return "the prefix before '/' " + DNS1123_SUBDOMAIN_RULE
    else:
        name = parts[0]
    if not name:
        return "the name part must not be empty"
    if len(name) > MAX_LABEL_LENGTH or not _QUALIFIED_NAME_PART.fullmatch(name):
        return "the name part must be " + NAME_PART_RULE
    return None


def label_value_problem(value: str) -> str | None:
    """IsValidLabelValue (content.IsLabelValue): empty is allowed."""
    if value and (len(value) > MAX_LABEL_LENGTH or not _QUALIFIED_NAME_PART.fullmatch(value)):
        return "a label value must be empty or " + NAME_PART_RULE
    return None


def port_name_problem(value: str) -> str | None:
    """IsValidPortName (an IANA_SVC_NAME, RFC 6335, lowercase only)."""
    if len(value) > MAX_PORT_NAME_LENGTH:
        return "a port name must be at most 15 characters"
    if not _IANA_SVC_NAME_CHARS.fullmatch(value):
        return "a port name may contain only lowercase letters, digits and '-'"
    if not _ONE_LETTER.search(value):
        if value.isdigit():
            return "a port name must contain at least one letter (write a number without quotes)"
        return "a port name must contain at least one letter"
    if "--" in value:
        return "a port name must not contain '--'"
    if value.startswith("-") or value.endswith("-"):
        return "a port name must not begin or end with '-'"
    return None


def port_number_problem(value: int) -> str | None:
    """IsValidPortNum: 1..65535 (0 is not a port)."""
    if not 1 <= value <= 65535:
        return "must be a port number between 1 and 65535"
    return None
