"""Start the local restoration page: ``python -m oldphoto_jax.serve [--port 8000]
[--checkpoint_dir D] [--host 127.0.0.1]`` (also ``oldphoto-serve``), then open the printed URL.

It listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise
(``--host 0.0.0.0``: every network interface; there is no authentication).
"""
from __future__ import annotations

import argparse
import sys

from oldphoto_jax.inference_defaults import ATTENTION_CHUNK


def parse_args(argv=None) -> argparse.Namespace:
    from oldphoto_jax import bundled
    from oldphoto_jax.serve import DEFAULT_MAX_SIDE, MAX_QUEUED, MAX_UPLOAD_BYTES

    parser = argparse.ArgumentParser(prog="oldphoto-serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0: all interfaces)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--checkpoint_dir", default=str(bundled.DEFAULT_DIR),
                        help="model directory (the bundled model by default)")
    parser.add_argument("--max_side", type=int, default=DEFAULT_MAX_SIDE,
                        help="downscale photos whose longer side exceeds this (0: full size)")
    parser.add_argument("--max_upload_mb", type=float, default=MAX_UPLOAD_BYTES / 2**20,
                        help="largest accepted upload in MiB")
    parser.add_argument("--max_queued", type=int, default=MAX_QUEUED,
                        help="photos that may wait at once; more are refused (503)")
    parser.add_argument("--attention_chunk", type=int, default=ATTENTION_CHUNK,
                        help="as infer.py --attention_chunk")
    parser.add_argument("--precision", default="highest", choices=["highest", "high", "default"],
                        help="as infer.py --precision")
    args = parser.parse_args(argv)
    if args.max_side and args.max_side < 32:
        parser.error("--max_side must be at least 32 (or 0)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
    import uvicorn

    from oldphoto_jax import api, serve

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        restorer = api.Restorer(args.checkpoint_dir, faces=True, log=say,
                                attention_chunk=args.attention_chunk, precision=args.precision)
    except (api.CheckpointError, api.PipelineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = restorer.model
    runs = [mode for mode, ok in restorer.modes().items() if ok]
    say(f"weights: {model.directory} ({model.source or 'no source recorded'}); runs: "
        f"{', '.join(runs)}")
    app = serve.create_app(restorer, max_upload_bytes=int(args.max_upload_mb * 2**20),
                           max_side=args.max_side or None, max_queued=args.max_queued, log=say)
    try:
        sock = serve.bind(args.host, args.port)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror}",
              file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    say(f"open http://{host}:{sock.getsockname()[1]}/ (Ctrl+C stops the server)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
