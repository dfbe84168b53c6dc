"""Penultimate features without rewriting the model: a forward pre-hook on the classification head's input."""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, nn

__all__ = ["PenultimateFeatures", "find_classification_head", "pool_features"]

_FIX = "pass mlc_feature_module='<dotted name of the head>' (e.g. 'classifier' or 'fc')"


def find_classification_head(model: nn.Module, *, module_name: str | None = None) -> tuple[str, nn.Module]:
    """Find the classification head whose input is the penultimate feature.

    Looks, in order, for `module_name`, a timm model's `get_classifier()` (inside `TimmWrapperForImageClassification`
    as `timm_model`, or the model itself), a `classifier` attribute (transformers' ViT, ResNet, ConvNext, BERT...),
    and the last `nn.Linear` of the model.

    Args:
        model: The (unwrapped) main model.
        module_name: Dotted name of the head, as in `model.named_modules()`.

    Returns:
        The head's dotted name and the module.
    """
    names = {id(m): n for n, m in model.named_modules()}
    if module_name is not None:
        try:
            return module_name, model.get_submodule(module_name)
        except AttributeError:
            linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-5:]
            raise ValueError(
                f"mlc_feature_module={module_name!r} is not a submodule of {type(model).__name__}; "
                f"its last nn.Linear modules are {linears}."
            ) from None
    candidates = []
    timm_model = getattr(model, "timm_model", model)
    if hasattr(timm_model, "get_classifier"):
        candidates.append(timm_model.get_classifier())
    candidates.append(getattr(model, "classifier", None))
    for head in candidates:
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity) and id(head) in names:
            return names[id(head)], head
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    raise ValueError(f"Could not find the classification head of {type(model).__name__}: {_FIX}.")


def pool_features(x: Tensor) -> Tensor:
    """Pool a head input to one vector per sample, `(batch, d)`.

    2-D inputs are kept; `(batch, C, H, W)` maps (including `(batch, C, 1, 1)`) are averaged over space. Sequences
    `(batch, T, D)` are refused: an average over `T` would include the padded positions (`PenultimateFeatures` takes
    the input of the head's last `nn.Linear` instead).
    """
    if x.dim() == 2:
        return x
    if x.dim() == 4:
        return x.flatten(2).mean(-1)
    raise ValueError(f"Cannot pool a head input of shape {tuple(x.shape)} to (batch, features): {_FIX}.")


class PenultimateFeatures:
    """Records the pooled, detached input of the classification head while `capturing()` is active.

    A head that receives a sequence `(batch, T, D)` (a Roberta-family `classifier` picks its first token itself) gives
    the input of its last inner `nn.Linear` instead, e.g. `out_proj`'s `(batch, D)` after `dense` and `tanh`; averaging
    the sequence would mix in the padded positions, so a row's features would depend on its batch-mates. The hooks
    exist only inside `capturing()`, so the user's model carries no hook of ours before or after.

    Args:
        model: The (unwrapped) main model.
        module_name: Dotted name of the head; `None` detects it with `find_classification_head`.

    Attributes:
        source_name: After `pop()`, the dotted name of the module whose input the features are.
        output_width: After `pop()`, the last output dimension of that module (channels for a 4-D output), the
            number of classes for a classification head; `None` when its output is not a tensor.
    """

    def __init__(self, model: nn.Module, *, module_name: str | None = None):
        self.module_name, self.head = find_classification_head(model, module_name=module_name)
        linears = [(n, m) for n, m in self.head.named_modules() if isinstance(m, nn.Linear)]
        self.inner_name, self.inner = (
            (".".join(filter(None, (self.module_name, linears[-1][0]))), linears[-1][1]) if linears else (None, None)
        )
        self.source_name: str | None = None
        self.output_width: int | None = None
        self._inputs: dict[str, Tensor] = {}
        self._output_shapes: dict[str, tuple[int, ...] | None] = {}

    def _record_input(self, key: str, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            inputs = [*args, *kwargs.values()]
            if not inputs or not hasattr(inputs[0], "detach"):
                raise ValueError(f"The head {name!r} was not called with a tensor input: {_FIX}.")
            self._inputs[key] = inputs[0].detach()

        return hook

    def _record_output(self, key: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            self._output_shapes[key] = tuple(output.shape) if isinstance(output, Tensor) else None

        return hook

    @contextlib.contextmanager
    def capturing(self) -> Iterator["PenultimateFeatures"]:
        """Record the head input of forwards run inside this context."""
        self._inputs, self._output_shapes = {}, {}
        modules = [("head", self.module_name, self.head)]
        if self.inner is not None and self.inner is not self.head:
            modules.append(("inner", self.inner_name, self.inner))
        handles = []
        try:
            for key, name, module in modules:
                handles.append(module.register_forward_pre_hook(self._record_input(key, name), with_kwargs=True))
                handles.append(module.register_forward_hook(self._record_output(key)))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def pop(self) -> Tensor:
        """Return the features of the last captured forward and forget them."""
        inputs, shapes = self._inputs, self._output_shapes
        self._inputs, self._output_shapes = {}, {}
        if "head" not in inputs:
            raise ValueError(
                f"The head {self.module_name!r} was not called during the forward, so no features were captured: "
                f"{_FIX}."
            )
        key, name, x = "head", self.module_name, inputs["head"]
        if x.dim() == 3:
            sequence = x
            key, name = "head" if self.inner is self.head else "inner", self.inner_name
            x = inputs.get(key)
            head_output = shapes.get("head")
            per_position = isinstance(self.head, nn.Linear) and head_output is not None and len(head_output) == 3
            if (x is None or x.dim() != 2) and per_position:
                raise ValueError(
                    f"The head {self.module_name!r} scores every position of a sequence {tuple(sequence.shape)} and "
                    "the model picks one position's scores after it (as GPT-2's and Llama's *ForSequenceClassification "
                    "do with the last token), so no module receives a pooled (batch, features) vector for the meta "
                    "model: meta label correction does not support this architecture. Use a model that pools before "
                    "its head (BERT, RoBERTa, DistilBERT...), or LiLAWTrainer / ELRTrainer, which need no features."
                )
            if x is None or x.dim() != 2:
                found = (
                    "has no inner nn.Linear"
                    if self.inner is None
                    else f"its last nn.Linear {name!r} receives " + ("nothing" if x is None else f"{tuple(x.shape)}")
                )
                raise ValueError(
                    f"The head {self.module_name!r} receives a sequence of shape {tuple(sequence.shape)} and "
                    f"{found}, so there is no (batch, features) vector to take (averaging the sequence would mix "
                    "in its padded positions): pass mlc_feature_module='<dotted name of the module whose input is "
                    "the pooled (batch, features) vector>' (e.g. the head's output projection)."
                )
        shape = shapes.get(key)
        self.source_name = name
        self.output_width = None if shape is None else shape[1] if len(shape) == 4 else shape[-1]
        return pool_features(x)
