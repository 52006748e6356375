"""WARC 1.1 capture of raw HTTP exchanges, crash recovery, CDXJ indexes and WACZ packaging.

The JSONL output says what an article is; the WARC files keep what the server actually sent, so that a
parse can be redone or checked later and the crawl can be replayed. Records are written as warcio writes
them (``record_member``), one gzip member per record, and a line of JSONL may point at its capture through a ``RecordRef``:
(file, offset, length) of the response's gzip member, readable again by a single seek.

Durability follows the JSONL rule of the storage pipeline: a ``RecordRef`` may be written into the
JSONL only after ``WarcWriter.sync()`` has returned, so the WARC is synced before the JSONL; after a
crash, ``recover()`` cuts the torn tail (a record half written) off the files of the killed run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import mmap
import os
import re
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.client import responses as _REASONS
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import surt
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import iso_date_to_timestamp
from warcio.warcwriter import WARCWriter

WARC_VERSION = "WARC/1.1"
SUFFIX = ".warc.gz"
CDXJ_SUFFIX = ".cdxj"
_CHUNK = 1 << 16
_RELEASE_BYTES = 8 << 20  # how much of a scanned WARC file's map is read before its pages are handed back


def software() -> str:
    try:
        version = metadata.version("theory-crawler")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        version = "unknown"
    return f"theory-crawler/{version}"


@dataclass(frozen=True)
class RecordRef:
    file: str  # WARC file name, relative to the WARC directory
    offset: int  # byte offset of the gzip member holding the response record
    length: int  # its length in bytes
    record_id: str  # the WARC-Record-ID, "<urn:uuid:...>"


NOT_MODIFIED_PROFILE = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
IDENTICAL_PAYLOAD_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"


# The first field of a 304's evidence record: its HTTP status line (the headers follow as received).
EVIDENCE_STATUS_FIELD = "HTTP-Status-Line"


# A 304's validators, named as Heritrix names them on its server-not-modified revisit records
# (webarchive-commons' WARCConstants, set by heritrix3's ServerNotModifiedRevisit from the 304's headers).
_VALIDATOR_FIELDS = {"etag": "WARC-Etag", "last-modified": "WARC-Last-Modified"}


def _validators(headers: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in headers:
        field = _VALIDATOR_FIELDS.get(name.lower())
        if field and field not in found:
            found[field] = value
    return found


def payload_digest(payload: bytes) -> str:
    """WARC-Payload-Digest as warcio writes it: ``sha1:`` and the base32 SHA-1 of the payload as stored."""
    return "sha1:" + base64.b32encode(hashlib.sha1(payload).digest()).decode("ascii")


@dataclass(frozen=True)
class Revisit:
    """What makes an exchange a ``revisit`` record (WARC 1.1, 6.7.2): its profile and the earlier capture."""

    profile: str  # NOT_MODIFIED_PROFILE or IDENTICAL_PAYLOAD_PROFILE
    refers_to_uri: str
    refers_to_date: str | None  # the earlier capture's WARC-Date, when known
    refers_to: str | None  # its WARC-Record-ID, when known
    digest: str | None  # the earlier payload's digest (identical-payload-digest only)


class _WireHeaders(StatusAndHeaders):
    """HTTP headers serialised back to the bytes that came over the wire.

    warcio percent-encodes any header that is not ASCII (RFC 8187), which would change e.g. a raw
    GBK/UTF-8 Location or Content-Disposition. Header names and values are given as ``str`` holding the
    wire bytes decoded as latin-1, so encoding them as latin-1 gives back those exact bytes, and the
    block digest (computed by warcio over this buffer) matches what is stored.
    """

    def compute_headers_buffer(self, header_filter=None):
        self.headers_buff = self.to_str(header_filter).encode("latin-1") + b"\r\n"


def warc_date(date: datetime) -> str:
    """WARC/1.1 date, always with microseconds (warcio drops the fraction when it is zero)."""
    if date.tzinfo is None:  # naive datetimes are taken to be UTC already
        date = date.replace(tzinfo=timezone.utc)
    return date.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for name, value in headers:
        if any(c in name + value for c in "\r\n") or ":" in name:
            raise ValueError(f"header would break the record: {name!r}: {value!r}")
    return list(headers)


def run_of(path: Path) -> str:
    """The crawl run a WARC file was written by: its name without the file's serial number (see
    ``WarcWriter._open_file``)."""
    return path.name.removesuffix(SUFFIX).rsplit("-", 1)[0]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RECORD_CONTENT_TYPES = {
    "response": "application/http; msgtype=response",
    "revisit": "application/http; msgtype=response",
    "request": "application/http; msgtype=request",
}


def _http_head(protocol: str, statusline: str, headers: list[tuple[str, str]]) -> bytes:
    """The HTTP status line and headers of a record's block, the wire bytes as they came (see _WireHeaders)."""
    return "".join([f"{protocol} {statusline}\r\n", *(f"{name}: {value}\r\n" for name, value in headers), "\r\n"]).encode("latin-1")


