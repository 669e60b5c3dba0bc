"""Command-line entry points: parse arguments, wire a pipeline to a model, write a run directory."""
