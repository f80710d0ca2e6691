"""The web server (``oldphoto_jax.serve``) over HTTP: a real uvicorn server on a free local
port, a tiny random-weight model (the API tests' restorer: shapes compile once)."""
import json
import pathlib
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from oldphoto_jax import serve  # noqa: E402
from oldphoto_jax.serve.__main__ import parse_args  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "old_w_scratch"
MAX_UPLOAD = 300_000


@pytest.fixture(scope="module")
def server(tiny_restorer):
    app = serve.create_app(tiny_restorer, max_upload_bytes=MAX_UPLOAD,
                           max_side=tiny_restorer.options.max_side, log=lambda line: None)
    with serve.BackgroundServer(app) as url:
        yield url, app.state.jobs
    assert not app.state.jobs.folder.exists()  # the temporary folder is gone after shutdown


def _request(url, data=None, method=None):
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _json(url, data=None):
    status, _, body = _request(url, data, "POST" if data is not None else "GET")
    return status, json.loads(body)


def _submit(base, data, **params):
    params.setdefault("name", "photo.png")
    return _json(f"{base}/api/jobs?{urllib.parse.urlencode(params)}", data)


def _wait(base, job_id, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, job = _json(f"{base}/api/jobs/{job_id}")
        assert status == 200
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_page_and_static_files_need_nothing_from_the_internet(server):
    base, _ = server
    status, headers, page = _request(base + "/")
    assert status == 200 and b"Old photo restoration" in page
    for name in ("app.js", "style.css"):
        status, _, text = _request(f"{base}/static/{name}")
        assert status == 200 and b"http://" not in text and b"https://" not in text
    assert b"http://" not in page and b"https://" not in page
    status, info = _json(base + "/api/info")
    assert info["modes"]["scratch"] and not info["modes"]["faces"]
    assert info["max_upload_bytes"] == MAX_UPLOAD


def test_good_photo_is_restored_with_every_stage(server, tiny_restorer):
    base, jobs = server
    data = (SAMPLES / "b.png").read_bytes()
    status, created = _submit(base, data, name="b.png", with_scratch=1, faces=0)
    assert status == 202, created
    job = _wait(base, created["id"])
    assert job["state"] == "done", job["error"]
    assert set(job["images"]) == {"input", "mask", "restored", "final"}
    assert job["stages"] == ["reading", "scratch detection", "global restoration", "blending"]
    status, headers, final = _request(base + job["images"]["final"])
    assert status == 200 and headers["content-type"] == "image/png"
    # The same bytes as the Python API (and so as infer.py) on the same photo.
    assert final == tiny_restorer.restore(SAMPLES / "b.png", with_scratch=True,
                                          faces=False).png()
    status, headers, download = _request(base + job["download"])
    assert download == final and "attachment" in headers["content-disposition"]
    assert "b_restored.png" in headers["content-disposition"]
    # Results live in the server's temporary folder only.
    assert all(pathlib.Path(p).parent.parent == jobs.folder
               for p in jobs.get(created["id"]).images.values())


@pytest.mark.parametrize("data, status, message", [
    (b"", 400, "empty file"),
    (b"hello, this is text", 415, "not an image file"),
    ((SAMPLES / "b.png").read_bytes()[:3000], 400, "truncated or corrupt"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 400, "corrupt"),
    (b"x" * (MAX_UPLOAD + 1), 413, "larger than the limit"),
], ids=["empty", "text", "truncated", "corrupt_header", "oversize"])
def test_bad_uploads_get_a_clear_message_and_the_server_goes_on(server, data, status, message):
    base, _ = server
    answer, body = _submit(base, data, name="bad.png", with_scratch=1)
    assert answer == status and message in body["error"], body
    assert _json(base + "/api/info")[0] == 200


def test_a_mode_the_model_cannot_run_is_refused(server):
    base, _ = server
    status, body = _submit(base, (SAMPLES / "b.png").read_bytes(), with_scratch=1, hr=1)
    assert status == 422 and "scratch_hr" in body["error"]
    assert _json(base + "/api/jobs/nonexistent")[0] == 404


def test_concurrent_requests_both_get_results(server):
    base, _ = server
    photos = [(SAMPLES / "b.png").read_bytes(), (SAMPLES / "d.png").read_bytes()]
    created = [None, None]

    def submit(index):
        created[index] = _submit(base, photos[index], name=f"p{index}.png", with_scratch=1,
                                 faces=0)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [c[0] for c in created] == [202, 202]
    finished = [_wait(base, c[1]["id"]) for c in created]
    assert [job["state"] for job in finished] == ["done", "done"]
    sizes = {tuple(job["size"]) for job in finished}
    assert sizes == {(64, 64), (64, 41)}


def test_listens_on_localhost_by_default():
    args = parse_args([])
    assert args.host == "127.0.0.1" and args.port == 8000
    assert parse_args(["--port", "9000", "--checkpoint_dir", "m"]).checkpoint_dir == "m"