def record_member(
    record_type: str, warc_headers: list[tuple[str, str]], http_head: bytes = b"", payload: bytes = b"", content_type: str | None = "",
    digest: str | None = None,
) -> tuple[bytes, str, str | None]:
    """(gzip member, WARC-Record-ID, WARC-Payload-Digest) of one record, with the headers, their order and the
    digests that warcio's record builder and WARCWriter write for the same record (tests/test_warc.py compares).

    Built here because going through warcio (a StatusAndHeaders per header block, a digester and a writer per
    record, a compress call per piece) cost the capture-on crawl as much as the rest of writing a record; the
    records are the same bytes once inflated. ``warc_headers`` are those before WARC-Type (target, date, ...).
    A revisit has no payload and no payload digest of its own (one given in ``warc_headers`` is kept).
    ``digest``: the payload's, when the caller computed it already.
    """
    record_id = f"<urn:uuid:{uuid.uuid4()}>"
    headers = [*warc_headers, ("WARC-Type", record_type), ("WARC-Record-ID", record_id)]
    if record_type != "revisit":
        digest = digest or payload_digest(payload)
        headers.append(("WARC-Payload-Digest", digest))
        block_digest = payload_digest(http_head + payload) if http_head else digest
    else:
        payload = b""
        block_digest = payload_digest(http_head)
        digest = dict(warc_headers).get("WARC-Payload-Digest")
    headers.append(("WARC-Block-Digest", block_digest))
    if content_type is not None:  # None: a record without a block (a server-not-modified revisit) has none
        headers.append(("Content-Type", content_type or _RECORD_CONTENT_TYPES[record_type]))
    headers.append(("Content-Length", str(len(http_head) + len(payload))))
    head = "".join([WARC_VERSION, "\r\n", *(f"{name}: {value}\r\n" for name, value in headers), "\r\n"]).encode("utf-8")
    return zlib.compress(b"".join((head, http_head, payload, b"\r\n\r\n")), 9, wbits=31), record_id, digest


