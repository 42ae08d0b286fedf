"""Method components of the ``knn_vector`` mapping: parsing a ``method`` (or an ``encoder``) and validating
its parameters (vector-semantics.md §1.5).

This module mirrors OpenSearch k-NN's ``MethodComponent`` / ``Parameter`` machinery
(``K/index/engine/MethodComponent.java``, ``Parameter.java``, ``validation/ParameterValidator.java``) closely
enough to reproduce its error texts: a parameter is checked for its Java type first (a JSON integer is an
``Integer`` only inside the int32 range, ``16.0`` is a ``Double``, ``"16"`` a ``String``), then by its
validator; a nested component (the ``encoder``) that fails reports only
``parameter validation failed for MethodComponentContext parameter [encoder].``, as upstream does.

The engines' methods and encoders built from these pieces, and the encoder rules, are in
:mod:`segstore.mapping.encoders`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from segstore.errors import MapperParsingError

__all__ = [
    "Component", "Ctx", "Version", "ComponentSpec", "MethodSpec", "Param", "IntParam", "BoolParam", "StrParam",
    "DoubleParam", "ComponentParam", "parse_method", "parse_component", "java_type", "validation_failed",
    "ParsedMethod",
]

Version = tuple[int, int, int]

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def validation_failed(*errors: str) -> MapperParsingError:
    """An OpenSearch ``ValidationException`` as its message renders: ``Validation Failed: 1: a;2: b;``."""
    return MapperParsingError("Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(errors, 1)))


@dataclass(frozen=True)
class Component:
    """A parsed ``MethodComponentContext``: ``{"name": ..., "parameters": {...}}``; dict-valued parameters are
    themselves components (as upstream parses them)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "parameters": {k: v.to_dict() if isinstance(v, Component) else v for k, v in self.params.items()}}


@dataclass
class Ctx:
    """What parameter validation and defaults depend on (upstream's ``KNNMethodConfigContext``)."""

    data_type: str
    dimension: int | None
    version: Version
    compression: str | None = None  # resolved level (or the user's while resolving)
    user_compression: str | None = None
    mode: str | None = None


