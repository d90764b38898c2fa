"""An indexed walk for pkilint's validator containers: the same findings, in the same order, with less work.

pkilint's ``ValidatorContainer`` visits every node of the decoded document and asks *every* validator whether it
applies (``match``); for a JPKI certificate that is ~5,700 ``match`` calls, about a quarter of the lint time. Most
of those answers depend only on the node's path and the Python type of its value: ``NodeVisitor.match`` checks
``path`` (equality), ``path_re`` (a regular expression on the path) and ``pdu_class`` (an ``isinstance``) before
the checks that look at the value itself (``pdu_supertype``, ``predicate``).

:func:`install` gives each container of a validator tree a walk that remembers, per ``(path, type)``, which
validators can apply there, and asks only those — in their original order, with the value checks still made on
every node. A validator is pre-filtered only when its ``match`` is one we have read and know to be
``NodeVisitor.match`` conjoined with more conditions (:data:`CONJUNCTIVE_MATCHES`); any other ``match`` is called
on every node, as pkilint does. ``tests/ca/test_lint_walk.py`` lints a corpus of good and faulty certificates,
CRLs and OCSP responses with and without this walk and requires identical findings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pkilint.document import NodeVisitor
from pkilint.pkix.certificate.certificate_extension import ExtendedKeyUsageCriticalityValidator
from pkilint.pkix.extension import ExtensionCriticalityValidator
from pkilint.validation import TypeMatchingValidator, ValidatorContainer

# ``match`` implementations that begin with ``NodeVisitor.match`` (``super().match(node) and …``): pkilint 0.13.
CONJUNCTIVE_MATCHES = frozenset(
    {
        NodeVisitor.match,
        TypeMatchingValidator.match,
        ExtensionCriticalityValidator.match,
        ExtendedKeyUsageCriticalityValidator.match,
    }
)
MAX_REMEMBERED_PLACES = 4096  # (path, type) pairs per container; a strange document cannot grow it without bound

Check = Callable[[Any], bool] | None  # what is left to ask at the node itself; None: nothing, it applies


def _static_match(validator: Any, path: str, pdu_type: type) -> bool:
    """The part of ``NodeVisitor.match`` that depends only on the node's path and its value's type."""
    if validator._path is not None and validator._path != path:
        return False
    if validator._path_re is not None and validator._path_re.match(path) is None:
        return False
    return validator._pdu_class is None or issubclass(pdu_type, validator._pdu_class)


def _remaining_check(validator: Any) -> Check:
    """What still has to be asked at each node once the static part matched."""
    match = type(validator).match
    if match is not NodeVisitor.match:
        return validator.match  # a conjunctive match: asking it again costs little and keeps its own conditions
    supertype, predicate = validator._pdu_supertype, validator._predicate
    if supertype is None and predicate is None:
        return None

    def check(node: Any) -> bool:
        if supertype is not None and not supertype.isSuperTypeOf(node.pdu):
            return False
        return predicate is None or bool(predicate(node))

    return check


class IndexedWalk:
    """The walk of one container (replaces its ``_validate_rec``)."""

    def __init__(self, container: ValidatorContainer) -> None:
        self._plans = [
            (validator, type(validator).match in CONJUNCTIVE_MATCHES, _remaining_check(validator))
            for validator in container.validators
        ]
        self._places: dict[tuple[str, type], list[tuple[Any, Check]]] = {}

    def _applicable(self, path: str, pdu_type: type) -> list[tuple[Any, Check]]:
        key = (path, pdu_type)
        chosen = self._places.get(key)
        if chosen is None:
            chosen = [
                (validator, check if prefiltered else validator.match)
                for validator, prefiltered, check in self._plans
                if not prefiltered or _static_match(validator, path, pdu_type)
            ]
            if len(self._places) >= MAX_REMEMBERED_PLACES:
                self._places.clear()
            self._places[key] = chosen
        return chosen

    def __call__(self, node: Any, results: list[Any]) -> None:
        for validator, check in self._applicable(node.path, type(node.pdu)):
            if check is None or check(node):
                result = validator.validate_wrapper(node)
                if isinstance(result, list):
                    results += result
                else:
                    results.append(result)
        for child in node.children.values():
            self(child, results)


def install(validator: Any) -> None:
    """Give every container in the tree under ``validator`` an indexed walk (in place; idempotent)."""
    if not isinstance(validator, ValidatorContainer):
        return
    validator._validate_rec = IndexedWalk(validator)  # type: ignore[method-assign]
    for child in validator.validators:
        install(child)