class WarcWriter:
    """Appends request/response pairs to rotating ``.warc.gz`` files of one crawl run.

    Files are ``<prefix>-<UTC start of the writer>-<serial>.warc.gz``: one timestamp per writer (per
    run), the serial counting the rotations. A file is opened at the first exchange, never reopened
    or overwritten (exclusive create), and each begins with a warcinfo record.
    """

    def __init__(self, directory: Path, max_size: int, warcinfo: dict[str, str], prefix: str = "theory"):
        self.directory = Path(directory)
        self.max_size = max_size
        self.warcinfo = dict(warcinfo)
        self.prefix = prefix
        self._stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self._serial = 0
        self._files: list[Path] = []
        self._fh: io.FileIO | None = None  # unbuffered: every write goes to the OS at once
        self._size = 0  # bytes in the current file
        self._records = 0  # exchanges in the current file
        self._dir_synced = True  # whether the directory entry of the current file is durable
        self._closed = False
        # Every record is its own gzip member, made in memory first so that its size is known before it goes
        # into a file: the exchanges and article records by record_member, the rare others by warcio.
        self._builder = WARCWriter(None, gzip=True, warc_version=WARC_VERSION)
        # The CDXJ lines of each file, made as its records are written (no second read of the file).
        self._index: dict[str, list[str]] = {}

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    # -- records -------------------------------------------------------------------------------

    def _member(self, record) -> bytes:
        buf = io.BytesIO()
        WARCWriter(buf, gzip=True, warc_version=WARC_VERSION).write_record(record)
        return buf.getvalue()

    def _warcinfo_member(self, filename: str) -> bytes:
        fields = {
            "software": software(),
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            **self.warcinfo,
        }
        record = self._builder.create_warcinfo_record(filename, fields)
        record.rec_headers.replace_header("WARC-Date", warc_date(datetime.now(timezone.utc)))
        return self._member(record)

    def write_exchange(
        self,
        *,
        url: str,
        method: str,
        request_headers: list[tuple[str, str]],
        request_body: bytes,
        protocol: str,
        status: int,
        response_headers: list[tuple[str, str]],
        payload: bytes,
        ip_address: str | None,
        date: datetime,
        revisit: Revisit | None = None,
        digest: str | None = None,
    ) -> RecordRef:
        """Write the response record, then the request record; return where the response is.

        Headers are ``(name, value)`` with the wire bytes decoded as latin-1; ``payload`` is the body as
        it came over the wire (still Content-Encoded, e.g. gzip), never decoded. Both digests are
        computed over the bytes as stored, so WARC-Payload-Digest is the digest of the compressed body
        when there is a Content-Encoding, as WARC 1.1 prescribes; ``digest`` is the payload's, when the
        caller has it already (the capture compares it with the URL's last capture).

        With ``revisit``, the response is stored as a ``revisit`` record instead: its HTTP headers and
        no payload, the earlier capture named by the WARC-Refers-To headers (as Heritrix and warcprox
        write them), so replay tools serve the earlier capture's payload. A server-not-modified revisit (a
        304) has no block at all, and its validators as WARC-Etag and WARC-Last-Modified (as Heritrix writes
        them); the 304's status line and headers follow it in a warc-fields ``metadata`` record concurrent
        to it (``not_modified_evidence`` reads it back).
        """
        if self._closed:
            raise RuntimeError("WarcWriter is closed")
        date_str = warc_date(date)
        common = {"WARC-Target-URI": url, "WARC-Date": date_str}
        if ip_address:
            common["WARC-IP-Address"] = ip_address

        # Scrapy's HTTP/2 handler says "h2"; replay tools expect an HTTP/1.x status line, so the
        # protocol actually used goes into the (proposed, widely used) WARC-Protocol header instead.
        protocol = protocol or "HTTP/1.1"  # Scrapy's Response.protocol may be None
        http_version = protocol if protocol.upper().startswith("HTTP/1.") else "HTTP/1.1"
        if protocol and http_version != protocol:
            common["WARC-Protocol"] = protocol.lower()

        # Transfer-Encoding is dropped: the payload we get is already de-chunked (Twisted removes the
        # chunking), and warcio's readers (content_stream, replay) would try to de-chunk it again.
        # Content-Encoding is kept, because the payload is still compressed.
        kept = [(n, v) for n, v in _check_headers(response_headers) if n.lower() != "transfer-encoding"]
        reason = _REASONS.get(status, "")
        response_head = _http_head(http_version, f"{status} {reason}".rstrip(), kept)
        evidence = b""  # a 304's: its status line and headers, in a metadata record after its revisit record
        if revisit is None:
            response_member, response_id, digest = record_member("response", list(common.items()), response_head, payload, digest=digest)
        else:
            refers = {"WARC-Profile": revisit.profile, "WARC-Refers-To-Target-URI": revisit.refers_to_uri}
            if revisit.refers_to_date:
                refers["WARC-Refers-To-Date"] = revisit.refers_to_date
            if revisit.refers_to:
                refers["WARC-Refers-To"] = revisit.refers_to
            if revisit.digest:
                refers["WARC-Payload-Digest"] = revisit.digest
            if revisit.profile == NOT_MODIFIED_PROFILE:
                # A server-not-modified revisit has no block (WARC 1.1, 6.7.3 allows it): replay tools serve a
                # revisit holding a 304's headers as that 304 (pywb 2.10: resolvingloader.py, "if redirect, don't
                # load payload record"), but one without HTTP headers as the capture it refers to. The 304 itself
                # goes into the metadata record after it (``_not_modified_evidence``). No block: no Content-Type.
                refers.update(_validators(kept))
                response_member, response_id, digest = record_member(
                    "revisit", [*common.items(), *refers.items()], content_type=None,
                )
                evidence = self._not_modified_evidence(
                    url, response_id, date_str, f"{http_version} {status} {reason}".rstrip(), kept,
                )
            else:
                response_member, response_id, digest = record_member("revisit", [*common.items(), *refers.items()], response_head)

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = _check_headers(request_headers)
        # Scrapy's Request.headers lack Host, which Twisted adds when sending: put it back so that the
        # request record says what was sent.
        if not any(n.lower() == "host" for n, _ in sent) and parts.netloc:
            sent.insert(0, ("Host", parts.netloc.rsplit("@", 1)[-1]))
        request_member, _, _ = record_member(
            "request", [*common.items(), ("WARC-Concurrent-To", response_id)], _http_head(method.upper(), f"{target} {http_version}", sent), request_body
        )
        mime = "warc/revisit" if revisit is not None else next((v for n, v in kept if n.lower() == "content-type"), "")
        # The 304's evidence right after its revisit record, in the same file: read back with one seek.
        pair = response_member + evidence + request_member
        # Rotate when this pair would push a file that already holds an exchange past max_size (a
        # single exchange larger than max_size still gets written, alone in its file).
        if self._fh is not None and self._records and self._size + len(pair) > self.max_size:
            self._finish_file()
        if self._fh is None:
            self._open_file()
        offset = self._size
        # Straight to the OS: a killed process loses nothing that write_exchange returned, readers
        # see it, and a crash tears at most this tail (see recover()). Only sync() makes it survive
        # a power loss.
        self._append(pair)
        self._records += 1
        # A block-less revisit has no HTTP status, and its CDXJ line none either (as cdxj-indexer writes it).
        indexed_status = None if revisit is not None and revisit.profile == NOT_MODIFIED_PROFILE else status
        self._index[self._files[-1].name].append(
            cdxj_line(url, date_str, mime, indexed_status, digest, offset, len(response_member), self._files[-1].name)
        )
        return RecordRef(self._files[-1].name, offset, len(response_member), response_id)

    def _not_modified_evidence(self, url: str, revisit_id: str, date: str, status_line: str, headers: list[tuple[str, str]]) -> bytes:
        """The ``metadata`` record (its gzip member) of a 304 answer, concurrent to its block-less revisit record: its status line
        (``EVIDENCE_STATUS_FIELD``; the reason phrase is the standard one, Scrapy does not keep the one sent),
        then one field per header, as the revisit record held them before.

        ``application/warc-fields`` rather than ``application/http; msgtype=response``: cdxj-indexer's default
        records (what `wacz create` and others index) and pywb's own indexer (`wb-manager add` of a WARC file)
        both index a metadata record unless it is warc-fields, and an indexed one would be a capture of the
        URL, served by replay in place of the page. The header bytes are kept as they came (latin-1).
        """
        fields = [(EVIDENCE_STATUS_FIELD, status_line), *headers]
        body = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("latin-1")
        member, _, _ = record_member(
            "metadata", [("WARC-Target-URI", url), ("WARC-Date", date), ("WARC-Concurrent-To", revisit_id)],
            payload=body, content_type="application/warc-fields",
        )
        return member

    def write_warc_fields(self, *, url: str, concurrent_to: str, fields: dict[str, str], date: datetime) -> None:
        """A ``metadata`` record (``application/warc-fields``) about the response record ``concurrent_to``,
        right after it in the same file: a public archive's replay says where its bytes came from."""
        body = "".join(f"{name}: {value}\r\n" for name, value in fields.items()).encode("utf-8")
        record = self._builder.create_warc_record(
            url, "metadata", payload=io.BytesIO(body), length=len(body), warc_content_type="application/warc-fields",
            warc_headers_dict={"WARC-Date": warc_date(date), "WARC-Concurrent-To": concurrent_to},
        )
        if self._fh is None:
            self._open_file()
        self._append(self._member(record))

    def write_metadata(self, *, url: str, concurrent_to: str, body: dict, date: datetime) -> RecordRef:
        """Write a ``metadata`` record of ``body`` as JSON about the capture ``concurrent_to``.

        Re-extraction finds the records a metadata record names by their ids, so it may go to a later
        file (after a rotation) than the records it names.
        """
        if self._closed:
            raise RuntimeError("WarcWriter is closed")
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        member, record_id, _ = record_member(
            "metadata",
            [("WARC-Target-URI", url), ("WARC-Date", warc_date(date)), ("WARC-Concurrent-To", concurrent_to)],
            payload=payload,
            content_type="application/json",
        )
        if self._fh is not None and self._records and self._size + len(member) > self.max_size:
            self._finish_file()
        if self._fh is None:
            self._open_file()
        offset = self._size
        self._append(member)
        self._records += 1
        return RecordRef(self._files[-1].name, offset, len(member), record_id)

    # -- files ---------------------------------------------------------------------------------

    def _append(self, data: bytes) -> None:
        """Append data to the current file, or leave the file as it was (e.g. on a full disk).

        Rolling a failed write back keeps the offsets of later RecordRefs right and the file free of
        a torn record in its middle.
        """
        assert self._fh is not None
        view = memoryview(data)
        try:
            while view:
                view = view[self._fh.write(view) :]
        except BaseException:
            with contextlib.suppress(OSError):
                self._fh.truncate(self._size)
                self._fh.seek(self._size)
            raise
        self._size += len(data)

    def _open_file(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            path = self.directory / f"{self.prefix}-{self._stamp}-{self._serial:05d}{SUFFIX}"
            self._serial += 1
            try:
                fh = open(path, "xb", buffering=0)
            except FileExistsError:  # another writer started in the same second
                continue
            break
        self._fh, self._size, self._records = fh, 0, 0
        try:
            self._append(self._warcinfo_member(path.name))
        except BaseException:  # no file without its warcinfo
            self._fh = None
            fh.close()
            path.unlink(missing_ok=True)
            raise
        self._files.append(path)
        self._index[path.name] = []
        self._dir_synced = False

    def _finish_file(self) -> None:
        self.sync()
        assert self._fh is not None
        self._fh.close()
        self._fh = None

    def sync(self) -> None:
        """Flush and fsync: after this returns, every RecordRef handed out so far is durable.

        Earlier files were synced when they were rotated out; a new file's directory entry is
        synced once, so the file itself survives a power loss and not just its bytes.
        """
        if self._fh is None:
            return
        os.fsync(self._fh.fileno())
        if not self._dir_synced:
            fsync_dir(self.directory)
            self._dir_synced = True

    def close(self, index: bool = True) -> list[Path]:
        """Sync and close, write a CDXJ index beside each WARC file (unless ``index`` is false: then a
        later ``write_cdxj`` makes it); return the WARC paths."""
        if not self._closed:
            self._closed = True
            if self._fh is not None:
                try:
                    self._finish_file()
                except OSError:
                    if index:
                        raise
                    self._fh.close()  # not synced: recover() cuts what a crash would tear
                    self._fh = None
            if index:
                for path in self._files:
                    write_index(path, self._index[path.name])
        return self.files

    def __enter__(self) -> WarcWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- recovery and reading ------------------------------------------------------------------------


def _intact_length(path: Path) -> int:
    """Bytes from the start of the file up to the end of the last gzip member that is whole.

    Every record is written as one gzip member whose trailer (CRC32 and size, checked by zlib) comes
    last, so a member that decompresses to its end holds a whole record. A torn member never reaches
    its end; zeros left by the file system after a crash fail the header check.
    """
    intact = 0
    consumed = 0  # bytes read from the file
    member = zlib.decompressobj(zlib.MAX_WBITS | 16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            consumed += len(chunk)
            data = chunk
            while data:
                try:
                    member.decompress(data, _CHUNK)  # output is not needed, bound it
                except zlib.error:
                    return intact
                if member.eof:
                    data = member.unused_data
                    intact = consumed - len(data)
                    member = zlib.decompressobj(zlib.MAX_WBITS | 16)
                else:
                    data = member.unconsumed_tail
    return intact


def recover(directory: Path, on_damage=None) -> dict[str, int]:
    """Cut a torn tail off the WARC files of a run that was killed (a crash mid-record): keep the whole gzip
    members up to the last complete record, truncate the rest; returns {file name: bytes cut}.

    Only a file without its CDXJ index is a killed run's (its writer indexes each file when it closes it
    whole), so only those are read; an indexed file is never read again nor cut, whatever happened to it
    since. And only a torn tail is cut: when a WARC record can still be found after the unreadable bytes,
    the damage is in the middle of the file (a disk's, a copy's), cutting would throw the records after it
    away, so the file is left as it is and ``on_damage(name, offset)`` told (re-extraction reads around it).

    A file whose very first record was torn is cut to zero bytes and left in place (an empty file is a
    valid, empty WARC). Its CDXJ index can then be made with ``write_cdxj``.
    """
    cut: dict[str, int] = {}
    for path in sorted(Path(directory).glob(f"*{SUFFIX}")):
        if path.with_name(path.name + CDXJ_SUFFIX).exists():
            continue
        size = path.stat().st_size
        intact = _intact_length(path)
        if intact == size:
            continue  # whole: not even opened for writing
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            damaged_middle = _next_record_start(view, intact) is not None
        if damaged_middle:
            if on_damage is not None:
                on_damage(path.name, intact)
            continue
        with open(path, "r+b") as fh:
            fh.truncate(intact)
            fh.flush()
            os.fsync(fh.fileno())
        cut[path.name] = size - intact
    return cut


def read_record(directory: Path, ref: RecordRef) -> tuple[str, bytes]:
    """(WARC-Record-ID, raw payload bytes as stored) of the record at ref, by seeking (no full scan).

    The payload is the HTTP body as stored (still Content-Encoded); the digests are checked on the way
    and a mismatch raises ValueError.
    """
    with open(Path(directory) / ref.file, "rb") as fh:
        fh.seek(ref.offset)
        member = fh.read(ref.length)
    if len(member) != ref.length:
        raise ValueError(f"{ref.file} ends before {ref.offset}+{ref.length}")
    for record in ArchiveIterator(io.BytesIO(member), check_digests=True):
        payload = record.raw_stream.read()
        if record.digest_checker.passed is False:
            raise ValueError(f"digest mismatch at {ref}: {record.digest_checker.problems}")
        return record.rec_headers.get_header("WARC-Record-ID"), payload
    raise ValueError(f"no record at {ref}")


_EVIDENCE_MAX = 1 << 16  # bytes read after a revisit record for its 304's evidence: headers only, small


def is_blockless_not_modified(headers: dict[str, str], block: bytes) -> bool:
    """Whether WARC headers (names lowercased) and block are a 304's revisit record as this crawler writes it
    now: server-not-modified, no block (the 304 itself is in the evidence record after it)."""
    return headers.get("warc-type") == "revisit" and headers.get("warc-profile") == NOT_MODIFIED_PROFILE and not block


def header_pairs(lines: list[bytes]) -> list[tuple[bytes, bytes]] | None:
    """``Name: value`` lines as (name, value) pairs, stripped; None if a line is no such pair."""
    pairs = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        pairs.append((name.strip(), value.strip()))
    return pairs


def not_modified_evidence(directory: Path, ref: RecordRef) -> tuple[str, list[tuple[bytes, bytes]]] | None:
    """(status line, headers) of the 304 whose block-less revisit record is at ``ref``, from the metadata record
    written right after it; None when there is none (damage, or another tool's revisit record).

    Header names and values are bytes, as stored.
    """
    with open(Path(directory) / ref.file, "rb") as fh:
        fh.seek(ref.offset + ref.length)
        found = _inflate(fh.read(_EVIDENCE_MAX), 0)
    record = warc_record(found[0]) if found else None
    if record is None:
        return None
    headers, block = record
    if (headers.get("warc-type") != "metadata" or headers.get("content-type") != "application/warc-fields"
            or headers.get("warc-concurrent-to") != ref.record_id):
        return None
    lines = block.split(b"\r\n")
    if lines[-1:] == [b""]:
        lines.pop()
    fields = header_pairs(lines)
    if not fields or fields[0][0].decode("latin-1") != EVIDENCE_STATUS_FIELD:
        return None
    return fields[0][1].decode("latin-1"), fields[1:]


@dataclass(frozen=True)
class Damage:
    """A place in a WARC file where reading could not go on: a damaged member, or the file's end in a member."""

    file: str
    offset: int  # where the unreadable gzip member starts
    resumed_at: int | None  # where the next readable record starts; None: nothing more could be read

    def __str__(self) -> str:
        if self.resumed_at is None:
            return f"{self.file}: damaged or truncated record at byte {self.offset}; nothing after it could be read"
        return f"{self.file}: damaged record at byte {self.offset}; reading resumed at byte {self.resumed_at}"


@dataclass(slots=True)  # one per response is kept by re-extraction's first pass: no __dict__ each
class ScannedRecord:
    file: str
    offset: int  # of its gzip member
    length: int
    headers: dict[str, str]  # WARC header names lowercased
    block: bytes

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")

    @property
    def record_id(self) -> str:
        return self.headers.get("warc-record-id", "")

    @property
    def ref(self) -> RecordRef:
        return RecordRef(self.file, self.offset, self.length, self.record_id)

    @property
    def url(self) -> str:
        return self.headers.get("warc-target-uri", "").strip("<>")

    def http_status(self) -> int | None:
        """The status of a response record's HTTP block, from its status line alone."""
        line = self.block[: self.block.find(b"\r\n")].split(b" ", 2)
        try:
            return int(line[1]) if line[0].startswith(b"HTTP/") else None
        except (IndexError, ValueError):
            return None


def warc_record(member: bytes) -> tuple[dict[str, str], bytes] | None:
    """(headers, block) of the WARC record that a whole gzip member holds, or None if it holds none."""
    head_end = member.find(b"\r\n\r\n")
    if not member.startswith(b"WARC/") or head_end < 0:
        return None
    headers: dict[str, str] = {}
    for line in member[:head_end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        return None
    block = member[head_end + 4 : head_end + 4 + length]
    return (headers, block) if len(block) == length else None


def _inflate(view, start: int) -> tuple[bytes, int] | None:
    """The gzip member at ``start``: (its bytes inflated, its end), or None if it is damaged or cut short."""
    member = zlib.decompressobj(zlib.MAX_WBITS | 16)
    out = []
    position = start
    try:
        while position < len(view):
            chunk = view[position : position + _CHUNK]
            position += len(chunk)
            out.append(member.decompress(chunk))
            if member.eof:
                return b"".join(out), position - len(member.unused_data)
    except zlib.error:
        return None
    return None


def _next_record_start(view, after: int) -> int | None:
    """The next place after ``after`` where a gzip member begins that inflates to a WARC header."""
    position = after
    while (position := view.find(b"\x1f\x8b\x08", position + 1)) >= 0:  # bounded: strictly forwards
        member = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            head = member.decompress(view[position : position + 512], 16)
        except zlib.error:
            continue
        if head.startswith(b"WARC/1."):
            return position
    return None


def scan_records(path: Path, on_damage) -> Iterator[ScannedRecord]:
    """Every whole record of a ``.warc.gz`` (one record per gzip member), in file order.

    A member that does not inflate, or does not hold one whole WARC record, is damage: ``on_damage`` gets a
    ``Damage`` naming its offset, and reading resumes at the next gzip member that holds a WARC header
    (or stops, at the end of a truncated file). Nothing of a damaged member is returned.
    """
    path = Path(path)
    name = path.name  # one string for all the file's records
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            position = released = 0
            while position < len(view):
                # The pages read so far are handed back: every page of the map that was touched counts in the
                # process's RSS until it is unmapped, so a scan of one big file would hold all of it.
                if position - released >= _RELEASE_BYTES:
                    upto = position - position % mmap.PAGESIZE
                    view.madvise(mmap.MADV_DONTNEED, released, upto - released)
                    released = upto
                inflated = _inflate(view, position)
                record = warc_record(inflated[0]) if inflated else None
                if record is None:
                    resumed = _next_record_start(view, position)
                    on_damage(Damage(name, position, resumed))
                    if resumed is None:
                        return
                    position = resumed
                    continue
                member, end = inflated
                yield ScannedRecord(name, position, end - position, *record)
                position = end


# -- indexes and packages ------------------------------------------------------------------------


_MIME_END = re.compile(r"[;\s]")


def cdxj_line(url: str, date: str, mime: str, status: int | None, digest: str | None, offset: int, length: int, filename: str) -> str:
    """The CDXJ line of a response or revisit record, as cdxj-indexer writes it for the same record:
    ``<surt> <14-digit timestamp> {url, mime, status, digest, length, offset, filename}``. ``mime`` is the
    response's Content-Type header ("warc/revisit" for a revisit), ``digest`` its WARC-Payload-Digest;
    ``status`` is None for a revisit without HTTP headers (a 304's), whose line has none."""
    fields: dict[str, str] = {"url": url}
    mime = mime if mime == "warc/revisit" else _MIME_END.split(mime or "", 1)[0].strip()
    if mime:
        fields["mime"] = mime
    if status is not None:
        fields["status"] = str(status)
    if digest:
        fields["digest"] = digest
    fields.update(length=str(length), offset=str(offset), filename=filename)
    try:
        key = surt.surt(url)
    except Exception:  # cdxj-indexer's fallback too: an unparsable URL is its own key
        key = url
    return f"{key} {iso_date_to_timestamp(date)} {json.dumps(fields)}\n"


def write_index(warc_path: Path, lines: list[str]) -> Path:
    """Write ``<warc name>.cdxj`` from the lines made while the file was written, sorted."""
    out = warc_path.with_name(warc_path.name + CDXJ_SUFFIX)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text("".join(sorted(lines)), "utf-8")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_cdxj(warc_path: Path) -> Path:
    """Write ``<warc name>.cdxj`` beside the WARC: one sorted CDXJ line per response and revisit record.

    cdxj-indexer (webrecorder's, also what py-wacz uses) writes the lines: ``<surt> <14-digit
    timestamp> {url, mime, status, digest, length, offset, filename}``. It is written to a temporary
    file and renamed, so a crash never leaves half an index.
    """
    from cdxj_indexer.main import CDXJIndexer

    warc_path = Path(warc_path)
    out = warc_path.with_name(warc_path.name + CDXJ_SUFFIX)
    tmp = out.with_name(out.name + ".tmp")
    # records explicitly: CDXJIndexer's defaults take metadata records too (and py-wacz, once imported,
    # warcinfo). Revisit records are indexed so that replay resolves them to the earlier capture.
    try:
        CDXJIndexer(output=str(tmp), inputs=[str(warc_path)], sort=True, records="response,revisit").process_all()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def index_around_damage(warc_path: Path) -> Path:
    """Write ``<warc name>.cdxj`` for a file damaged in the middle, from the records ``scan_records`` finds on
    both sides of the damage: cdxj-indexer (``write_cdxj``) stops at the first unreadable record."""
    warc_path = Path(warc_path)
    lines = []
    for record in scan_records(warc_path, lambda damage: None):
        if record.type not in ("response", "revisit"):
            continue
        status = record.http_status()
        head = record.block[: record.block.find(b"\r\n\r\n")].decode("latin-1") if status is not None else ""
        mime = "warc/revisit" if record.type == "revisit" else next(
            (line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:] if line.lower().startswith("content-type:")), "",
        )
        lines.append(cdxj_line(
            record.url, record.headers.get("warc-date", ""), mime, status, record.headers.get("warc-payload-digest"),
            record.offset, record.length, warc_path.name,
        ))
    return write_index(warc_path, lines)


def _page_line(page: dict) -> dict:
    line = dict(page)
    if "url" not in line or "ts" not in line:
        raise ValueError(f"a page needs url and ts: {page!r}")
    if isinstance(line["ts"], datetime):
        line["ts"] = warc_date(line["ts"])
    return line


WACZ_VERSION = "1.1.1"
_INDEX_BLOCK_LINES = 3000  # CDXJ lines per gzip block of indexes/index.cdx.gz, as py-wacz writes them


class _HashingWriter:
    """A write-only stream that counts and hashes what goes through it (a WACZ member being written)."""

    def __init__(self, out):
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)


def _compressed_index(lines: list[str]) -> tuple[bytes, bytes]:
    """(indexes/index.cdx.gz, indexes/index.idx): the sorted CDXJ lines in gzip blocks, and the block index
    (cdxj-indexer's CompressedWriter, as py-wacz uses it)."""
    from cdxj_indexer.main import CompressedWriter

    data, idx = io.BytesIO(), io.StringIO()
    writer = CompressedWriter(idx, data, num_lines=_INDEX_BLOCK_LINES, data_out_name="index.cdx.gz", digest_records=True)
    for line in lines:
        writer.write(line)
    if writer.block:
        writer.flush()
    return data.getvalue(), idx.getvalue().encode("utf-8")


def package_wacz(warc_paths: list[Path], pages: list[dict], out_path: Path) -> Path:
    """A WACZ 1.1.1 package of these WARC files, with pages.jsonl listing `pages` (url, ts, title); the result
    passes `wacz validate`, and pywb and ReplayWeb.page open it.

    Layout: archive/ (the WARC files, stored, not deflated), indexes/index.cdx.gz (gzip blocks of the sorted
    CDXJ lines) and index.idx, pages/pages.jsonl, datapackage.json with the sha256 digest of each file, and
    datapackage-digest.json. The index is made of the CDXJ files beside the WARC files (made by
    ``write_cdxj`` if missing), so the WARC files are read once only, to be copied (py-wacz's ``create``
    would index them all again). Only response and revisit records are indexed: an article record (a
    metadata record) has the article's URL, and replay must never serve it for the page. ``ts`` may be an
    ISO 8601 string or a datetime. The WACZ is written beside out_path and renamed; on failure no
    temporary file is left.
    """
    warc_paths = [Path(p) for p in warc_paths]
    names = [p.name for p in warc_paths]
    if len(set(names)) != len(names):
        raise ValueError(f"WARC file names must be unique inside a WACZ: {names}")
    out_path = Path(out_path)
    tmp_out = out_path.with_name(out_path.name + ".tmp")
    lines: list[str] = []
    for path in warc_paths:
        index = path.with_name(path.name + CDXJ_SUFFIX)
        if not index.exists():
            write_cdxj(path)
        lines += index.read_text("utf-8").splitlines(keepends=True)
    lines.sort()
    index_data, index_idx = _compressed_index(lines)
    page_lines = [{"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}]
    page_lines += [_page_line(page) for page in pages]
    pages_data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in page_lines).encode("utf-8")

    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = datetime.now(timezone.utc).timetuple()[:6]
    resources = []

    def add(zf: zipfile.ZipFile, name: str, source, compress: int) -> None:
        info = zipfile.ZipInfo(name, stamp)
        info.compress_type = compress
        with zf.open(info, "w", force_zip64=True) as member:
            hashing = _HashingWriter(member)
            if isinstance(source, bytes):
                hashing.write(source)
            else:
                with open(source, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        hashing.write(chunk)
        resources.append({"name": Path(name).name.lower(), "path": name,
                          "hash": "sha256:" + hashing.sha256.hexdigest(), "bytes": hashing.size})

    try:
        with zipfile.ZipFile(tmp_out, "w") as zf:
            add(zf, "pages/pages.jsonl", pages_data, zipfile.ZIP_DEFLATED)
            add(zf, "indexes/index.cdx.gz", index_data, zipfile.ZIP_STORED)
            add(zf, "indexes/index.idx", index_idx, zipfile.ZIP_DEFLATED)
            for path in warc_paths:
                add(zf, f"archive/{path.name}", path, zipfile.ZIP_STORED)
            package = json.dumps({"profile": "data-package", "resources": resources, "created": created,
                                  "wacz_version": WACZ_VERSION, "software": software()}, indent=2).encode("utf-8")
            zf.writestr(zipfile.ZipInfo("datapackage.json", stamp), package, zipfile.ZIP_DEFLATED)
            digest = {"path": "datapackage.json", "hash": "sha256:" + hashlib.sha256(package).hexdigest()}
            zf.writestr(zipfile.ZipInfo("datapackage-digest.json", stamp), json.dumps(digest), zipfile.ZIP_DEFLATED)
        with open(tmp_out, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_out, out_path)
    except BaseException:
        tmp_out.unlink(missing_ok=True)
        raise
    return out_path