def java_type(value: Any) -> str:
    """The Java class a JSON value parses to in OpenSearch's mapping maps."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if _INT_MIN <= value <= _INT_MAX else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, Component):
        return "MethodComponentContext"
    if value is None:
        return "null"
    return type(value).__name__


# ------------------------------------------------------------------------------------------------- parsing


def _java_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)


def _parse_params(value: Any) -> dict[str, Any]:
    return {k: parse_component(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def parse_component(value: Any) -> Component:
    """``MethodComponentContext.parse`` (a nested component such as an encoder)."""
    if not isinstance(value, Mapping):
        raise MapperParsingError("Unable to parse MethodComponent")
    name = ""
    params: dict[str, Any] = {}
    for key, v in value.items():
        if key == "name":
            if not isinstance(v, str):
                raise MapperParsingError("Component name should be a string")
            name = v
        elif key == "parameters":
            if v is None:
                params = {}
                continue
            if not isinstance(v, Mapping):
                raise MapperParsingError("Unable to parse parameters for  method component")
            params = _parse_params(v)
        else:
            raise MapperParsingError(f"Invalid parameter for MethodComponentContext: {key}")
    if not name:
        raise MapperParsingError("name needs to be set")
    return Component(name, params)


@dataclass(frozen=True)
class ParsedMethod:
    """A parsed top-level ``method`` (upstream's ``KNNMethodContext`` before resolution)."""

    component: Component
    engine: str | None  # lower-cased, validated; None when not given
    space_type: str | None  # lower-cased, validated; None when not given ("undefined" counts as not given)
    engine_configured: bool = False


def parse_method(value: Any, spaces: tuple[str, ...], engines: tuple[str, ...]) -> ParsedMethod:
    """``KNNMethodContext.parse``: the ``method`` object of a mapping."""
    if not isinstance(value, Mapping):
        raise MapperParsingError('Unable to parse mapping into KNNMethodContext. Object not of type "Map"')
    engine: str | None = None
    engine_configured = False
    space: str | None = None
    name = ""
    params: dict[str, Any] = {}
    for key, v in value.items():
        if key == "engine":
            if v is not None and not isinstance(v, str):
                raise MapperParsingError('"engine" must be a string')
            if v is not None:
                if v.lower() not in engines:
                    raise MapperParsingError(f"Invalid engine: {v}")
                engine = v.lower()
            engine_configured = True
        elif key == "space_type":
            if v is not None and not isinstance(v, str):
                raise MapperParsingError('"space_type" must be a string')
            low = v.lower() if isinstance(v, str) else None
            if low != "undefined" and low not in spaces:
                raise MapperParsingError(f"Invalid space_type: {_java_str(v)}")
            space = None if low == "undefined" else low
        elif key == "name":
            if not isinstance(v, str):
                raise MapperParsingError("namehas to be a string")  # sic: NAME + "has to be a string"
            name = v
        elif key == "parameters":
            if v is None:
                params = {}
                continue
            if not isinstance(v, Mapping):
                raise MapperParsingError("Unable to parse parameters for main method component")
            params = _parse_params(v)
        else:
            raise MapperParsingError(f"Invalid parameter: {key}")
    if not name:
        raise MapperParsingError("name needs to be set")
    return ParsedMethod(Component(name, params), engine, space, engine_configured)


# ---------------------------------------------------------------------------------------------- parameters


class Param:
    """One method-component parameter: a Java type and a validator."""

    java: str = ""

    def __init__(self, name: str, default: Any, check: Callable[[Any, Ctx], bool]) -> None:
        self.name = name
        self._default = default
        self.check = check

    def default(self, ctx: Ctx) -> Any:
        return self._default(ctx) if callable(self._default) else self._default

    def validate(self, value: Any, ctx: Ctx) -> list[str]:
        if java_type(value) != self.java:
            return [f"value is not an instance of {self.java} for {self.java} parameter [{self.name}]."]
        if not self.check(value, ctx):
            return [f"parameter validation failed for {self.java} parameter [{self.name}]."]
        return []


class IntParam(Param):
    java = "Integer"


class BoolParam(Param):
    java = "Boolean"


class StrParam(Param):
    java = "String"


class DoubleParam(Param):
    java = "Double"

    def validate(self, value: Any, ctx: Ctx) -> list[str]:
        if value is None:
            return [f'Null value provided for Double parameter "{self.name}".']
        if java_type(value) == "Integer" and value == 0:
            value = 0.0  # upstream: if (value.equals(0)) value = 0.0
        return super().validate(value, ctx)


class ComponentParam(Param):
    """A parameter whose value is a component (``encoder``)."""

    java = "MethodComponentContext"

    def __init__(self, name: str, default: Any, components: Callable[[Ctx], Mapping[str, ComponentSpec]]) -> None:
        super().__init__(name, default, lambda v, ctx: True)
        self.components = components

    def validate(self, value: Any, ctx: Ctx) -> list[str]:
        if not isinstance(value, Component):
            return [f"value is not an instance of for MethodComponentContext parameter [{self.name}]."]  # sic
        spec = self.components(ctx).get(value.name)
        if spec is None or spec.validate(value, ctx):
            return [f"parameter validation failed for MethodComponentContext parameter [{self.name}]."]
        return []


@dataclass(frozen=True)
class ComponentSpec:
    """A method or encoder: its parameters, supported data types and whether it needs training."""

    name: str
    params: Mapping[str, Param]
    data_types: frozenset[str]
    requires_training: bool = False

    def validate(self, comp: Component, ctx: Ctx) -> list[str]:
        """``MethodComponent.validate``: data type first, then every given parameter in order."""
        errors = []
        if ctx.data_type not in self.data_types:
            errors.append(f'Method "{self.name}" is not supported for vector data type "{ctx.data_type.upper()}".')
        for key, value in comp.params.items():
            param = self.params.get(key)
            if param is None:
                errors.append(f"Unknown parameter '{key}' found")
            else:
                errors.extend(param.validate(value, ctx))
        return errors

    def with_defaults(self, comp: Component, ctx: Ctx) -> dict[str, Any]:
        """The given parameters plus the defaults of the missing ones (``getParameterMapWithDefaultsAdded``)."""
        out = dict(comp.params)
        for name, param in self.params.items():
            if name not in out:
                default = param.default(ctx)
                if default is not None:
                    out[name] = default
        return out


@dataclass(frozen=True)
class MethodSpec:
    """An engine's method (``AbstractKNNMethod``): a component plus the spaces it supports."""

    engine: str
    component: ComponentSpec
    spaces: frozenset[str]

    @property
    def name(self) -> str:
        return self.component.name

    def validate(self, comp: Component, space: str, ctx: Ctx) -> list[str]:
        errors = []
        if space not in self.spaces:
            errors.append(f'"{self.name}" with "{self.engine}" configuration does not support space type: "{space}".')
        errors.extend(self.component.validate(comp, ctx))
        return errors

    def requires_training(self, comp: Component, ctx: Ctx) -> bool:
        if self.component.requires_training:
            return True
        for key, value in comp.params.items():
            param = self.component.params.get(key)
            if isinstance(param, ComponentParam) and isinstance(value, Component):
                spec = param.components(ctx).get(value.name)
                if spec is not None and spec.requires_training:
                    return True
        return False
