"""A local web page for restoring photos: ``python -m oldphoto_jax.serve`` (``oldphoto-serve``).

A small ASGI app (Starlette, served by uvicorn) with one static page (``static/``: plain HTML,
CSS and JavaScript, nothing fetched from the internet) and a JSON API:

    GET  /                          the page
    GET  /api/info                  the model, the modes it runs, the upload limit
    POST /api/jobs?with_scratch=1&hr=0&faces=1&name=photo.jpg
                                    body: the image file's bytes -> 202 {"id", "position"}
    GET  /api/jobs/<id>             state (queued, running, done, failed), stage, position,
                                    error, and the URLs of the results when done
    GET  /api/jobs/<id>/<image>.png input, mask, restored, final, face_<k>, enhanced_face_<k>
                                    (?download=1: as an attachment)

One ``oldphoto_jax.api.Restorer`` (one model in memory) serves every request; jobs wait in a
queue and run one at a time on a worker thread, so compiled networks are reused for each photo
size and two users at once both get their results. An upload larger than the size limit, an
empty, corrupt or non-image file and a mode the model cannot run are refused at once with a
JSON ``{"error": ...}`` naming the problem (413, 400, 415, 422); a photo that fails later fails
its job with a message. Uploads are decoded in memory; results are written only into a
temporary folder, removed when the server stops (and the oldest jobs' results as new ones come).
"""
from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import queue
import secrets
import shutil
import socket
import tempfile
import threading
import time
import traceback
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = pathlib.Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 30 * 1024 * 1024
# The server's default largest side: larger photos are downscaled (0 = restore at full size).
DEFAULT_MAX_SIDE = 1024
MAX_QUEUED = 16
KEEP_JOBS = 32


@dataclasses.dataclass
class Job:
    id: str
    name: str
    options: dict
    rgb: object                     # the decoded upload (uint8 H x W x 3)
    notes: list
    folder: pathlib.Path
    state: str = "queued"           # queued, running, done, failed
    stage: str = ""
    stages: list = dataclasses.field(default_factory=list)
    error: str | None = None
    images: dict = dataclasses.field(default_factory=dict)   # name -> file
    faces: int = 0
    created: float = dataclasses.field(default_factory=time.time)
    seconds: float | None = None
    size: tuple = ()


class JobQueue:
    """Runs restoration jobs one at a time on a worker thread with one shared ``Restorer``."""

    def __init__(self, restorer, *, max_queued: int = MAX_QUEUED, keep_jobs: int = KEEP_JOBS,
                 log: Callable[[str], None] = print):
        self.restorer = restorer
        self.max_queued = max_queued
        self.keep_jobs = keep_jobs
        self.log = log
        self._temp = tempfile.TemporaryDirectory(prefix="oldphoto-serve-")
        self.folder = pathlib.Path(self._temp.name)
        self.jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._waiting: collections.deque[str] = collections.deque()
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="oldphoto-restore",
                                        daemon=True)
        self._worker.start()

    # -- submitting and looking up ----------------------------------------------------------------
    def submit(self, name: str, rgb, notes: list, options: dict) -> Job:
        with self._lock:
            if len(self._waiting) >= self.max_queued:
                raise QueueFull(f"{len(self._waiting)} photos are waiting; try again later")
            job_id = secrets.token_urlsafe(12)
            folder = self.folder / job_id
            folder.mkdir()
            job = Job(job_id, name, options, rgb, list(notes), folder)
            job.stages = expected_stages(options)
            job.size = (int(rgb.shape[1]), int(rgb.shape[0]))
            self.jobs[job_id] = job
            self._waiting.append(job_id)
            self._forget_old_jobs()
        self._queue.put(job_id)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def position(self, job: Job) -> int:
        """Photos ahead of a queued job (0: next), counting the one running."""
        with self._lock:
            if job.id not in self._waiting:
                return 0
            running = any(j.state == "running" for j in self.jobs.values())
            return list(self._waiting).index(job.id) + int(running)

    def _forget_old_jobs(self) -> None:
        finished = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for job in finished[:max(0, len(self.jobs) - self.keep_jobs)]:
            shutil.rmtree(job.folder, ignore_errors=True)
            del self.jobs[job.id]

    # -- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self.jobs.get(job_id)
                if job is None:
                    continue
                self._waiting.remove(job_id)
                job.state = "running"
            start = time.perf_counter()
            try:
                self._run(job)
                job.state = "done"
            except Exception as error:  # a failed photo must never stop the server
                from oldphoto_jax.api import PipelineError, RestorationError

                if isinstance(error, (RestorationError, PipelineError)):
                    job.error = str(error)
                else:
                    job.error = f"restoration failed: {type(error).__name__}: {error}"
                    self.log(traceback.format_exc(limit=5))
                job.state = "failed"
            finally:
                job.seconds = time.perf_counter() - start
                job.rgb = None
                self.log(f"job {job.id} ({job.name}): {job.state} in {job.seconds:.1f} s"
                         + (f": {job.error}" if job.error else ""))

    def _run(self, job: Job) -> None:
        from oldphoto_jax.api import encode_png

        def progress(stage: str) -> None:
            job.stage = stage
            if stage not in job.stages:
                job.stages.insert(-1, stage)

        result = self.restorer.restore(job.rgb, name=job.name, progress=progress,
                                       **job.options)
        images = {"input": result.input, "restored": result.restored, "final": result.final}
        if result.mask is not None:
            images["mask"] = result.mask
        for k, face in enumerate(result.faces, start=1):
            images[f"face_{k}"] = face.image
        for k, face in enumerate(result.enhanced_faces, start=1):
            images[f"enhanced_face_{k}"] = face
        for name, rgb in images.items():
            path = job.folder / f"{name}.png"
            path.write_bytes(encode_png(rgb))
            job.images[name] = path
        job.faces = len(result.faces)
        job.notes += [n for n in result.notes if n not in job.notes]
        job.stage = "done"

    def close(self) -> None:
        """Stop the worker (after the running job) and remove the temporary folder."""
        self._queue.put(None)
        self._worker.join(timeout=600)
        self._temp.cleanup()


