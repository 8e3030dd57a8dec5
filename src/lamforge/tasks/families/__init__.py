"""Task families, one module per category. Importing this package registers them all."""

from lamforge.tasks.families import character, editing, files, insert, page, paragraph  # noqa: F401
