"""crawler.warc: WARC 1.1 records as received, rotation, torn-tail recovery, CDXJ and WACZ, on tmp_path only."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.cli import main as warcio_main

from crawler.warc import RecordRef, WarcWriter, package_wacz, read_record, recover, software, write_cdxj

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)  # microsecond 0: the fraction must still be written
HTML = "<html><head><title>劳动与理论</title></head><body>中工网 理论频道</body></html>"
GZIPPED = gzip.compress(HTML.encode("utf-8"), mtime=0)
GBK = HTML.replace("劳动与理论", "国标编码").encode("gbk")
# A raw UTF-8 Location, as a server may send it: the bytes decoded as latin-1, as write_exchange takes them.
RAW_LOCATION = "/新闻/".encode("utf-8").decode("latin-1")

EXCHANGES = [
    dict(
        url="http://theory.example/241/index.shtml",
        status=200,
        response_headers=[
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        payload=GZIPPED,
    ),
    dict(
        url="http://theory.example/old.shtml?from=1",
        status=302,
        response_headers=[("Location", RAW_LOCATION), ("Content-Length", "0")],
        payload=b"",
    ),
    dict(
        url="http://theory.example/missing.shtml",
        status=404,
        response_headers=[("Content-Type", "text/html"), ("Content-Length", "9")],
        payload=b"Not Found",
    ),
    dict(
        url="http://theory.example/241/201901/01/190101000000001.shtml",
        status=200,
        response_headers=[("Content-Type", "text/html; charset=GBK"), ("Content-Length", str(len(GBK)))],
        payload=GBK,
    ),
]


def write(writer: WarcWriter, exchange: dict, **changes) -> RecordRef:
    args = dict(
        method="GET",
        request_headers=[("User-Agent", "theory-crawler/test"), ("Accept-Encoding", "gzip, deflate")],
        request_body=b"",
        protocol="HTTP/1.1",
        ip_address="127.0.0.1",
        date=WHEN,
    )
    args.update(exchange)
    args.update(changes)
    return writer.write_exchange(**args)


def records(path: Path) -> list:
    """(rec_headers, http_headers, raw payload, offset) of every record in a WARC file."""
    out = []
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        for record in it:
            payload = record.raw_stream.read()
            out.append((record.rec_headers, record.http_headers, payload, it.get_record_offset()))
    return out


def warcio_check(path: Path, capsys) -> str:
    """`warcio check -v`: exits 0 only if every digest verifies; -v says 'digest pass' for each one."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        warcio_main(["check", "-v", str(path)])
    out = capsys.readouterr().out
    assert exit_.value.code == 0, out
    assert "digest failed" not in out and "exception" not in out
    return out


@pytest.fixture
def written(tmp_path):
    writer = WarcWriter(tmp_path / "warc", 10**8, {"robotstxt": "obey", "operator": "test"})
    refs = [write(writer, exchange) for exchange in EXCHANGES]
    paths = writer.close()
    return tmp_path / "warc", refs, paths


def test_one_file_of_response_then_request_records(written, capsys):
    directory, refs, paths = written
    assert len(paths) == 1
    path = paths[0]
    assert re.fullmatch(r"theory-\d{8}T\d{6}Z-00000\.warc\.gz", path.name)

    out = warcio_check(path, capsys)
    assert out.count("digest pass") == 1 + 2 * len(EXCHANGES)  # warcinfo, then a response and a request each

    recs = records(path)
    assert len(recs) == 1 + 2 * len(EXCHANGES)
    info, _, info_payload, info_offset = recs[0]
    assert info_offset == 0 and info.get_header("WARC-Type") == "warcinfo"
    assert info.protocol == "WARC/1.1"
    assert info.get_header("WARC-Filename") == path.name
    fields = info_payload.decode("utf-8")
    assert f"software: {software()}\r\n" in fields and software().startswith("theory-crawler/")
    assert "format: WARC File Format 1.1\r\n" in fields and "robotstxt: obey\r\n" in fields

    for n, (exchange, ref) in enumerate(zip(EXCHANGES, refs)):
        response, response_http, payload, offset = recs[1 + 2 * n]
        request, request_http, request_payload, _ = recs[2 + 2 * n]
        assert response.protocol == request.protocol == "WARC/1.1"
        assert response.get_header("WARC-Type") == "response"
        assert response.get_header("WARC-Target-URI") == exchange["url"]
        assert response.get_header("WARC-Date") == "2024-05-06T07:08:09.000000Z"
        assert response.get_header("WARC-IP-Address") == "127.0.0.1"
        assert response.get_header("WARC-Payload-Digest").startswith("sha1:")
        assert response.get_header("WARC-Block-Digest").startswith("sha1:")
        assert response_http.get_statuscode() == str(exchange["status"])
        assert payload == exchange["payload"]  # as written, never decoded
        assert (offset, response.get_header("WARC-Record-ID")) == (ref.offset, ref.record_id)
        assert ref.file == path.name and ref.length > 0

        assert request.get_header("WARC-Type") == "request"
        assert request.get_header("WARC-Concurrent-To") == ref.record_id
        assert request.get_header("WARC-Target-URI") == exchange["url"]
        assert request.get_header("WARC-Date") == response.get_header("WARC-Date")
        assert request_http.protocol == "GET"
        assert request_http.get_header("Host") == "theory.example"  # what Twisted sends, Scrapy doesn't show
        assert request_payload == b""

        assert read_record(directory, ref) == (ref.record_id, exchange["payload"])


