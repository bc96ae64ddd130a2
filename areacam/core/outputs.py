"""Structured model outputs: the one walker of the trees a model (or a layer) returns.

A model may return a tensor, a tuple or list, a mapping (a dict, torchvision's ``OrderedDict``, Hugging
Face's and diffusers' ``ModelOutput``) or any nesting of them. Every part of areacam that looks inside
such a tree goes through this module: the targets pick the tensor they read (:func:`select_output`),
layer explainers pick and replace a part of what a layer returns (:func:`parts`, :func:`replace_part`),
and the field perturbs every floating tensor of the output (:func:`leaves`, :func:`rebuild`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from torch import Tensor

__all__ = ["OutputSelector", "describe", "detached", "leaves", "parts", "rebuild", "replace_part", "select_output"]

#: How a target picks the part of a model output it reads: ``None`` (the default reading), an int or str
#: key, or a callable applied to the whole output.
OutputSelector = int | str | Callable[[Any], Tensor] | None


def parts(output: Any) -> list[tuple[Any, Any]]:
    """The ``(key, value)`` parts of one level of ``output``: a mapping's items, a sequence's indexed items;
    ``[]`` for a tensor or anything else."""
    if isinstance(output, Mapping):
        return list(output.items())
    if isinstance(output, (tuple, list)):
        return list(enumerate(output))
    return []


def leaves(output: Any) -> list[Tensor]:
    """Every floating tensor of ``output``, depth first, in the order of :func:`parts`."""
    if isinstance(output, Tensor):
        return [output] if output.is_floating_point() else []
    return [leaf for _, value in parts(output) for leaf in leaves(value)]


def rebuild(output: Any, new: list[Tensor]) -> Any:
    """``output`` with its floating tensors replaced, in :func:`leaves` order, by ``new`` (consumed).

    Containers are rebuilt as their own type (a namedtuple by position; a mapping type that cannot be
    built from pairs becomes a plain dict, which reads the same).
    """
    if isinstance(output, Tensor):
        return new.pop(0) if output.is_floating_point() else output
    if isinstance(output, Mapping):
        pairs = [(key, rebuild(value, new)) for key, value in output.items()]
        build: Callable[..., Any] = type(output)
        try:  # by keyword first: a ModelOutput built from one list of pairs would hold that list as its first field
            return build(**dict(pairs)) if _positional(output) else build(pairs)
        except Exception:
            return dict(pairs)
    if isinstance(output, (tuple, list)):
        values = [rebuild(value, new) for value in output]
        if isinstance(output, tuple) and hasattr(output, "_fields"):  # namedtuple
            return type(output)(*values)
        return type(output)(values)
    return output


def detached(output: Any) -> Any:
    """``output`` with every floating tensor detached."""
    return rebuild(output, [leaf.detach() for leaf in leaves(output)])


def replace_part(output: Any, key: Any, value: Tensor) -> Any:
    """``output`` with part ``key`` replaced by ``value``: a new container, the original untouched.

    ``key`` ``None`` means the output itself (``value`` is returned).
    """
    if key is None:
        return value
    if isinstance(output, Mapping):
        new = copy.copy(output) if isinstance(output, MutableMapping) else dict(output)
        new[key] = value
        return new
    items = list(output)
    items[key] = value
    if isinstance(output, list):
        return items
    return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)


def describe(output: Any) -> Any:
    """Shapes for a table: a tensor's shape tuple, else the shapes (or type names) of its parts."""
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, Mapping):
        return {k: tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for k, v in output.items()}
    if isinstance(output, (tuple, list)):
        return [tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__ for o in output]
    return type(output).__name__


def _positional(output: Mapping) -> bool:
    """Whether ``output`` is keyed like a Hugging Face / diffusers ``ModelOutput`` (every key a str): an
    int then indexes it by position, as ``out[0]`` does, and it is rebuilt by keyword."""
    return all(isinstance(key, str) for key in output)


def select_output(output: Any, selector: OutputSelector) -> Tensor:
    """Pick the tensor a target reads from a model output.

    ``None`` takes a tensor as is, a mapping's ``"out"`` entry (torchvision segmentation models),
    else its ``"logits"`` (Hugging Face ``ModelOutput``), else its only tensor entry (diffusers'
    ``sample``), or element 0 of a tuple/list; an int indexes a tuple/list, and a mapping with str keys
    (a ``ModelOutput``) by position as ``out[0]`` does; a str is a key; a callable is applied to the
    whole output.
    """
    if callable(selector):
        picked = selector(output)
    elif selector is None:
        if isinstance(output, Tensor):
            picked = output
        elif isinstance(output, Mapping):
            key = next((k for k in ("out", "logits") if k in output), None)
            tensors = [k for k, v in output.items() if isinstance(v, Tensor)]
            if key is None and len(tensors) == 1:  # one tensor entry (diffusers' ``sample``): nothing else it can mean
                key = tensors[0]
            if key is None:
                raise KeyError(
                    f"model returned a {type(output).__name__} with neither an 'out' nor a 'logits' entry (keys: "
                    f"{sorted(map(str, output))}); pass output=<key> to the target"
                )
            picked = output[key]
        elif isinstance(output, (tuple, list)) and len(output) > 0:
            picked = output[0]
        else:
            raise TypeError(f"cannot read a tensor from a model output of type {type(output).__name__}")
    elif isinstance(output, Tensor):
        raise TypeError(
            f"output={selector!r} reads part of a structured output, but the model returned a single "
            f"tensor of shape {tuple(output.shape)}; use output=None"
        )
    elif isinstance(output, Mapping) and isinstance(selector, int) and _positional(output):
        values = list(output.values())
        if not -len(values) <= selector < len(values):
            raise IndexError(f"output={selector} is out of range for a {type(output).__name__} of {len(values)} parts")
        picked = values[selector]
    elif isinstance(output, Mapping):
        if selector not in output:
            raise KeyError(f"output={selector!r} is not a key of the model output (keys: {list(output)})")
        picked = output[selector]
    elif isinstance(output, (tuple, list)):
        if not isinstance(selector, int):
            raise TypeError(f"output={selector!r}: a {type(output).__name__} output is indexed by int")
        if not -len(output) <= selector < len(output):
            raise IndexError(f"output={selector} is out of range for a model output of {len(output)} parts")
        picked = output[selector]
    else:
        raise TypeError(f"cannot index a model output of type {type(output).__name__} with {selector!r}")
    if not isinstance(picked, Tensor):
        raise TypeError(f"the selected model output is a {type(picked).__name__}, not a tensor")
    return picked
