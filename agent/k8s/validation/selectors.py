"""metav1 label selectors, as k8s.io/apimachinery/pkg/apis/meta/v1/validation
ValidateLabelSelector checks them (with AllowInvalidLabelValueInSelector false, as for
every object created today)."""

from __future__ import annotations

from agent.k8s.objects import LabelSelector, Operator, Requirement
from agent.k8s.validation.fields import Field, quoted
from agent.k8s.validation.meta import labels
from agent.k8s.validation.names import label_value_problem, qualified_name_problem

SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
REQUIREMENT_FIELDS = ("key", "operator", "values")


def label_selector(field: Field, strict: bool = True) -> LabelSelector:
    """ValidateLabelSelector; absent or {} is the empty selector, which matches
    everything. `strict` rejects unknown fields."""
    field.fields(SELECTOR_FIELDS if strict else None)
    match_labels = labels(field.get("matchLabels"))   # ValidateLabels
    expressions = tuple(requirement(item, strict) for item in field.get("matchExpressions").items())
    return LabelSelector.of(match_labels, expressions)


def requirement(field: Field, strict: bool) -> Requirement:
    """ValidateLabelSelectorRequirement."""
    if field.is_absent:
        # Go decodes null as an empty requirement, whose operator "" is not valid.
        field.fail("must be an object with key and operator, not null")
    field.fields(REQUIREMENT_FIELDS if strict else None)
    key_field = field.get("key")
    key = key_field.required_string()
    key_problem = qualified_name_problem(key)            # ValidateLabelName
    if key_problem:
        key_field.fail(f"invalid value {quoted(key)}: {key_problem}")
    operator = selector_operator(field.get("operator"))
    values_field = field.get("values")
    values = requirement_values(values_field)
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        values_field.fail("must be specified when operator is 'In' or 'NotIn'")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        values_field.fail("may not be specified when operator is 'Exists' or 'DoesNotExist'")
    # Repeated values are valid upstream; sorted and deduplicated, as
    # labels.NewRequirement keeps them in a set: their order and repeats mean nothing.
    return Requirement(key, operator, tuple(sorted(set(values))))


def selector_operator(field: Field) -> Operator:
    """"not a valid selector operator" for anything but the four."""
    text = field.required_string()
    for operator in Operator:
        if operator.value == text:
            return operator
    supported = ", ".join(f'"{o.value}"' for o in Operator)
    field.fail(f"Unsupported value {quoted(text)}: supported values: {supported}")


def requirement_values(field: Field) -> list[str]:
    """Each value IsValidLabelValue."""
    values = []
    for item in field.items():
        value = item.string()
        problem = label_value_problem(value)
        if problem:
            item.fail(f"invalid value {quoted(value)}: {problem}")
        values.append(value)
    return values