def test_headers_are_stored_as_received(written):
    directory, refs, (path,) = written
    raw = gzip.decompress(path.read_bytes())  # all the members, one after the other
    # The compressed payload keeps its Content-Encoding; the chunking is gone, and so is its header.
    assert b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n" in raw
    assert b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n" in raw
    assert b"Transfer-Encoding" not in raw
    # Not percent-encoded by warcio: the very bytes of the wire.
    assert b"HTTP/1.1 302 Found\r\nLocation: /\xe6\x96\xb0\xe9\x97\xbb/\r\nContent-Length: 0\r\n\r\n" in raw
    assert b"HTTP/1.1 404 Not Found\r\n" in raw
    assert b"GET /old.shtml?from=1 HTTP/1.1\r\nHost: theory.example\r\n" in raw

    # warcio decodes the Content-Encoding for readers of the content, so the archive replays.
    with open(path, "rb") as fh:
        first = next(r for r in ArchiveIterator(fh) if r.rec_type == "response")
        assert first.content_stream().read() == HTML.encode("utf-8")


def test_cdxj_lists_each_response(written):
    directory, refs, (path,) = written
    cdxj = path.with_name(path.name + ".cdxj")
    lines = cdxj.read_text("utf-8").splitlines()
    assert lines == sorted(lines) and len(lines) == len(EXCHANGES)
    entries = {}
    for line in lines:
        surt, timestamp, body = line.split(" ", 2)
        entry = json.loads(body)
        assert timestamp == "20240506070809"
        entries[entry["url"]] = (surt, entry)
    for exchange, ref in zip(EXCHANGES, refs):
        surt, entry = entries[exchange["url"]]
        assert surt.startswith("example,theory)/")
        assert entry["status"] == str(exchange["status"])
        assert (entry["filename"], int(entry["offset"]), int(entry["length"])) == (ref.file, ref.offset, ref.length)
        assert entry["digest"].startswith("sha1:")
    assert entries[EXCHANGES[0]["url"]][1]["mime"] == "text/html"
    # write_cdxj alone gives the same index (as after recover(), when the writer never closed).
    cdxj.unlink()
    assert write_cdxj(path).read_text("utf-8").splitlines() == lines


def test_rotation_gives_files_that_each_start_with_warcinfo(tmp_path, capsys):
    directory = tmp_path / "warc"
    writer = WarcWriter(directory, 2000, {"robotstxt": "obey"}, prefix="rot")
    refs = [write(writer, EXCHANGES[n % len(EXCHANGES)], url=f"http://theory.example/{n}.shtml") for n in range(9)]
    paths = writer.close()
    assert writer.files == paths and len(paths) > 2
    assert sorted(directory.glob("*.warc.gz")) == paths
    stamps = {p.name.split("-")[1] for p in paths}
    assert len(stamps) == 1  # one timestamp per writer, the serial counts
    assert [p.name.rsplit("-", 1)[1] for p in paths] == [f"{n:05d}.warc.gz" for n in range(len(paths))]
    for path in paths:
        recs = records(path)
        assert recs[0][0].get_header("WARC-Type") == "warcinfo" and recs[0][3] == 0
        assert recs[0][0].get_header("WARC-Filename") == path.name
        assert len(recs) > 1
        assert path.stat().st_size <= 2000 or len(recs) == 3  # only a lone exchange may exceed max_size
        assert path.with_name(path.name + ".cdxj").exists()
        warcio_check(path, capsys)
    for n, ref in enumerate(refs):
        assert read_record(directory, ref) == (ref.record_id, EXCHANGES[n % len(EXCHANGES)]["payload"])
    assert {ref.file for ref in refs} == {p.name for p in paths}


