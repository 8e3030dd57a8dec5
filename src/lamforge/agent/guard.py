"""The safety guard: a check of one action against the live observation, before anything is executed.

A wrong action has real effects (the paper names safety as the first limitation of LAMs), so the agent blocks
actions whose effects reach beyond the document being edited, unless a policy explicitly allows them. The guard
judges what an action would do, not how it is spelled:

- a click or a typed-in value is judged on the control it really reaches (grounded exactly as the environment
  grounds it) and on the name the model gave;
- keys are judged by what the office would do with them where the focus is (guard_keys.py): Ctrl+Ctrl+Q is
  Ctrl+Q, `x` in the open File menu is Exit, Alt+N in a Save dialog focuses its file name, Enter presses the
  focused or the default button; keys that go where the observation cannot show are run up to there and the rest
  is checked again after the next observation (GuardVerdict.keys_now), or blocked with the reason;
- writes are judged on the resolved path (symlinks and '..' included) of `save_as` and of a file dialog's name.

What is forbidden, and why, is in guard_rules.py. The promise, and how it is tested, is in the README
("Reliability and safety").
"""

from __future__ import annotations

from lamforge.agent.guard_keys import LIST_TYPES, judge_keys
from lamforge.agent.guard_rules import (CONFIRM_BUTTON, RULES, GuardPolicy, GuardVerdict, allowed, blocked,
                                        file_name_field, in_code_window, is_file_dialog, is_file_name_field,
                                        judge_control, judge_dialog_path, judge_write, norm_name, path_inside,
                                        resolve_path)
from lamforge.env.grounding import ground
from lamforge.schema import Action, Control, Observation

__all__ = ["RULES", "GuardPolicy", "GuardVerdict", "check", "path_inside", "resolve_path"]


def _targets(action: Action, obs: Observation) -> list[Control]:
    """The live control the action will act on, found exactly as the environment grounds it."""
    grounding = ground(action, obs)
    control = obs.control(grounding.label) if grounding.label else None
    return [control] if control is not None else []


def check(action: Action, obs: Observation | dict, policy: GuardPolicy | None = None) -> GuardVerdict:
    """Allow or block one action in the current observation; the reason says which rule and why."""
    policy = policy or GuardPolicy()
    obs = Observation.model_validate(obs) if isinstance(obs, dict) else obs
    if in_code_window(obs) and "macros" not in policy.allow and action.function != "summary":
        # Every key types or runs code there, and its menus run it: no action is judged safe.
        return blocked("macros", f"the {obs.window_name!r} window edits and runs macros; no action is allowed in it")
    if action.function == "keyboard_input":
        return judge_keys(action.args["keys"], obs, policy)
    for verdict in (_check_controls(action, obs, policy), _check_writes(action, obs, policy)):
        if not verdict.allowed and verdict.rule not in policy.allow:
            return verdict
    return allowed()


def _check_controls(action: Action, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    if action.function not in ("click_input", "set_edit_text"):
        return allowed()
    # Both the control it really hits and the name the model asked for: either one is enough to block.
    targets: list[Control | str] = list(_targets(action, obs))
    if action.control_name and all(norm_name(c.name) != norm_name(action.control_name) for c in targets):
        targets.append(action.control_name)  # judged as a button of that name
    if action.function == "click_input" and action.args.get("button", "left") != "left":
        # A right click opens a context menu (a middle click pastes): popups the observation never shows, so the
        # keys after it could not be judged. No task's route needs either.
        return blocked("unjudged", f"a {action.args['button']} click opens what the observation does not show (a "
                                   f"context menu); click with the left button")
    double = action.function == "click_input" and bool(action.args.get("double"))
    for target in targets:
        verdict = judge_control(target, obs, policy, double=double)
        if not verdict.allowed and verdict.rule not in policy.allow:
            return verdict
    return allowed()


def _check_writes(action: Action, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    if action.function == "save_as":
        # WriterEnv saves a relative path into its output folder, so it is resolved against that folder here too.
        return judge_write(action.args["path"], policy, base=policy.output_dir)
    if not is_file_dialog(obs):
        return allowed()
    targets = _targets(action, obs)
    if action.function == "click_input" and action.args.get("double") and any(
            c.type.startswith(LIST_TYPES) for c in targets):
        # A double click on a file saves over it (after the office's question); on a folder it goes there, with a
        # list the observation then shows. Neither is needed: a name typed into the name field says where.
        return blocked("write_outside_output", "a double click in a file dialog's list saves over the file it hits "
                                               "or changes the folder; type the name into the name field instead")
    if action.function == "set_edit_text" and any(is_file_name_field(c) for c in targets):
        return judge_dialog_path(action.args["text"], obs, policy)
    if action.function == "click_input" and any(CONFIRM_BUTTON.match(norm_name(c.name)) for c in targets):
        field = file_name_field(obs)
        if field is not None:
            return judge_dialog_path(field.value or "", obs, policy)
    return allowed()
