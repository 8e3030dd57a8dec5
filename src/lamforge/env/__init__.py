"""The environment stage: a real LibreOffice Writer window as a gymnasium env, and its document state."""

from lamforge.env.docstate import DocState
from lamforge.env.grounding import Grounding, ground
from lamforge.env.office import OfficeError, OfficeNotInstalled
from lamforge.env.writer_env import WriterEnv

__all__ = ["DocState", "Grounding", "OfficeError", "OfficeNotInstalled", "WriterEnv", "ground"]