def test_a_writer_never_reuses_a_file(tmp_path):
    directory = tmp_path / "warc"
    first, second = WarcWriter(directory, 10**6, {}), WarcWriter(directory, 10**6, {})
    refs = [write(first, EXCHANGES[2]), write(second, EXCHANGES[3])]
    paths = first.close() + second.close()
    assert len(set(paths)) == 2
    assert [read_record(directory, ref)[1] for ref in refs] == [EXCHANGES[2]["payload"], EXCHANGES[3]["payload"]]


def test_nothing_written_means_no_file(tmp_path):
    assert WarcWriter(tmp_path / "warc", 10**6, {}).close() == []
    assert not (tmp_path / "warc").exists()


def test_http2_and_bad_headers(tmp_path):
    writer = WarcWriter(tmp_path, 10**6, {})
    ref = write(writer, EXCHANGES[2], protocol="h2")
    with pytest.raises(ValueError):
        write(writer, EXCHANGES[2], response_headers=[("X-Evil", "a\r\nInjected: 1")])
    (path,) = writer.close()
    response = records(path)[1]
    assert response[0].get_header("WARC-Protocol") == "h2"
    assert response[1].protocol == "HTTP/1.1"
    assert read_record(tmp_path, ref)[1] == b"Not Found"


def test_sync_makes_records_readable_and_durable(tmp_path):
    writer = WarcWriter(tmp_path, 10**6, {})
    ref = write(writer, EXCHANGES[0])
    writer.sync()
    assert read_record(tmp_path, ref) == (ref.record_id, GZIPPED)
    writer.close()


class FlakyFile(io.FileIO):
    """A file on a disk that fills up: while `full`, a write gets half its bytes out, then fails."""

    full = False

    def write(self, data):
        if FlakyFile.full:
            super().write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_failed_write_is_rolled_back(tmp_path, monkeypatch, capsys):
    def flaky_open(path, mode, buffering=-1):
        return FlakyFile(path, mode.replace("b", ""))

    monkeypatch.setattr("crawler.warc.open", flaky_open, raising=False)
    writer = WarcWriter(tmp_path, 10**6, {})
    first = write(writer, EXCHANGES[0])
    size = (tmp_path / first.file).stat().st_size
    FlakyFile.full = True
    try:
        with pytest.raises(OSError):
            write(writer, EXCHANGES[3])
    finally:
        FlakyFile.full = False
    assert (tmp_path / first.file).stat().st_size == size  # the half record is gone
    second = write(writer, EXCHANGES[2])
    assert second.offset == size
    (path,) = writer.close()
    assert recover(tmp_path) == {}
    warcio_check(path, capsys)
    assert read_record(tmp_path, first)[1] == GZIPPED and read_record(tmp_path, second)[1] == b"Not Found"


def member_bytes(tmp_path: Path, exchange: dict) -> bytes:
    """The response gzip member of one more exchange, as the writer would have appended it."""
    other = tmp_path / "other"
    writer = WarcWriter(other, 10**6, {})
    ref = write(writer, exchange)
    writer.close()
    data = (other / ref.file).read_bytes()
    return data[ref.offset : ref.offset + ref.length]


