"""A stand-in for the Hugging Face Hub on 127.0.0.1: the parts of its HTTP API that huggingface_hub, transformers
and datasets use to download a model repo and stream a dataset repo (repo info, tree, paths-info, resolve with
HEAD and range requests, 404s with the Hub's error codes). Repos are folders of files built by the tests."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Repo:
    kind: str  # "model" or "dataset"
    repo_id: str
    files: dict[str, bytes]
    sha: str = ""
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        digest = hashlib.sha1()
        for name in sorted(self.files):
            digest.update(name.encode() + hashlib.sha1(self.files[name]).digest())
        self.sha = digest.hexdigest()

    @classmethod
    def from_folder(cls, kind: str, repo_id: str, folder: Path) -> Repo:
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return cls(kind, repo_id, files)

    def info(self) -> dict:
        return {
            "id": self.repo_id,
            "_id": self.sha[:24],
            "sha": self.sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": name} for name in sorted(self.files)],
            "lastModified": "2024-01-01T00:00:00.000Z",
            "cardData": {},
        }

    def entry(self, path: str) -> dict | None:
        if path in self.files:
            data = self.files[path]
            oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entry = {"type": "file", "oid": oid, "size": len(data), "path": path}
            if not path.endswith((".json", ".md", ".txt")):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            return entry
        prefix = path.rstrip("/") + "/"
        if any(name.startswith(prefix) for name in self.files) or path in ("", "."):
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
        return None

    def tree(self, path: str, recursive: bool) -> list[dict]:
        path = path.strip("/")
        prefix = f"{path}/" if path else ""
        names = [n for n in sorted(self.files) if n.startswith(prefix)]
        if recursive:
            depth = len(prefix.split("/"))
            dirs = {"/".join(n.split("/")[:i]) for n in names for i in range(depth, n.count("/") + 1)} - {""}
            return [self.entry(d) for d in sorted(dirs) if d.startswith(prefix)] + [self.entry(n) for n in names]
        children = sorted({prefix + n[len(prefix) :].split("/")[0] for n in names})
        return [self.entry(c) for c in children]


class StandInHub:
    """`with StandInHub(repos) as hub:` serves `repos` at `hub.url` until the block ends (or `stop()`)."""

    def __init__(self, repos: list[Repo]):
        self.repos = {(r.kind, r.repo_id): r for r in repos}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, head=True)

            def do_GET(self) -> None:
                hub._serve(self, head=False)

            def do_POST(self) -> None:
                hub._serve(self, head=False, post=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.log: list[str] = []

    def __enter__(self) -> StandInHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    # ---- routing -------------------------------------------------------------------------------------------

    def _repo(self, kind: str, repo_id: str) -> Repo | None:
        return self.repos.get((kind, repo_id))

    def _serve(self, req: BaseHTTPRequestHandler, head: bool, post: bool = False) -> None:
        url = urlparse(req.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.log.append(f"{req.command} {req.path}")
        body = b""
        if post:
            body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if m:
            repo = self._repo(m[1][:-1], m[2])
            return self._json(req, repo.info() if repo else None, head, "RepoNotFound")
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m:
            repo = self._repo(m[1][:-1], m[2])
            if repo is None:
                return self._json(req, None, head, "RepoNotFound")
            sub = m[4] or ""
            if sub and repo.entry(sub) is None:
                return self._json(req, None, head, "EntryNotFound")
            return self._json(req, repo.tree(sub, query.get("recursive", ["false"])[0].lower() == "true"), head)
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/paths-info/([^/]+)", path)
        if m:
            repo = self._repo(m[1][:-1], m[2])
            if repo is None:
                return self._json(req, None, head, "RepoNotFound")
            form = parse_qs(body.decode()) if body and not body.startswith(b"{") else {}
            paths = form.get("paths") or (json.loads(body).get("paths", []) if body.startswith(b"{") else [])
            entries = [e for p in paths if (e := repo.entry(p.strip("/"))) is not None]
            return self._json(req, entries, head)
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            repo = self._repo("dataset" if m[1] else "model", m[2])
            if repo is None:
                return self._json(req, None, head, "RepoNotFound")
            if m[4] not in repo.files:
                return self._json(req, None, head, "EntryNotFound", commit=repo.sha)
            return self._file(req, repo, repo.files[m[4]], head)
        self._json(req, None, head, "NotFound")

    def _json(self, req, payload, head: bool, error: str | None = None, commit: str | None = None) -> None:
        status = 200 if payload is not None else 404
        data = json.dumps(payload if payload is not None else {"error": f"{error}"}).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        if payload is None:
            req.send_header("X-Error-Code", error or "NotFound")
            req.send_header("X-Error-Message", error or "Not Found")
        if commit:
            req.send_header("X-Repo-Commit", commit)
        req.end_headers()
        if not head:
            req.wfile.write(data)

    def _file(self, req, repo: Repo, data: bytes, head: bool) -> None:
        start, end = 0, len(data) - 1
        ranged = req.headers.get("Range")
        if ranged:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
            if m:
                if m[1]:
                    start, end = int(m[1]), int(m[2]) if m[2] else len(data) - 1
                else:  # the last N bytes
                    start, end = max(0, len(data) - int(m[2])), len(data) - 1
                end = min(end, len(data) - 1)
        part = data[start : end + 1]
        req.send_response(206 if ranged else 200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(part)))
        req.send_header("Accept-Ranges", "bytes")
        req.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        req.send_header("X-Repo-Commit", repo.sha)
        if ranged:
            req.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        req.end_headers()
        if not head:
            req.wfile.write(part)
