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
