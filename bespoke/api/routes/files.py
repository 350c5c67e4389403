"""Evidence files through the API: upload one (multipart field `file`) and get
its reference to send as an evidence item, a return's evidence or in a
milestone's note; fetch one the order refers to. The same storage and checks as
the portal (bespoke/portal/files.py): type by content, at most 10 MiB, stored by
sha256, served only to the order's parties and ops."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from bespoke.api.auth import Caller, settings_for
from bespoke.api.problems import Problem, responses
from bespoke.api.routes.orders import READ_ERRORS, WRITE_ERRORS, visible_view
from bespoke.domain import models as m
from bespoke.portal import files

router = APIRouter(prefix="/api/orders", tags=["files"])


class StoredFileOut(BaseModel):
    """A stored file. Send `ref` as the evidence item (or in a milestone's note):
    the workflow records the reference, never the bytes."""

    sha256: str
    name: str
    size: int
    type: str
    ref: str


@router.post("/{order_id}/files", status_code=201, summary="Upload an evidence file (JPEG, PNG, WebP, PDF; 10 MiB)",
             responses=responses(*WRITE_ERRORS))
async def upload(request: Request, caller: Caller, order_id: str) -> StoredFileOut:
    """Multipart form with one field, `file`. Who may upload is checked before the
    body is read (another party's order is a 404, as for every order route)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > files.MAX_FILE_BYTES + 1024 * 1024):
        raise Problem("invalid-input", "file: at most 10 MiB")
    if caller.read_only or caller.role not in (m.Role.BUYER, m.Role.SELLER, m.Role.OPS):
        raise Problem("forbidden", "only the order's buyer, seller or ops may upload files")
    await visible_view(request, caller, order_id, timeline_limit=0)
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001 - not a multipart form at all
        raise Problem("invalid-input", "file: send a multipart form with a `file` field") from None
    file = form.get("file")
    if file is None or isinstance(file, str):
        await request.close()
        raise Problem("invalid-input", "file: send a multipart form with a `file` field")
    try:
        stored = await files.store_upload(settings_for(request), file)
    except files.FileRejected as err:
        raise Problem("invalid-input", str(err)) from None
    finally:
        await request.close()
    return StoredFileOut(sha256=stored.sha256, name=stored.name, size=stored.size, type=stored.type, ref=stored.ref)


@router.get("/{order_id}/files/{sha}", summary="Fetch an evidence file the order refers to",
            responses=responses(*READ_ERRORS), response_class=FileResponse)
async def fetch(request: Request, caller: Caller, order_id: str, sha: str) -> FileResponse:
    view = await visible_view(request, caller, order_id, timeline_limit=0)
    path = files.stored_path(settings_for(request), sha) if sha in files.refs_in(view) else None
    if path is None:
        raise Problem("not-found", "no such file")
    with path.open("rb") as f:
        mime = files.sniff(f.read(16)) or "application/octet-stream"
    return FileResponse(path, media_type=mime, headers={"Content-Disposition": f'attachment; filename="{sha[:12]}"',
                                                        "X-Content-Type-Options": "nosniff"})