@pytest.mark.parametrize("tear", ["half-appended", "request-torn", "zeros"])
def test_recover_cuts_exactly_the_torn_tail(tmp_path, capsys, tear):
    directory = tmp_path / "warc"
    writer = WarcWriter(directory, 10**6, {})
    refs = [write(writer, exchange) for exchange in EXCHANGES]
    writer.sync()
    (path,) = writer.close(index=False)  # killed: its run never indexed it
    whole = path.read_bytes()

    # A second, whole file beside it, which recover() must not touch.
    bystander = WarcWriter(directory, 10**6, {}, prefix="other")
    bystander_ref = write(bystander, EXCHANGES[3])
    (bystander_path,) = bystander.close()
    bystander_bytes, bystander_mtime = bystander_path.read_bytes(), bystander_path.stat().st_mtime_ns

    # The crash: a process killed in the middle of a write leaves part of a gzip member at the end.
    if tear == "half-appended":
        extra = member_bytes(tmp_path, EXCHANGES[0])
        torn, keep = extra[: len(extra) // 2], len(whole)
        path.write_bytes(whole + torn)
    elif tear == "request-torn":  # the last response whole, its request member cut in the middle
        last = refs[-1]
        keep = last.offset + last.length
        torn = whole[keep : keep + (len(whole) - keep) // 2]
        path.write_bytes(whole[:keep] + torn)
    else:  # a file system that extended the file but never wrote the data shows zeros
        torn, keep = b"\0" * 4096, len(whole)
        path.write_bytes(whole + torn)

    assert recover(directory) == {path.name: len(torn)}
    assert path.read_bytes() == whole[:keep]
    assert bystander_path.read_bytes() == bystander_bytes and bystander_path.stat().st_mtime_ns == bystander_mtime
    for exchange, ref in zip(EXCHANGES, refs):
        assert read_record(directory, ref) == (ref.record_id, exchange["payload"])
    assert read_record(directory, bystander_ref)[1] == EXCHANGES[3]["payload"]
    warcio_check(path, capsys)
    kinds = [r[0].get_header("WARC-Type") for r in records(path)]
    assert kinds == ["warcinfo"] + ["response", "request"] * (len(EXCHANGES) - 1) + (
        ["response"] if tear == "request-torn" else ["response", "request"]
    )
    assert recover(directory) == {}  # nothing left to cut


def test_recover_a_file_torn_in_its_warcinfo(tmp_path):
    writer = WarcWriter(tmp_path, 10**6, {})
    write(writer, EXCHANGES[2])
    (path,) = writer.close(index=False)
    path.write_bytes(path.read_bytes()[:25])
    assert recover(tmp_path) == {path.name: 25}
    assert path.stat().st_size == 0


def test_read_record_detects_a_damaged_record(tmp_path):
    writer = WarcWriter(tmp_path, 10**6, {})
    ref = write(writer, EXCHANGES[2])
    (path,) = writer.close()
    data = bytearray(path.read_bytes())
    member = gzip.decompress(bytes(data[ref.offset : ref.offset + ref.length]))
    damaged = gzip.compress(member.replace(b"Not Found", b"Not Fouxd"), mtime=0)
    path.write_bytes(bytes(data[: ref.offset]) + damaged + bytes(data[ref.offset + ref.length :]))
    with pytest.raises(ValueError, match="digest"):
        read_record(tmp_path, RecordRef(ref.file, ref.offset, len(damaged), ref.record_id))


def wacz_validate(path: Path) -> subprocess.CompletedProcess:
    # `python -m wacz` drops main()'s return value (exit 0 even when invalid), so exit with it here.
    return subprocess.run(
        [sys.executable, "-c", "import sys; from wacz.main import main; sys.exit(main())", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wacz_passes_wacz_validate(tmp_path):
    pytest.importorskip("wacz")
    directory = tmp_path / "warc"
    writer = WarcWriter(directory, 2000, {"robotstxt": "obey"})
    refs = [write(writer, exchange) for exchange in EXCHANGES]
    paths = writer.close()
    assert len(paths) > 1
    pages = [
        {"url": EXCHANGES[0]["url"], "ts": WHEN, "title": "理论频道"},
        {"url": EXCHANGES[3]["url"], "ts": "2024-05-06T07:08:09Z", "title": "国标编码"},
    ]
    out = package_wacz(paths, pages, tmp_path / "crawl.wacz")
    assert out == tmp_path / "crawl.wacz" and not list(tmp_path.glob("*.tmp"))

    result = wacz_validate(out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation succeeded, the passed WACZ is valid" in result.stdout

    with zipfile.ZipFile(out) as wacz:
        names = set(wacz.namelist())
        assert {f"archive/{p.name}" for p in paths} <= names
        assert {"indexes/index.cdx.gz", "pages/pages.jsonl", "datapackage.json", "datapackage-digest.json"} <= names
        for p in paths:
            info = wacz.getinfo(f"archive/{p.name}")
            assert info.compress_type == zipfile.ZIP_STORED
            assert wacz.read(info) == p.read_bytes()
        lines = [json.loads(line) for line in wacz.read("pages/pages.jsonl").decode("utf-8").splitlines()]
        assert lines[0]["format"] == "json-pages-1.0"
        assert [(p["url"], p["ts"], p["title"]) for p in lines[1:]] == [
            (EXCHANGES[0]["url"], "2024-05-06T07:08:09.000000Z", "理论频道"),
            (EXCHANGES[3]["url"], "2024-05-06T07:08:09Z", "国标编码"),
        ]
        package = json.loads(wacz.read("datapackage.json"))
        assert package["wacz_version"] == "1.1.1"
        assert all(r["hash"].startswith("sha256:") for r in package["resources"])
        index = gzip.decompress(wacz.read("indexes/index.cdx.gz")).decode("utf-8")
        assert all(ref.record_id and EXCHANGES[n]["url"] in index for n, ref in enumerate(refs))

        # The validator is not a rubber stamp: a page list changed after packaging fails its hash.
        tampered = tmp_path / "tampered.wacz"
        with zipfile.ZipFile(tampered, "w") as copy:
            for info in wacz.infolist():
                data = wacz.read(info)
                if info.filename == "pages/pages.jsonl":
                    data = data.replace("理论频道".encode(), "理论频到".encode())
                copy.writestr(info, data)
    bad = wacz_validate(tampered)
    assert bad.returncode != 0 and "Validation failed" in bad.stdout


def test_pages_need_url_and_ts(tmp_path):
    pytest.importorskip("wacz")
    writer = WarcWriter(tmp_path, 10**6, {})
    write(writer, EXCHANGES[2])
    with pytest.raises(ValueError):
        package_wacz(writer.close(), [{"url": EXCHANGES[2]["url"]}], tmp_path / "x.wacz")


def test_an_article_record_lists_its_pages_response_records(tmp_path, capsys):
    """The metadata record that re-extraction (and other tools) rely on: its headers and JSON body."""
    from crawler.capture import Capture

    capture = Capture(tmp_path, 10**8, {"operator": "test"})
    pages = [write(capture.writer, EXCHANGES[3]), write(capture.writer, EXCHANGES[0])]
    article = {"article_id": "190101000000001", "url": EXCHANGES[3]["url"], "crawled_at": "2024-05-06T07:08:09Z",
               "title": "劳动与理论", "warc": [vars(ref) for ref in pages]}
    capture.article_written(article)
    (path,) = capture.writer.close()
    warcio_check(path, capsys)

    headers, _, body, _ = records(path)[-1]
    assert headers.get_header("WARC-Type") == "metadata"
    assert headers.get_header("WARC-Target-URI") == article["url"]
    assert headers.get_header("Content-Type") == "application/json"
    assert headers.get_header("WARC-Concurrent-To") == pages[-1].record_id
    assert json.loads(body) == {"article_id": "190101000000001", "url": article["url"], "pages": [ref.record_id for ref in pages]}


def scrapy_exchange(url: str, status: int, body: bytes, headers=None):
    from scrapy.http import Request, Response

    request = Request(url, headers={"User-Agent": "theory-crawler/test"})
    return request, Response(url, status=status, headers=headers or {"Content-Type": "text/html"}, body=body, request=request)


NOT_MODIFIED_HEADERS = [("Date", "Mon, 06 May 2024 07:08:09 GMT"), ("ETag", '"5f-abc"'),
                        ("Last-Modified", "Tue, 01 Jan 2019 00:00:00 GMT")]


def test_unchanged_answers_are_revisit_records_that_refer_to_the_last_full_capture(tmp_path, capsys):
    from crawler.capture import Capture

    url = "http://theory.example/241/201901/01/190101000000001.shtml"
    first_run = Capture(tmp_path, 10**8, {})
    original = first_run.record(*scrapy_exchange(url, 200, GBK))
    first_run.close("finished")

    # The next run (a new Capture, the index of earlier captures read back from its file).
    second_run = Capture(tmp_path, 10**8, {})
    unchanged = second_run.record(*scrapy_exchange(url, 200, GBK))
    not_modified = second_run.record(*scrapy_exchange(url, 304, b"", NOT_MODIFIED_HEADERS))
    changed = second_run.record(*scrapy_exchange(url, 200, GBK + b"<p>revised</p>"))
    again = second_run.record(*scrapy_exchange(url, 200, GBK + b"<p>revised</p>"))
    second_run.close("finished")

    assert unchanged == original  # the item's evidence: the record holding the bytes served
    assert changed != original and again == changed
    (first_file,) = {original.file}
    (path,) = sorted(set((tmp_path / "warc").glob("*.warc.gz")) - {tmp_path / "warc" / first_file})
    warcio_check(path, capsys)
    answers = [(headers, http) for headers, http, _, _ in records(path) if headers.get_header("WARC-Type") in ("response", "revisit")]
    assert [headers.get_header("WARC-Type") for headers, _ in answers] == ["revisit", "revisit", "response", "revisit"]
    identical, server_not_modified, full, identical_to_changed = (headers for headers, _ in answers)
    assert identical.get_header("WARC-Profile") == "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
    assert server_not_modified.get_header("WARC-Profile") == "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
    # The 304's revisit record has no block (replay then serves the capture it refers to), the validators
    # as Heritrix writes them; the 304 itself is in the warc-fields metadata record right after it.
    assert answers[1][1] is None and server_not_modified.get_header("Content-Length") == "0"
    assert server_not_modified.get_header("Content-Type") is None
    assert server_not_modified.get_header("WARC-Etag") == '"5f-abc"'
    assert server_not_modified.get_header("WARC-Last-Modified") == "Tue, 01 Jan 2019 00:00:00 GMT"
    assert not_modified.record_id == server_not_modified.get_header("WARC-Record-ID")
    all_records = records(path)
    (at,) = [i for i, (headers, _, _, _) in enumerate(all_records) if headers.get_header("WARC-Record-ID") == not_modified.record_id]
    evidence, _, block, _ = all_records[at + 1]
    assert evidence.get_header("WARC-Type") == "metadata"
    assert evidence.get_header("Content-Type") == "application/warc-fields"
    assert evidence.get_header("WARC-Concurrent-To") == not_modified.record_id
    assert evidence.get_header("WARC-Target-URI") == url
    assert block == (b"HTTP-Status-Line: HTTP/1.1 304 Not Modified\r\n"
                     b"Date: Mon, 06 May 2024 07:08:09 GMT\r\nEtag: \"5f-abc\"\r\nLast-Modified: Tue, 01 Jan 2019 00:00:00 GMT\r\n")
    for revisit in (identical, server_not_modified):
        assert revisit.get_header("WARC-Refers-To-Target-URI") == url
        assert revisit.get_header("WARC-Refers-To") == original.record_id
    original_headers = records(tmp_path / "warc" / first_file)[1][0]
    assert identical.get_header("WARC-Refers-To-Date") == original_headers.get_header("WARC-Date")
    assert identical.get_header("WARC-Payload-Digest") == original_headers.get_header("WARC-Payload-Digest")
    assert identical_to_changed.get_header("WARC-Refers-To") == full.get_header("WARC-Record-ID")

    # Both kinds are in the CDXJ, as replay tools look revisits up there.
    index = [json.loads(line.split(" ", 2)[2]) for line in Path(f"{path}.cdxj").read_text().splitlines()]
    assert sorted(entry.get("mime") for entry in index).count("warc/revisit") == 3


def test_the_wacz_index_holds_the_answers_only_never_an_article_record(tmp_path):
    """An article record has the article's URL: indexed, replay could serve its JSON for the page."""
    from crawler.capture import Capture

    capture = Capture(tmp_path, 10**8, {})
    page = write(capture.writer, EXCHANGES[3])
    capture.article_written({"article_id": "190101000000001", "url": EXCHANGES[3]["url"], "crawled_at": "2024-05-06T07:08:09Z",
                             "title": "国标编码", "warc": [vars(page)]})
    paths = capture.writer.close()
    out = package_wacz(paths, [], tmp_path / "crawl.wacz")
    assert wacz_validate(out).returncode == 0
    with zipfile.ZipFile(out) as wacz:
        index = [json.loads(line.split(" ", 2)[2]) for line in gzip.decompress(wacz.read("indexes/index.cdx.gz")).decode().splitlines()]
    assert [entry["url"] for entry in index] == [EXCHANGES[3]["url"]]
    assert index[0]["mime"] == "text/html" and int(index[0]["offset"]) == page.offset


def test_the_cdxj_lines_made_while_writing_equal_cdxj_indexers_for_the_same_file(tmp_path, monkeypatch):
    """The index is made as records are written (no second read): line for line what cdxj-indexer reads."""
    import shutil

    from crawler.capture import Capture

    capture = Capture(tmp_path, 10**8, {})
    for exchange in EXCHANGES:
        write(capture.writer, exchange)
    url = EXCHANGES[3]["url"]
    page = capture.record(*scrapy_exchange(url, 200, GBK))
    capture.record(*scrapy_exchange(url, 200, GBK))  # identical-payload-digest revisit
    not_modified = capture.record(*scrapy_exchange(url, 304, b"", NOT_MODIFIED_HEADERS))  # block-less revisit
    capture.record(*scrapy_exchange("http://Theory.Example/%E6%97%A0%E6%A0%87?q=%E7%90%86&a=1", 200, b"x"))
    capture.article_written({"article_id": "190101000000001", "url": url, "crawled_at": "2024-05-06T07:08:09Z",
                             "title": "国标编码", "warc": [vars(page)]})
    with monkeypatch.context() as patched:  # closing reads no WARC file again
        import cdxj_indexer.main

        patched.setattr(cdxj_indexer.main.CDXJIndexer, "process_all", lambda self: pytest.fail("the WARC file was read again"))
        (path,) = capture.writer.close()
    made = Path(f"{path}.cdxj").read_text()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = Path(shutil.copy(path, elsewhere))
    assert made == write_cdxj(copy).read_text()
    assert len(made.splitlines()) == len(EXCHANGES) + 4
    # The block-less revisit is indexed without a status (it holds no HTTP headers), as cdxj-indexer does.
    (line,) = [json.loads(entry.split(" ", 2)[2]) for entry in made.splitlines() if f'"offset": "{not_modified.offset}"' in entry]
    assert line["mime"] == "warc/revisit" and "status" not in line


def test_the_evidence_of_a_304_is_no_capture_for_the_indexers_of_replay_tools(tmp_path):
    """cdxj-indexer's default records (`wacz create`, `cdxj-indexer FILE`) index metadata records unless they are
    warc-fields: the 304's evidence record has the page's URL and must never be replayed in its place."""
    from cdxj_indexer.main import CDXJIndexer

    from crawler.capture import Capture

    capture = Capture(tmp_path, 10**8, {})
    url = EXCHANGES[3]["url"]
    capture.record(*scrapy_exchange(url, 200, GBK))
    not_modified = capture.record(*scrapy_exchange(url, 304, b"", NOT_MODIFIED_HEADERS))
    (path,) = capture.writer.close()
    assert [h.get_header("WARC-Type") for h, _, _, _ in records(path)] == [
        "warcinfo", "response", "request", "revisit", "metadata", "request"]
    out = tmp_path / "default.cdxj"
    CDXJIndexer(output=str(out), inputs=[str(path)]).process_all()  # its default records
    entries = [json.loads(line.split(" ", 2)[2]) for line in out.read_text().splitlines()]
    # (py-wacz, once imported, adds warcinfo records to those defaults: they have no URL of a page)
    assert [entry["offset"] for entry in entries if entry.get("url") == url] == [str(records(path)[1][3]), str(not_modified.offset)]


# Each record kind the writer builds itself, against warcio's builder and writer given the same record.
RESPONSE_HEADERS = [("Content-Type", "text/html; charset=gbk"), ("Content-Encoding", "gzip"), ("Location", RAW_LOCATION)]
RECORDS = {
    "response": ("response", [("WARC-Target-URI", "http://t.example/a.shtml"), ("WARC-Date", "2024-05-06T07:08:09.000000Z"),
                              ("WARC-IP-Address", "127.0.0.1"), ("WARC-Protocol", "h2")],
                 ("HTTP/1.1", "200 OK", RESPONSE_HEADERS), GZIPPED, ""),
    "empty response": ("response", [("WARC-Target-URI", "http://t.example/"), ("WARC-Date", "2024-05-06T07:08:09.000000Z")],
                       ("HTTP/1.1", "204 No Content", []), b"", ""),
    "request": ("request", [("WARC-Target-URI", "http://t.example/a.shtml"), ("WARC-Date", "2024-05-06T07:08:09.000000Z"),
                            ("WARC-Concurrent-To", "<urn:uuid:00000000-0000-4000-8000-000000000000>")],
                ("GET", "/a.shtml HTTP/1.1", [("Host", "t.example"), ("If-None-Match", '"x"')]), b"", ""),
    "revisit, not modified": ("revisit", [("WARC-Target-URI", "http://t.example/a.shtml"), ("WARC-Date", "2024-05-06T07:08:09.000000Z"),
                                          ("WARC-Profile", "http://netpreserve.org/warc/1.1/revisit/server-not-modified"),
                                          ("WARC-Refers-To-Target-URI", "http://t.example/a.shtml")],
                              ("HTTP/1.1", "304 Not Modified", [("Etag", '"x"')]), b"", ""),
    # As the writer stores a 304 now: no block, no Content-Type (its 304 goes into a metadata record after it).
    "revisit, not modified, no block": ("revisit", [("WARC-Target-URI", "http://t.example/a.shtml"), ("WARC-Date", "2024-05-06T07:08:09.000000Z"),
                                                    ("WARC-Profile", "http://netpreserve.org/warc/1.1/revisit/server-not-modified"),
                                                    ("WARC-Refers-To-Target-URI", "http://t.example/a.shtml"), ("WARC-Etag", '"x"')],
                                        None, b"", None),
    "revisit, identical payload": ("revisit", [("WARC-Target-URI", "http://t.example/"), ("WARC-Date", "2024-05-06T07:08:09.000000Z"),
                                               ("WARC-Profile", "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"),
                                               ("WARC-Refers-To-Target-URI", "http://t.example/"),
                                               ("WARC-Payload-Digest", "sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ")],
                                   ("HTTP/1.1", "200 OK", RESPONSE_HEADERS), b"", ""),
    "article record": ("metadata", [("WARC-Target-URI", "http://t.example/a.shtml"), ("WARC-Date", "2024-05-06T07:08:09.000000Z"),
                                    ("WARC-Concurrent-To", "<urn:uuid:00000000-0000-4000-8000-000000000000>")],
                       None, '{"article_id":"1","标题":"劳动"}'.encode("utf-8"), "application/json"),
}


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_a_record_built_by_the_writer_is_warcios_record(case):
    from warcio.warcwriter import WARCWriter as WarcioWriter

    from crawler.warc import _WireHeaders, _http_head, record_member

    record_type, warc_headers, http, payload, content_type = RECORDS[case]
    member, record_id, digest = record_member(record_type, warc_headers, _http_head(*http) if http else b"", payload, content_type)
    builder = WarcioWriter(None, gzip=False, warc_version="WARC/1.1")
    given = {"payload": io.BytesIO(payload), "length": len(payload)} if record_type != "revisit" else {}
    record = builder.create_warc_record(
        warc_headers[0][1], record_type, warc_content_type=content_type, warc_headers_dict=dict(warc_headers),
        http_headers=_WireHeaders(http[1], list(http[2]), protocol=http[0]) if http else None, **given,
    )
    if content_type is None:
        record.content_type = None  # how warcio writes a record without a block
    expected = io.BytesIO()
    WarcioWriter(expected, gzip=False, warc_version="WARC/1.1").write_record(record)
    ours = gzip.decompress(member)
    assert ours.count(record_id.encode()) == 1
    assert ours.replace(record_id.encode(), record.rec_headers.get_header("WARC-Record-ID").encode()) == expected.getvalue()
    assert digest == record.rec_headers.get_header("WARC-Payload-Digest")
    for read in ArchiveIterator(io.BytesIO(member), check_digests=True):
        read.content_stream().read()
        assert read.digest_checker.passed is not False


def test_scanning_a_big_file_does_not_hold_it_in_memory(tmp_path):
    """scan_records maps the file; the pages it has read are handed back, so the reader's peak RSS does not
    grow with the file (re-extraction and the index of earlier captures read whole capture files)."""
    writer = WarcWriter(tmp_path, max_size=1 << 30, warcinfo={})
    for number in range(48):  # random bytes do not deflate: a file of about 48 MiB
        write(writer, EXCHANGES[0], url=f"http://theory.example/{number}.shtml", payload=os.urandom(1 << 20),
              response_headers=[("Content-Type", "application/octet-stream")])
    [path] = writer.close()
    assert path.stat().st_size > 48 << 20
    probe = (
        "import resource, sys\n"
        "from crawler.warc import scan_records\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "count = sum(1 for _ in scan_records(sys.argv[1], print))\n"
        "print(count, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True)
    records, grown_mib = map(int, done.stdout.split())
    assert records == 1 + 48 * 2
    assert grown_mib < 16, f"scanning a {path.stat().st_size >> 20} MiB file grew the peak RSS by {grown_mib} MiB"