class QueueFull(Exception):
    pass


def expected_stages(options: dict) -> list[str]:
    stages = ["reading"]
    if options.get("with_scratch"):
        stages.append("scratch detection")
    stages.append("global restoration")
    if options.get("faces"):
        stages.append("face detection")
    stages.append("blending")
    return stages


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


def create_app(restorer, *, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_side: int | None = DEFAULT_MAX_SIDE, max_queued: int = MAX_QUEUED,
               keep_jobs: int = KEEP_JOBS, log: Callable[[str], None] = print) -> Starlette:
    """The ASGI app around ``restorer`` (an ``oldphoto_jax.api.Restorer``). ``app.state.jobs``
    is its ``JobQueue``; it is closed (temporary folder removed) when the app shuts down."""
    from oldphoto_jax import photo_files

    jobs = JobQueue(restorer, max_queued=max_queued, keep_jobs=keep_jobs, log=log)
    modes = restorer.modes()
    model = restorer.model

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def info(request: Request) -> Response:
        return JSONResponse({
            "model": str(model.directory), "source": model.source, "modes": modes,
            "max_upload_bytes": max_upload_bytes, "max_side": max_side,
            "queued": len(jobs._waiting)})

    async def create_job(request: Request) -> Response:
        name = os.path.basename(request.query_params.get("name", "") or "photo")[:200]
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            return _error(413, f"{name}: the file ({_megabytes(int(declared))}) is larger "
                               f"than the limit of {_megabytes(max_upload_bytes)}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload_bytes:
                return _error(413, f"{name}: the file is larger than the limit of "
                                   f"{_megabytes(max_upload_bytes)}")
        options = {"with_scratch": _flag(request, "with_scratch", modes["scratch"]
                                         and not modes["quality"]),
                   "hr": _flag(request, "hr", False),
                   "faces": _flag(request, "faces", True)}
        mode = ("scratch_hr" if options["hr"] else "scratch") if options["with_scratch"] \
            else "quality"
        if not modes[mode]:
            runnable = [m for m in ("quality", "scratch", "scratch_hr") if modes[m]]
            return _error(422, f"this model cannot run the {mode} mode (it runs: "
                               f"{', '.join(runnable) or 'nothing'})")
        if options["faces"] and not modes["faces_hr" if options["hr"] else "faces"]:
            options["faces"] = False  # the model has no face network: noted by the restorer
        try:
            photo = await run_in_threadpool(photo_files.read_photo_bytes, bytes(body), name,
                                            max_side=max_side)
        except photo_files.PhotoError as error:
            status = 415 if "not an image" in error.reason else 400
            return _error(status, str(error))
        try:
            job = jobs.submit(name, photo.rgb, photo.notes, options)
        except QueueFull as error:
            return _error(503, str(error))
        return JSONResponse({"id": job.id, "position": jobs.position(job),
                             "status_url": f"/api/jobs/{job.id}"}, status_code=202)

    async def job_status(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "no such job (finished jobs are kept for a while only)")
        body = {"id": job.id, "name": job.name, "state": job.state, "stage": job.stage,
                "stages": job.stages, "options": job.options, "notes": job.notes,
                "size": job.size, "error": job.error, "seconds": job.seconds}
        if job.state == "queued":
            body["position"] = jobs.position(job)
        if job.state == "done":
            base = f"/api/jobs/{job.id}"
            body["images"] = {name: f"{base}/{name}.png" for name in job.images}
            body["faces"] = job.faces
            body["download"] = f"{base}/final.png?download=1"
            body["download_name"] = f"{pathlib.Path(job.name).stem}_restored.png"
        return JSONResponse(body)

    async def job_image(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        image = request.path_params["image"]
        path = job.images.get(image) if job is not None else None
        if path is None or not path.exists():
            return _error(404, "no such image")
        if request.query_params.get("download"):
            return FileResponse(path, media_type="image/png",
                                filename=f"{pathlib.Path(job.name).stem}_restored.png")
        return FileResponse(path, media_type="image/png",
                            headers={"Cache-Control": "no-store"})

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(jobs.close)

    app = Starlette(routes=[
        Route("/", index),
        Route("/api/info", info),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_status),
        Route("/api/jobs/{job_id}/{image}.png", job_image),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    app.state.jobs = jobs
    return app


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket (port 0: a free port), for ``uvicorn.Server.run(sockets=...)``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


class BackgroundServer:
    """Serve ``app`` from a thread on ``host`` (a free port by default): tests, notebooks.

        with BackgroundServer(app) as url: ...
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.socket = bind(host, port)
        port = self.socket.getsockname()[1]
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.socket.close()
