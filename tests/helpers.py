"""Small helpers shared by tests that drive the real app."""

from lamforge.schema import Action, Observation


def control(obs: dict | Observation, name: str, type_: str | None = None):
    obs = Observation.model_validate(obs) if isinstance(obs, dict) else obs
    for c in obs.controls:
        if c.name == name and (type_ is None or c.type == type_):
            return c
    names = sorted({c.name for c in obs.controls})
    raise AssertionError(f"no control {name!r} in {obs.window} window {obs.window_name!r}; have {names[:80]}")


def click(env, obs, name, type_=None):
    c = control(obs, name, type_)
    obs, _, _, _, info = env.step(Action(control_label=c.label, control_name=c.name, function="click_input"))
    assert info["error"] is None, info
    return obs


def saved_in_layers(model):
    """Context manager: bytes of each tensor autograd saves for the backward pass inside the model's decoder layers
    (keyed by storage, so views count once), parameters aside. For activation-memory tests of training."""
    import contextlib

    import torch

    from lamforge.train.batching import decoder_of

    @contextlib.contextmanager
    def counting():
        kept: dict[int, int] = {}
        inside = [False]
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        hooks = []
        for layer in decoder_of(model).layers:
            hooks.append(layer.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True)))
            hooks.append(layer.register_forward_hook(lambda *_: inside.__setitem__(0, False)))

        def pack(t):
            key = t.untyped_storage().data_ptr()
            if inside[0] and key not in params:
                kept[key] = t.untyped_storage().nbytes()
            return t

        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                yield kept
        finally:
            for hook in hooks:
                hook.remove()

    return counting()


def assert_fits_templates_and_formats_every_phrasing(family_id: str, seed: int) -> None:
    """A family has at least five phrasings, samples on at least one train and one test template, and every phrasing
    formats its parameters completely (no '{name}' or tab left)."""
    import random

    from lamforge.tasks.base import REGISTRY
    from lamforge.tasks.templates import list_templates

    family = REGISTRY[family_id]
    assert len(family.phrasings) >= 5
    fits = {"train": 0, "validation": 0, "test": 0}
    for template in list_templates():
        params = family.sample(template, random.Random(seed))
        if params is None:
            continue
        fits[template.split] += 1
        for i in range(len(family.phrasings)):
            text = family.instruction(params, i)
            assert "{" not in text and "\t" not in text, text
    assert fits["train"] >= 1 and fits["test"] >= 1, fits
