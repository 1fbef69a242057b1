"""``tfdet weights list | fetch | convert``: pretrained weights."""

from __future__ import annotations

import argparse


def add_commands(commands) -> None:
    """Adds weights to the ``tfdet`` subcommands."""
    weights = commands.add_parser("weights", help="pretrained weights: list, fetch, convert")
    actions = weights.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the named weights and the cache folder")
    fetch = actions.add_parser("fetch", help="download, verify (sha256), convert and cache named weights")
    fetch.add_argument("names", nargs="+", help="keras:resnet50_imagenet, timm:<model>, torchvision:resnet50")
    convert_weights = actions.add_parser("convert", help="a local checkpoint -> safetensors in tfdet's layout")
    convert_weights.add_argument("source", help=".h5, TF.js folder, .npz or .safetensors")
    convert_weights.add_argument("output", help="the .safetensors file to write")
    weights.set_defaults(handler=_weights)


def _weights(args: argparse.Namespace) -> int:
    from tfdet.weights import NAMED, cache_dir, load_checkpoint, save_checkpoint

    if args.action == "list":
        for name, entry in NAMED.items():
            print(f"keras:{name:24s} {entry.description}")
        print("timm:<model>                   a timm model's safetensors from the Hugging Face hub (online)")
        print("torchvision:resnet18..152      torchvision's ImageNet weights (timm:resnet<N>.tv_in1k)")
        print(f"cache: {cache_dir()} (set TFDET_HOME to move it)")
        return 0
    if args.action == "fetch":
        for name in args.names:
            spec = name if ":" in name else f"keras:{name}"
            checkpoint = load_checkpoint(spec)
            described = {k: checkpoint.metadata[k] for k in ("architecture", "depth", "style")
                         if k in checkpoint.metadata}
            print(f"{spec}: {len(checkpoint.state_dict)} tensors {described}")
        return 0
    checkpoint = load_checkpoint(args.source)
    save_checkpoint(checkpoint, args.output)
    print(f"{args.output}: {len(checkpoint.state_dict)} tensors, metadata {sorted(checkpoint.metadata)}")
    return 0


