// The restoration page: upload, poll the job, show before/after. No libraries, no network
// access beyond this server.
"use strict";
const $ = (id) => document.getElementById(id);
let file = null;
let info = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    info = await response.json();
  } catch (e) {
    $("model-info").textContent = "The server does not answer.";
    return;
  }
  const m = info.modes;
  const source = info.source || info.model;
  $("model-info").title = source;
  $("model-info").textContent = `Model: ${source.length > 90 ? source.slice(0, 90) + "…" : source}. Largest upload ` +
    `${(info.max_upload_bytes / 1048576).toFixed(0)} MB` +
    (info.max_side ? `; photos are restored at most ${info.max_side} px on their longer side.` : ".");
  for (const input of document.querySelectorAll("input[name=mode]")) {
    const ok = m[input.value];
    input.disabled = !ok;
    input.parentElement.classList.toggle("disabled", !ok);
    if (!ok) input.parentElement.title = "this model has no network for this mode";
  }
  const checked = document.querySelector("input[name=mode]:checked");
  if (checked.disabled) {
    const first = document.querySelector("input[name=mode]:not(:disabled)");
    if (first) first.checked = true;
  }
  updateFaces();
}

function updateFaces() {
  if (!info) return;
  const hr = document.querySelector("input[name=mode]:checked").value === "scratch_hr";
  const ok = info.modes[hr ? "faces_hr" : "faces"];
  $("faces").disabled = !ok;
  if (!ok) $("faces").checked = false;
  $("faces").parentElement.classList.toggle("disabled", !ok);
  $("faces").parentElement.title = ok ? "" : "this model has no face network";
}

function choose(f) {
  if (!f) return;
  file = f;
  $("drop-text").textContent = `${f.name} (${(f.size / 1024).toFixed(0)} KB) - click Restore`;
  $("restore").disabled = false;
  showError("");
}

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
const drop = $("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
for (const input of document.querySelectorAll("input[name=mode]")) {
  input.addEventListener("change", updateFaces);
}

function setProgress(fraction, text) {
  $("progress").hidden = false;
  $("bar-fill").style.width = `${Math.round(100 * fraction)}%`;
  $("status").textContent = text;
}

$("restore").addEventListener("click", async () => {
  if (!file) return;
  if (info && file.size > info.max_upload_bytes) {
    showError(`${file.name}: the file is larger than the limit of ` +
              `${(info.max_upload_bytes / 1048576).toFixed(0)} MB`);
    return;
  }
  const mode = document.querySelector("input[name=mode]:checked").value;
  const params = new URLSearchParams({
    name: file.name,
    with_scratch: mode === "quality" ? "0" : "1",
    hr: mode === "scratch_hr" ? "1" : "0",
    faces: $("faces").checked && !$("faces").disabled ? "1" : "0",
  });
  $("restore").disabled = true;
  $("result").hidden = true;
  showError("");
  setProgress(0, "Uploading…");
  try {
    const response = await fetch(`/api/jobs?${params}`, {
      method: "POST", body: file,
      headers: {"Content-Type": file.type || "application/octet-stream"},
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
    await follow(body.id);
  } catch (e) {
    $("progress").hidden = true;
    showError(e.message);
  } finally {
    $("restore").disabled = false;
  }
});

async function follow(id) {
  const started = Date.now();
  for (;;) {
    const response = await fetch(`/api/jobs/${id}`);
    const job = await response.json();
    if (!response.ok) throw new Error(job.error);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    if (job.state === "queued") {
      setProgress(0.02, job.position > 0
        ? `Waiting: ${job.position} photo(s) ahead (${seconds} s)`
        : `Starting… (${seconds} s)`);
    } else if (job.state === "running") {
      const index = Math.max(0, job.stages.indexOf(job.stage));
      setProgress((index + 0.5) / job.stages.length,
        `${job.stage} (step ${index + 1} of ${job.stages.length}, ${seconds} s; ` +
        "the first photo of a size also compiles the networks)");
    } else if (job.state === "failed") {
      throw new Error(job.error);
    } else if (job.state === "done") {
      setProgress(1, `Done in ${job.seconds.toFixed(1)} s`);
      show(job);
      return;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

function show(job) {
  const images = job.images;
  $("before").src = $("before-2").src = images.input;
  $("after").src = $("after-2").src = images.final;
  $("restored").src = images.restored;
  $("mask-figure").hidden = !images.mask;
  if (images.mask) $("mask").src = images.mask;
  $("download").href = job.download;
  $("download").setAttribute("download", job.download_name);
  $("notes").textContent = [`${job.name}: ${job.size[0]}×${job.size[1]}`, ...job.notes,
    job.options.faces ? `${job.faces} face(s) found` : "faces not enhanced"].join("; ");
  const list = $("faces-list");
  list.replaceChildren();
  for (let k = 1; k <= job.faces; k++) {
    for (const [key, caption] of [[`face_${k}`, `face ${k} found`], [`enhanced_face_${k}`, `face ${k} enhanced`]]) {
      if (!images[key]) continue;
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = images[key];
      img.alt = caption;
      const cap = document.createElement("figcaption");
      cap.textContent = caption;
      figure.append(img, cap);
      list.append(figure);
    }
  }
  $("faces-title").hidden = job.faces === 0;
  $("result").hidden = false;
}

$("slider").addEventListener("input", (e) => {
  const v = e.target.value;
  $("before-clip").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("handle").style.left = `${v}%`;
});
$("side-by-side").addEventListener("change", (e) => {
  $("compare").hidden = e.target.checked;
  $("pair").hidden = !e.target.checked;
});

loadInfo();
