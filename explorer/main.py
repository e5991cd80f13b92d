"""Entry point of ``panel serve explorer [--args ...]``: parse the app's options, serve the Explorer.

Options (after ``--args``)::

    --data PATH          MNIST / Morpho-MNIST folder, IDX images file or .npy/.npz array (opened once,
                         shared by every session)
    --decoder MODEL      a generative model's decoder: an ONNX file or package.module:function (adds the
                         Model tab)
    --latent-dim D       its number of latents, when the decoder cannot tell
    --data-root DIR      the folder the path boxes may use (repeatable); without one a served app has its
                         path boxes off (uploads still work), whatever address it listens on

Server options belong to ``panel serve`` itself, before ``--args``: uploads up to
``MORPHO_MAX_UPLOAD_MB`` (default 50) need ``--websocket-max-message-size`` (see
:func:`explorer.limits.websocket_max_message_size`; ``morpho serve`` passes it)::

    panel serve explorer --websocket-max-message-size 67666667 --args --data-root /srv/mnist
"""
import argparse
import sys

import panel as pn

from explorer import Explorer, warmup


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def parse_args(argv):
    """The app's options (unknown ones are ignored: ``panel serve`` may pass its own)."""
    parser = argparse.ArgumentParser(prog="panel serve explorer --args")
    parser.add_argument("--data", default=None, help="MNIST / Morpho-MNIST folder, or .npy/.npz array")
    parser.add_argument("--decoder", default=None, help="ONNX file or package.module:function")
    parser.add_argument("--latent-dim", type=_positive_int, default=None, help="the decoder's latents")
    parser.add_argument("--data-root", action="append", default=[], metavar="DIR",
                        help="folder the path boxes may use (repeatable)")
    args, _ = parser.parse_known_args(argv)
    return args


pn.extension(notifications=False)
# once per server process: the kernels compile in a child process a few seconds after the first page is
# on screen (sooner than that, the compiler's core is taken from the first page's drawing)
warmup.start(wait=10.0)
pn.state.onload(lambda: warmup.go(delay=3.0))
_args = parse_args(sys.argv[1:])
Explorer(data=_args.data, decoder=_args.decoder, latent_dim=_args.latent_dim,
         data_roots=_args.data_root).servable()
