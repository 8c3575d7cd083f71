"""Reading a multipart/form-data upload in chunks, as it arrives: small fields in memory, the file spooled.

The file goes to a ``SpooledTemporaryFile`` (memory up to ``SPOOL_MEMORY_BYTES``, then disk), never
whole into memory, and nothing reaches the bucket while the form is read: curl sends ``-F file=@a.mp3``
before ``-F model=...``, so only a complete, valid form may be uploaded. Each field is checked the moment
it ends (``on_field``), so an unknown model sent before the file is refused before the file is read.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from consumer.gateway.errors import ApiError

# A part of the file this big stays in memory; past it the spool rolls over to a temporary file.
SPOOL_MEMORY_BYTES = 1024 * 1024
# Form fields are short (a model name, a prompt of at most 2,000 characters): anything longer is abuse.
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32
# After an error the rest of the body is read and dropped, up to this much, so the client (which sends
# its whole body before it reads the answer) sees the 4xx instead of a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024


@dataclass
class SpooledUpload:
    """The uploaded file: spooled, its size known, nothing uploaded anywhere yet."""

    file: IO[bytes]
    filename: str
    content_type: str | None
    size: int = 0

    def close(self) -> None:
        self.file.close()


@dataclass
class RawForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    upload: SpooledUpload | None = None

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def close(self) -> None:
        if self.upload is not None:
            self.upload.close()


class _Collector:
    """python-multipart's callbacks, collecting fields and spooling the one file part."""

    def __init__(self, form: RawForm, max_file_bytes: int, on_field: Callable[[str, str], None]) -> None:
        self.form = form
        self.max_file_bytes = max_file_bytes
        self.on_field = on_field
        self.pending: list[bytes] = []  # file bytes of the current chunk, written after the parser returns
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._is_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": lambda data, start, end: self._append_header("_header_name", data[start:end]),
            "on_header_value": lambda data, start, end: self._append_header("_header_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _append_header(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers, self._value = {}, bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._is_file = filename is not None
        if not self._is_file:
            if sum(len(v) for v in self.form.fields.values()) >= MAX_FIELDS:
                raise ApiError(400, f"too many form fields; at most {MAX_FIELDS}", code="invalid_form")
            return
        if self._name != "file":
            raise ApiError(
                400,
                f"unexpected file field {self._name!r}; send the audio as 'file'",
                code="invalid_form",
                param=self._name,
            )
        if self.form.upload is not None:
            raise ApiError(400, "send exactly one file", code="invalid_form", param="file")
        content_type = self._headers.get(b"content-type")
        self.form.upload = SpooledUpload(
            file=tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES),  # noqa: SIM115 - closed by RawForm
            filename=filename.decode("utf-8", "replace") if filename else "audio",
            content_type=content_type.decode("latin-1") if content_type else None,
        )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            upload = self.form.upload
            assert upload is not None
            upload.size += end - start
            if upload.size > self.max_file_bytes:
                raise ApiError(
                    413,
                    f"the file is over the limit of {self.max_file_bytes} bytes",
                    code="file_too_large",
                    param="file",
                )
            self.pending.append(bytes(data[start:end]))
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise ApiError(
                400, f"form field {self._name!r} is over {MAX_FIELD_BYTES} bytes", code="invalid_form", param=self._name
            )

    def _part_end(self) -> None:
        if self._is_file:
            return
        value = self._value.decode("utf-8", "replace")
        self.form.fields.setdefault(self._name, []).append(value)
        self.on_field(self._name, value)


async def read_form(
    content_type: str | None,
    body: AsyncIterator[bytes],
    *,
    max_file_bytes: int,
    on_field: Callable[[str, str], None],
) -> RawForm:
    """Read the whole form from ``body``; ApiError (400, 413, or whatever ``on_field`` raises) on bad input.

    A client that goes away mid-upload makes ``body`` raise (Starlette's ClientDisconnect): the spool
    is dropped and nothing has been uploaded or published.
    """
    mime, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise ApiError(400, "send the request as multipart/form-data with a 'file' field", code="invalid_form")
    form = RawForm()
    collector = _Collector(form, max_file_bytes, on_field)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    chunks = body.__aiter__()
    try:
        async for chunk in chunks:
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ApiError(400, f"the multipart body is malformed: {exc}", code="invalid_form") from exc
            await _flush(collector)
        parser.finalize()
    except ApiError:
        form.close()
        await _drain(chunks)
        raise
    except BaseException:
        form.close()
        raise
    return form


async def _flush(collector: _Collector) -> None:
    upload = collector.form.upload
    if not collector.pending or upload is None:
        return
    data = b"".join(collector.pending)
    collector.pending.clear()
    if getattr(upload.file, "_rolled", True):
        await asyncio.to_thread(upload.file.write, data)  # on disk: keep the event loop free
    else:
        upload.file.write(data)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    dropped = 0
    try:
        async for chunk in chunks:
            dropped += len(chunk)
            if dropped > DRAIN_BYTES:
                return
    except Exception:  # noqa: BLE001 - the client left; the error answer is all that is left to try
        return
