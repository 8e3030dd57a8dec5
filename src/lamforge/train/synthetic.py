"""Small synthetic training records built with the real schema, for tests and the speed bench.

They have the shape and the token lengths of real data (a Writer-like window with tens of controls and a short
document, rendered by `render_prompt`; targets from `Action.to_json`), and a learnable rule: the task names the
control to press. They are never mixed into real training data.
"""

from __future__ import annotations

import random

from lamforge.records import PlanPair, StepSample, StepState
from lamforge.schema import Action, Control, Observation, Paragraph, Status

TOOLBAR = [
    "Bold", "Italic", "Underline", "Strikethrough", "Superscript", "Subscript", "Align Left", "Align Center",
    "Align Right", "Justified", "Toggle Unordered List", "Toggle Ordered List", "Increase Indent", "Decrease Indent",
    "Insert Table", "Insert Image", "Insert Chart", "Insert Page Break", "Insert Hyperlink", "Insert Comment",
    "Undo", "Redo", "Cut", "Copy", "Paste", "Clone Formatting", "Clear Direct Formatting", "Find & Replace",
    "Spelling", "Formatting Marks", "Save", "Open", "New", "Print", "Export as PDF", "Zoom In", "Zoom Out",
]
MENUS = ["File", "Edit", "View", "Insert", "Format", "Styles", "Table", "Form", "Tools", "Window", "Help"]
WORDS = "report budget meeting agenda summary quarterly sales notes draft review project plan results team".split()


def _observation(rng: random.Random, n_controls: int) -> Observation:
    names = MENUS + rng.sample(TOOLBAR, k=min(len(TOOLBAR), max(0, n_controls - len(MENUS))))
    controls = [
        Control(label=str(i), name=name, type="menu item" if name in MENUS else "push button", states=["enabled"])
        for i, name in enumerate(names, start=1)
    ]
    canvas = [
        Paragraph(index=i, text=" ".join(rng.choices(WORDS, k=rng.randint(3, 12))).capitalize(), style="Default")
        for i in range(rng.randint(2, 10))
    ]
    return Observation(title="doc.odt - LibreOffice Writer", window="main", window_name="doc.odt", controls=controls, canvas=canvas)


def synthetic_step_samples(n: int, seed: int = 0, min_controls: int = 15, max_controls: int = 45) -> list[StepSample]:
    """n step samples from n // 2 two-step trajectories (press a button, then finish); about half fail."""
    rng = random.Random(seed)
    samples: list[StepSample] = []
    trajectory = 0
    while len(samples) < n:
        obs = _observation(rng, rng.randint(min_controls, max_controls))
        button = rng.choice([c for c in obs.controls if c.type == "push button"] or obs.controls)
        task = f"Press {button.name} on the paragraph about {rng.choice(WORDS)}"
        success = rng.random() < 0.5
        chosen = button if success else rng.choice(obs.controls)
        actions = [
            Action(thought=f"{button.name} does it", control_label=chosen.label, control_name=chosen.name,
                   function="click_input", args={}, status=Status.CONTINUE, plan=["Check the result"]),
            Action(thought="Done", function="summary", args={"text": "done"}, status=Status.FINISH),
        ]
        task_id = f"synthetic-{seed}-{trajectory}"
        for step, action in enumerate(actions, start=1):
            samples.append(StepSample(
                sample_id=f"{task_id}-s{step}", trajectory_id=f"{task_id}-t", task_id=task_id, family="synthetic",
                state=StepState(task=task, step=step, observation=obs), target=action.to_json(), success=success,
                acceptable=[chosen.name] if action.control_name else [], source="synthetic",
            ))
        trajectory += 1
    return samples[:n]


def synthetic_plan_pairs(n: int, seed: int = 0) -> list[PlanPair]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        button, menu = rng.choice(TOOLBAR), rng.choice(MENUS)
        pairs.append(PlanPair(
            task_id=f"synthetic-plan-{seed}-{i}",
            task=f"Apply {button} to the {rng.choice(WORDS)} paragraph",
            plan=[f"Select the {rng.choice(WORDS)} paragraph", f"Open the {menu} menu", f"Choose {button}"],
            origin="synthetic",
        ))
    return pairs
