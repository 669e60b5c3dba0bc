"""tfm-export: export a training run for TensorFlow Serving, or show what an export serves.

  tfm-export RUN_DIR [--export-base DIR]
      Rebuild the run's model from RUN_DIR/run_config.json, restore its latest checkpoint and
      write the next version, BASE/<model>/<version>/, without retraining. BASE defaults to
      RUN_DIR/export; point it at the directory TensorFlow Serving reads (deploy/models) to
      publish a new version to a running server.

  tfm-export --list PATH
      Show the signatures of an export with the name, dtype and shape of every input and
      output (-1 = any size). PATH is a version directory, a model directory (its latest
      version), or an export base or run directory (the latest version of every model).

The run's "script" (run_config.json) names the training script that knows how to rebuild its
model: tfm-export calls that script's export_run, so every model exports the same way.
"""

import argparse
import importlib
import pathlib
import sys

from scripts import _run


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfm-export", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=pathlib.Path,
                        help="a training run directory (or, with --list, an export)")
    parser.add_argument("--export-base", type=pathlib.Path, default=None,
                        help="write BASE/<model>/<version>/ here (default: RUN_DIR/export)")
    parser.add_argument("--list", action="store_true",
                        help="show the signatures, inputs and outputs of the export at PATH "
                             "instead of exporting")
    return parser


def training_script(run_dir):
    """The training script module that wrote `run_dir`, checked to be able to export it."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise _run.UserError(f"{run_dir} does not exist")
    run = _run.RunDirectory(run_dir)
    config = run.read_config()
    script = config.get("script")
    if not isinstance(script, str) or not script.isidentifier():
        raise _run.UserError(f"{run.config_path} names no training script (its \"script\" key "
                             f"is {script!r}); was it written by rbm-train, ae-train or dbn-train?")
    module_name = f"scripts.{script}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise _run.UserError(f"{run.config_path} names an unknown training script "
                             f"{script!r} (no module {module_name})") from None
    if not callable(getattr(module, "export_run", None)):
        raise _run.UserError(f"training script {script!r} cannot export (no export_run)")
    run.checkpoint_to_export()  # before the script builds a model for nothing
    return module


def export_run(run_dir, export_base=None):
    """Export the latest checkpoint of `run_dir` as the next version; returns its path."""
    module = training_script(run_dir)
    return pathlib.Path(module.export_run(pathlib.Path(run_dir), export_base))


def format_signatures(export_dir):
    """Lines describing every signature of the export at `export_dir`."""
    export_dir = pathlib.Path(export_dir)
    lines = [str(export_dir)]
    assets = sorted(p.name for p in (export_dir / "assets").glob("*") if p.is_file())
    if assets:
        lines.append(f"  assets: {', '.join(assets)}")
    for signature, tensors in _run.read_signatures(export_dir).items():
        lines.append(f"  signature {signature!r}")
        for side in ("inputs", "outputs"):
            lines.append(f"    {side}:")
            width = max(len(name) for name in tensors[side]) if tensors[side] else 0
            for name, (dtype, shape) in tensors[side].items():
                shown = "any rank" if shape is None else str([-1 if d is None else d for d in shape])
                lines.append(f"      {name:<{width}}  {dtype:<8} {shown}")
    return lines


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.list:
        if args.export_base is not None:
            raise _run.UserError("--export-base is for exporting; --list reads PATH only")
        for export_dir in _run.find_exports(args.path):
            print("\n".join(format_signatures(export_dir)))
        return 0
    export_dir = export_run(args.path, args.export_base)
    print(f"exported {export_dir}")
    print("\n".join(format_signatures(export_dir)[1:]))
    return 0


def main(argv=None):
    return _run.run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
