"""lamforge: build a Large Action Model end to end on LibreOffice Writer."""

__version__ = "0.1.0"
