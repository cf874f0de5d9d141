"""Files in and out of a server: media inputs uploaded, results downloaded into ``--out``.

Inputs: only the workflow's media inputs (see :func:`~.prompt.media_inputs`) are uploaded, and only
files that open as an image, a video or an audio clip; anything else is refused before anything is
sent. A value that is no file here is left for the server (a name in its input folder).

Outputs: every file an output node saved (``type == "output"``) is downloaded to
``<out>/[<row folder>/]<subfolder>/<name>``, where ``name`` is the server's file name without ComfyUI's counter
(``clip_00003_.mp4`` -> ``clip.mp4``; several files of one name in one job are numbered ``clip_00000.png``,
``clip_00001.png``, ...), so names depend only on the workflow, not on which server ran it. Names
from the server are confined to ``--out`` (no absolute paths, no ``..``, no links out, no hidden names:
those are the tool's own, like ``.tpsmm-jobs/`` and temporary files) and no existing file is
overwritten. Each file is streamed into a hidden temporary file (never held in memory; at most
``--max-download``) and checked to be the media its name claims (a ``.png`` must be an image, an
``.mp4`` a video, a ``.wav`` audio) before it is renamed into place. A job's files are all written or
none; an error or Ctrl-C removes the temporary files.
"""
from __future__ import annotations

import os
import re
from collections import Counter

from ..core.media.atomic import discard, sibling_temp_path
from .prompt import RenderError

__all__ = ["MEDIA_KINDS", "check_media", "claimed_kind", "output_items", "local_names", "save_outputs"]

_COUNTER = re.compile(r"_\d{5,}_?$")
MEDIA_KINDS = {"image": (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"),
               "video": (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"),
               "audio": (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")}


def claimed_kind(name: str) -> str | None:
    """``image``/``video``/``audio`` by the file name's extension; ``None`` for other files."""
    ext = os.path.splitext(name)[1].lower()
    return next((kind for kind, exts in MEDIA_KINDS.items() if ext in exts), None)


def _is_image(path: str) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def _decodes(path: str, kind: str) -> bool:
    import av

    try:
        with av.open(path) as container:
            streams = list(getattr(container.streams, kind)[:1])
            return bool(streams) and next(container.decode(streams[0]), None) is not None   # decodes, not opens
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError, StopIteration):
        return False


def check_media(path: str, label: str, kinds=("image", "video", "audio"), *, doing: str = "not uploading it",
                shown: str | None = None) -> None:
    """Raise :class:`RenderError` unless ``path`` is one of ``kinds`` (``image`` opens, ``video``/``audio`` decode);
    the message names ``shown`` (default ``path``)."""
    for kind in kinds:
        if _is_image(path) if kind == "image" else _decodes(path, kind):
            return
    names = [f"an {k}" if k[0] in "aeiou" else f"a {k}" for k in kinds]
    names = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    raise RenderError(f"{label}: {shown or path} is not {names} file; {doing}")


def output_items(entry: dict) -> list[dict]:
    """The saved files (``type == "output"``) listed in a ``/history`` entry, in node-id order."""
    items = []
    outputs = entry.get("outputs") or {}
    for nid in sorted(outputs, key=lambda n: (len(str(n)), str(n))):
        ui = outputs[nid] if isinstance(outputs[nid], dict) else {}
        for value in ui.values():
            for item in value if isinstance(value, list) else []:
                if isinstance(item, dict) and isinstance(item.get("filename"), str) and item.get("type") == "output":
                    items.append(item)
    return items


def _safe_part(text: str, what: str) -> str:
    bad = (not isinstance(text, str) or "\x00" in text or "\\" in text or os.path.isabs(text)
           or any(p in ("..",) for p in text.split("/")) or re.match(r"^[A-Za-z]:", text))
    if bad:
        raise RenderError(f"the server named an output {what} {text!r} that points outside --out; refusing it")
    if any(p.startswith(".") for p in text.split("/") if p):
        raise RenderError(f"the server named an output {what} {text!r}: a hidden name, like the tool's own records "
                          "(.tpsmm-jobs) and temporary files; refusing it")
    return text


def local_names(items: list[dict]) -> list[str]:
    """Relative destination paths for ``items`` (see the module docstring)."""
    keys = []
    for item in items:
        sub = _safe_part(item.get("subfolder") or "", "subfolder")
        name = _safe_part(item["filename"], "file name")
        if "/" in name or not name.strip("."):
            raise RenderError(f"the server named an output file {name!r} that is not a plain file name; refusing it")
        base, ext = os.path.splitext(name)
        keys.append((sub, _COUNTER.sub("", base) or base, ext))
    counts, seen, out = Counter(keys), Counter(), []
    for sub, base, ext in keys:
        n = seen[(sub, base, ext)]
        seen[(sub, base, ext)] += 1
        name = f"{base}{ext}" if counts[(sub, base, ext)] == 1 else f"{base}_{n:05d}{ext}"
        out.append(os.path.join(sub, name) if sub else name)
    return out


def _destination(out_dir: str, rel: str) -> str:
    root = os.path.realpath(out_dir)
    dest = os.path.join(root, rel)
    parent = os.path.realpath(os.path.dirname(dest))
    if os.path.commonpath([root, parent]) != root:
        raise RenderError(f"{rel}: the output folder links outside --out {out_dir}; refusing to write there")
    if os.path.lexists(dest):
        raise RenderError(f"{os.path.join(out_dir, rel)}: exists already; not overwriting it (move it away or use "
                          "another --out)")
    return dest


def save_outputs(server, entry: dict, out_dir: str, *, folder: str = "") -> list[str]:
    """Download the job's outputs into ``out_dir`` (under ``folder``); all of them or none. Returns the paths."""
    items = output_items(entry)
    if not items:
        raise RenderError("the workflow's output nodes saved no file (a Preview node only shows results in "
                          "ComfyUI; use SaveImage or SaveVideo)")
    rels = [os.path.join(folder, rel) if folder else rel for rel in local_names(items)]
    if len(set(rels)) != len(rels):
        raise RenderError(f"two outputs of the job would be saved as {Counter(rels).most_common(1)[0][0]}")
    temps: list[tuple[str, str]] = []
    try:
        for item, rel in zip(items, rels):
            dest = _destination(out_dir, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            dest = _destination(out_dir, rel)   # again: the folder just made must not be a link out
            tmp = sibling_temp_path(dest)
            temps.append((tmp, dest))
            with open(tmp, "wb") as f:
                server.download(item, f)
            if (kind := claimed_kind(rel)) is not None:
                check_media(tmp, server.url, (kind,), doing="not saving it", shown=f"result file {item['filename']!r}")
        for tmp, dest in temps:
            if os.path.lexists(dest):
                raise RenderError(f"{dest}: appeared while downloading; not overwriting it")
        for i, (tmp, dest) in enumerate(temps):
            os.replace(tmp, dest)
            temps[i] = ("", dest)
    except BaseException:
        for tmp, dest in temps:
            if tmp:
                discard(tmp)
            elif os.path.isfile(dest):
                os.remove(dest)   # renamed already: a job leaves all its files or none
        raise
    return [dest for _, dest in temps]
