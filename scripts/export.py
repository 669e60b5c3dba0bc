"""tfm-export: export a training run for TensorFlow Serving, or show what an export serves.

  tfm-export RUN_DIR [--export-base DIR]
      Rebuild the run's model from RUN_DIR/run_config.json, restore its latest checkpoint and
      write the next version, BASE/<model>/<version>/, without retraining; the run's
      metrics.json notes the new export. BASE defaults to RUN_DIR/export; point it at the
      directory TensorFlow Serving reads (deploy/models) to publish a new version to a running
      server.

  tfm-export --list PATH
      Show the signatures of an export with the name, dtype and shape of every input and
      output (-1 = any size). PATH is a version directory, a model directory (its latest
      version), or an export base or run directory (the latest version of every model).

The run's "model" (run_config.json) says which family's library exports it: rbm (the
recommender), dbn, the autoencoders dense, conv, denoising and vae, or the autoencoder
recommenders autorec, mult-vae and ease.
"""

import argparse
import importlib
import pathlib
import sys

from scripts import _cli

# run_config.json's "model" -> (module, function(run_dir, export_base=None) -> export path);
# imported only when a run of that family is exported
EXPORTERS = {
    "rbm": ("rbm_tf.recommender_training", "export_recommender_run"),
    "dbn": ("rbm_tf.dbn_training", "export_dbn_run"),
    "rating-rbm": ("rbm_tf.rating_recommender", "export_rating_run"),
    **{model: ("autoencoders_tf.training", "export_autoencoder_run")
       for model in ("dense", "conv", "denoising", "vae")},
    **{model: ("autoencoders_tf.recommender_training", "export_rec_run")
       for model in ("autorec", "mult-vae", "ease")},
}


def build_parser():
    parser = argparse.ArgumentParser(prog="tfm-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=pathlib.Path,
                        help="a training run directory (or, with --list, an export)")
    parser.add_argument("--export-base", type=pathlib.Path, default=None,
                        help="write BASE/<model>/<version>/ here (default: RUN_DIR/export)")
    parser.add_argument("--list", action="store_true",
                        help="show the signatures, inputs and outputs of the export at PATH "
                             "instead of exporting")
    return parser


def export_run(run_dir, export_base=None):
    """Export the latest checkpoint of `run_dir` through its family's library; returns the path."""
    from pipelines.errors import RunError
    from pipelines.runs import RunDirectory

    run = RunDirectory(run_dir)
    if not run.path.is_dir():
        raise RunError(f"{run.path} does not exist")
    model = run.read_config().get("model")
    if model is None:
        raise RunError(f"{run.config_path} names no model (tfm-export exports {', '.join(EXPORTERS)})")
    if not isinstance(model, str) or model not in EXPORTERS:
        raise RunError(f"{run.config_path}: tfm-export does not know model {model!r} "
                       f"(it exports {', '.join(EXPORTERS)})")
    module, function = EXPORTERS[model]
    return pathlib.Path(getattr(importlib.import_module(module), function)(run.path, export_base))


def format_signatures(export_dir):
    """Lines describing every signature of the export at `export_dir`."""
    from pipelines.signatures import read_signatures

    export_dir = pathlib.Path(export_dir)
    lines = [str(export_dir)]
    assets = sorted(p.name for p in (export_dir / "assets").glob("*") if p.is_file())
    if assets:
        lines.append(f"  assets: {', '.join(assets)}")
    for signature, tensors in read_signatures(export_dir).items():
        lines.append(f"  signature {signature!r}")
        for side in ("inputs", "outputs"):
            lines.append(f"    {side}:")
            width = max((len(name) for name in tensors[side]), default=0)
            for name, (dtype, shape) in tensors[side].items():
                shown = "any rank" if shape is None else str([-1 if d is None else d for d in shape])
                lines.append(f"      {name:<{width}}  {dtype:<8} {shown}")
    return lines


def body(args):
    from pipelines.errors import UserError
    from pipelines.runs import find_exports

    if args.list:
        if args.export_base is not None:
            raise UserError("--export-base is for exporting; --list reads PATH only")
        for export_dir in find_exports(args.path):
            print("\n".join(format_signatures(export_dir)))
        return 0
    export_dir = export_run(args.path, args.export_base)
    print(f"exported {export_dir}")
    print("\n".join(format_signatures(export_dir)[1:]))
    return 0


def main(argv=None):
    return _cli.run(build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
