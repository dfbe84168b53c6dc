"""Penultimate features without rewriting the model: a forward pre-hook on the classification head's input."""

import contextlib
from collections.abc import Iterator

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

    2-D inputs are kept; `(batch, C, H, W)` maps (including `(batch, C, 1, 1)`) are averaged over space; `(batch, T, D)`
    sequences are averaged over `T`.
    """
    if x.dim() == 2:
        return x
    if x.dim() == 4:
        return x.flatten(2).mean(-1)
    if x.dim() == 3:
        return x.mean(1)
    raise ValueError(f"Cannot pool a head input of shape {tuple(x.shape)} to (batch, features): {_FIX}.")


class PenultimateFeatures:
    """Records the pooled, detached input of the classification head while `capturing()` is active.

    The forward hook exists only inside `capturing()`, so the user's model carries no hook of ours before or after.

    Args:
        model: The (unwrapped) main model.
        module_name: Dotted name of the head; `None` detects it with `find_classification_head`.
    """

    def __init__(self, model: nn.Module, *, module_name: str | None = None):
        self.module_name, self.head = find_classification_head(model, module_name=module_name)
        self._features: Tensor | None = None

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        inputs = [*args, *kwargs.values()]
        if not inputs or not hasattr(inputs[0], "detach"):
            raise ValueError(f"The head {self.module_name!r} was not called with a tensor input: {_FIX}.")
        self._features = pool_features(inputs[0].detach())

    @contextlib.contextmanager
    def capturing(self) -> Iterator["PenultimateFeatures"]:
        """Record the head input of forwards run inside this context."""
        self._features = None
        handle = self.head.register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()

    def pop(self) -> Tensor:
        """Return the features of the last captured forward and forget them."""
        if self._features is None:
            raise ValueError(
                f"The head {self.module_name!r} was not called during the forward, so no features were captured: "
                f"{_FIX}."
            )
        features, self._features = self._features, None
        return features
