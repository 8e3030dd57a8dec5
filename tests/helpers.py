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
