"""The dataset records shared by data, train and eval: task-plan pairs (phase 1) and step samples (phases 2-4,
the reward model, offline evaluation), with the structured decision state each step was taken from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from lamforge.models.relevance import filter_controls
from lamforge.prompt import render_prompt
from lamforge.schema import HistoryItem, Observation

class PlanPair(BaseModel):
    """A task-plan pair (phase-1 data). `origin` says how it was made: 'help', 'evolved:compose', 'evolved:llm', ..."""

    task_id: str
    task: str
    plan: list[str]
    source_page: str = ""
    origin: str = "help"


class StepState(BaseModel):
    """Everything one decision is made from: the task, the step number, the observation the model was shown, its
    memory of past steps and the plan it wrote last. `messages()` renders it with the one prompt renderer.

    Data keeps this structure, not rendered text, so a change to the prompt needs no new data: training, offline
    evaluation and the runtime all render at the time they run, with the renderer of the code they run.
    """

    task: str
    step: int
    observation: Observation
    history: list[HistoryItem] = Field(default_factory=list)
    plan: list[str] | None = None

    def messages(self) -> list[dict[str, str]]:
        return render_prompt(self.task, self.step, self.observation, self.history, self.plan)

    def shown(self, max_controls: int | None) -> "StepState":
        """This state as a model trained with `max_controls` sees it: the controls most related to the task
        (models/relevance.py); itself when max_controls is None or 0. Training, offline evaluation and the agent
        loop all filter here, so a model runs on the filtering it learned on."""
        shown = filter_controls(self.observation, self.task, max_controls, self.plan)
        return self if shown is self.observation else self.model_copy(update={"observation": shown})


LEGACY_SAMPLE = (
    "this step sample was recorded by an older lamforge, which stored only the rendered prompt text, not the "
    "observation it was rendered from; the prompt cannot be re-rendered from it. Collect the data again with "
    "`lamforge data collect` (or rerun the pipeline's collection stages into a new folder)"
)


class StepSample(BaseModel):
    """One state -> action sample (phases 2-4, reward model, offline eval).

    `state` is what the model decided from (rendered by StepState.messages at training and evaluation time);
    `target` is Action.to_json() of the step taken. `success` is the outcome of the whole trajectory, which the
    reward model labels +1/-1. `acceptable` lists control names equivalent to the target's control, for Object Acc.
    """

    sample_id: str
    trajectory_id: str
    task_id: str
    family: str = ""
    category: str = ""
    state: StepState
    target: str
    success: bool = True
    acceptable: list[str] = Field(default_factory=list)
    source: str = ""  # demonstrator or model that produced the step

    @model_validator(mode="before")
    @classmethod
    def _not_legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "messages" in data and "state" not in data:
            raise ValueError(LEGACY_SAMPLE)
        return data

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def task(self) -> str:
        return self.state.task

    def messages(self) -> list[dict[str, str]]:
        return self.state.messages()
