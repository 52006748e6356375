"""Pages whose declared encoding lies: repaired by EncodingRepairMiddleware, and never written as garbage.

The unit tests build responses by hand from a fixture page of each site; the end-to-end tests serve the
legacy mirror (GBK bytes) with a lying ``Content-Type: text/html; charset=...`` header from 127.0.0.1 and
run the real `scrapy crawl theory`.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
from scrapy import Request
from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.exceptions import DropItem
from scrapy.http import HtmlResponse, Response
from scrapy.settings import Settings
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import build_from_crawler, load_object
from scrapy.utils.test import get_crawler

from conftest import load_expected, read_jsonl, run_crawl
from crawler.loaders import load_article
from crawler.middlewares import EncodingRepairMiddleware
from crawler.pipelines import TEXT_FIELDS, mojibake_problems
from crawler.pipelines import ValidationPipeline
from crawler.readers.legacy import read_article_page
from crawler.state import CrawlState

FIXTURES = Path(__file__).parent / "fixtures"
# GBK bytes declaring charset=gb2312 in a <meta>, with GBK-only characters (珺 昇) in the authors.
GBK_PAGE = (FIXTURES / "pages" / "date_only_article.html").read_bytes()
GBK_URL = json.loads((FIXTURES / "pages" / "index.json").read_text("utf-8"))["articles"]["date_only_article"][0]
GBK_EXPECTED = json.loads((FIXTURES / "pages" / "date_only_article.json").read_text("utf-8"))
TRUE_TEXT = GBK_PAGE.decode("gb18030")
META = '<meta http-equiv="Content-Type" content="text/html; charset=gb2312" />'
assert META in TRUE_TEXT
# A page of the current CMS: UTF-8 bytes declaring <meta charset="utf-8">.
UTF8_PAGE = (FIXTURES / "current_pages" / "standard_article.html").read_bytes()

MIDDLEWARE_LOGGER = "crawler.middlewares"


@pytest.fixture
def crawler():
    return get_crawler()


@pytest.fixture
def middleware(crawler):
    return EncodingRepairMiddleware.from_crawler(crawler)


def html(body: bytes, content_type: str = "text/html", url: str = GBK_URL) -> HtmlResponse:
    return HtmlResponse(url=url, headers={"Content-Type": content_type}, body=body)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == MIDDLEWARE_LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    "body, content_type, true_text, declared, source, actual",
    [
        pytest.param(GBK_PAGE, "text/html; charset=utf-8", TRUE_TEXT, "utf-8", "HTTP header", "gb18030", id="gbk-header-utf8"),
        # w3lib reads iso-8859-1 as cp1252 (as browsers do); both decode anything, as mojibake.
        pytest.param(
            GBK_PAGE, "text/html; charset=iso-8859-1", TRUE_TEXT, "cp1252", "HTTP header", "gb18030", id="gbk-header-latin1"
        ),
        pytest.param(
            TRUE_TEXT.replace(META, '<meta charset="utf-8" />').encode("gb18030"), "text/html",
            TRUE_TEXT.replace(META, '<meta charset="utf-8" />'), "utf-8", "meta", "gb18030", id="gbk-meta-utf8",
        ),
        # GB18030 decodes most UTF-8 CJK as other CJK (涓枃 for 中文); the odd byte before ASCII gives it away.
        pytest.param(TRUE_TEXT.encode("utf-8"), "text/html", TRUE_TEXT, "gb18030", "meta", "utf-8", id="utf8-meta-gb2312"),
    ],
)
def test_a_page_whose_declared_encoding_lies_is_decoded_as_it_is(
    middleware, crawler, caplog, body, content_type, true_text, declared, source, actual
):
    response = html(body, content_type)
    assert response.encoding == declared
    assert response.text != true_text  # what Scrapy alone would hand the spider
    with caplog.at_level(logging.WARNING, logger=MIDDLEWARE_LOGGER):
        repaired = middleware.process_response(Request(response.url), response)
    assert isinstance(repaired, HtmlResponse)
    assert repaired.encoding == actual
    assert repaired.text == true_text
    assert repaired.body == body  # the bytes are kept; only their reading changes
    assert crawler.stats.get_value("theory/encoding/mismatch") == 1
    assert crawler.stats.get_value("theory/encoding/undecodable") is None
    assert warnings_of(caplog) == [f"page {GBK_URL} declares {declared} ({source}) but is {actual}; decoded as {actual}"]


def test_the_repaired_gbk_page_reads_as_the_fixture_says(middleware):
    repaired = middleware.process_response(Request(GBK_URL), html(GBK_PAGE, "text/html; charset=utf-8"))
    item = load_article([read_article_page(repaired)])
    assert {field: getattr(item, field) for field in TEXT_FIELDS} == {field: GBK_EXPECTED[field] for field in TEXT_FIELDS}


@pytest.mark.parametrize(
    "body, content_type",
    [
        pytest.param(GBK_PAGE, "text/html", id="gbk-meta-gb2312"),
        pytest.param(GBK_PAGE, "text/html; charset=gbk", id="gbk-header-gbk"),
        pytest.param(UTF8_PAGE, "text/html", id="utf8-meta-utf8"),
        pytest.param(UTF8_PAGE, "text/html; charset=utf-8", id="utf8-header-utf8"),
        pytest.param(b"\xef\xbb\xbf" + UTF8_PAGE, "text/html; charset=gbk", id="utf8-bom-beats-header"),
        pytest.param(b"<html><body><p>plain ASCII</p></body></html>", "text/html; charset=iso-8859-1", id="ascii-latin1"),
        # A page that itself holds U+FFFD (in UTF-8) is clean in its encoding: nothing to repair.
        pytest.param('<meta charset="utf-8"><p>一个\ufffd字</p>'.encode(), "text/html", id="utf8-with-real-fffd"),
        # Latin text in a Latin encoding: its bytes fit neither UTF-8 nor GB18030.
        pytest.param("<p>Café, crème brûlée.</p>\n".encode("cp1252"), "text/html; charset=iso-8859-1", id="real-latin1"),
    ],
)
def test_a_page_that_decodes_cleanly_is_left_alone(middleware, crawler, caplog, body, content_type):
    response = html(body, content_type)
    with caplog.at_level(logging.WARNING, logger=MIDDLEWARE_LOGGER):
        assert middleware.process_response(Request(response.url), response) is response
    assert crawler.stats.get_value("theory/encoding/mismatch") is None
    assert crawler.stats.get_value("theory/encoding/undecodable") is None
    assert warnings_of(caplog) == []


def test_a_page_that_fits_no_encoding_is_kept_and_counted(middleware, crawler, caplog):
    # A truncated UTF-8 character before ASCII, and a byte (0xFF) that no GB18030 sequence starts.
    body = '<meta charset="utf-8"><p>中文'.encode()[:-1] + b"<p>\xff</p>"
    response = html(body)
    with caplog.at_level(logging.WARNING, logger=MIDDLEWARE_LOGGER):
        assert middleware.process_response(Request(response.url), response) is response
    assert crawler.stats.get_value("theory/encoding/undecodable") == 1
    assert crawler.stats.get_value("theory/encoding/mismatch") is None
    assert warnings_of(caplog) == [
        f"page {GBK_URL} declares utf-8 (meta) but does not decode cleanly in it nor in any other likely encoding"
    ]


def test_a_binary_response_is_not_looked_at(middleware, crawler):
    response = Response(url="http://theory.workercn.cn/upload/a.jpg", body=b"\xff\xd8\xff\xe0" + bytes(range(256)))
    assert middleware.process_response(Request(response.url), response) is response
    assert crawler.stats.get_stats() == {}


def test_it_runs_after_decompression():
    """process_response goes from the highest DOWNLOADER_MIDDLEWARES number to the lowest: ours must come
    after HttpCompressionMiddleware, or it would judge gzip bytes and the fix would be lost."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    in_request_order = build_component_list(settings.getwithbase("DOWNLOADER_MIDDLEWARES"))
    wanted = (HttpCompressionMiddleware, EncodingRepairMiddleware)
    in_response_order = [load_object(path) for path in reversed(in_request_order) if load_object(path) in wanted]
    assert in_response_order == [HttpCompressionMiddleware, EncodingRepairMiddleware]

    crawler = get_crawler()
    request = Request(GBK_URL)
    response = html(gzip.compress(GBK_PAGE), "text/html; charset=utf-8")
    response.headers["Content-Encoding"] = "gzip"
    for component in in_response_order:
        response = build_from_crawler(component, crawler).process_response(request, response)
    assert response.text == TRUE_TEXT
    assert crawler.stats.get_value("theory/encoding/mismatch") == 1


# --- the validation pipeline's last line of defence ---


@pytest.fixture
def validation(tmp_path):
    crawler = get_crawler(settings_dict={"THEORY_DATA_DIR": str(tmp_path), "THEORY_MAX_ATTEMPTS": 3})
    crawler.spider = SimpleNamespace(state=CrawlState(tmp_path))
    yield ValidationPipeline.from_crawler(crawler)
    crawler.spider.state.close()


def valid_record(**changes) -> dict:
    return {**GBK_EXPECTED, "content_hash": "0" * 64, "crawled_at": "2026-11-24T03:17:00+00:00", "warc": [], **changes}


def test_the_fixture_record_is_valid(validation):
    assert validation.problems(valid_record()) == []


@pytest.mark.parametrize(
    "changes, problem",
    [
        # What Scrapy made of the legacy site's pages served as charset=utf-8.
        ({"body": "理论频道".encode("gbk").decode("utf-8", "replace")}, "mojibake: 6 replacement characters in body"),
        ({"title": "为职工\ufffd\ufffd撑起"}, "mojibake: 2 replacement characters in title"),
        # ... as iso-8859-1 (which w3lib reads as cp1252).
        ({"title": "为职工群众".encode("gbk").decode("cp1252")}, "mojibake: Latin-1 run 'ÎªÖ°¹¤ÈºÖÚ' in title"),
        ({"editor": "王某".encode("gbk").decode("cp1252")}, "mojibake: Latin-1 run 'ÍõÄ³' in editor"),
        ({"section_name": "实践与思考".encode("gbk").decode("latin-1")}, "mojibake: Latin-1 run 'Êµ¼ùÓëË¼¿¼' in section_name"),
        # A GBK-only character (昇: 0x95 0x4E) leaves a short run, with a cp1252 sign or a C1 control in it.
        ({"authors": ["周珺", "钱昇".encode("gbk").decode("cp1252")]}, "mojibake: Latin-1 run 'Ç®•' in authors"),
        ({"authors": ["钱昇".encode("gbk").decode("latin-1")]}, "mojibake: Latin-1 run 'Ç®\\x95' in authors"),
        # UTF-8 read as cp1252, the current site's pages served as iso-8859-1.
        ({"source": "中工网".encode().decode("cp1252", "replace")}, "mojibake: Latin-1 run 'ä¸\\xadå·¥ç½' in source"),
    ],
)
def test_garbled_text_is_a_problem(validation, changes, problem):
    assert validation.problems(valid_record(**changes)) == [problem]


def test_a_garbled_item_goes_to_the_rejects_with_the_reason(validation, tmp_path):
    record = valid_record(title="为职工群众".encode("gbk").decode("cp1252"))
    with pytest.raises(DropItem, match="mojibake"):
        validation.process_item(record)
    validation.close_spider()
    (reject,) = read_jsonl(tmp_path / "rejects.jsonl")
    assert reject["reason"] == "mojibake: Latin-1 run 'ÎªÖ°¹¤ÈºÖÚ' in title"


@pytest.mark.parametrize(
    "text",
    ["阿卜杜拉·买买提", "温度升高2°C，约占5%±1%", "Café au lait", "¥100元", "《求是》——“理论”……"],
)
def test_text_with_a_few_latin1_characters_is_fine(validation, text):
    assert mojibake_problems(valid_record(title=text, body=text)) == []


def test_no_row_of_either_mirror_looks_garbled(shared_site, shared_current_site):
    rows = load_expected(shared_site) + load_expected(shared_current_site)
    assert len(rows) > 400
    assert [(row["url"], mojibake_problems(row)) for row in rows if mojibake_problems(row)] == []


# --- end to end: the legacy mirror behind a lying Content-Type header ---


class LyingServer:
    """Serves a site's files on 127.0.0.1 with ``Content-Type: text/html; charset=<charset>`` on every page,
    gzip-compressed for clients that accept it when ``gzip`` is on; counts the pages served."""

    def __init__(self, root: Path, charset: str, gzip_on: bool):
        self.root, self.charset, self.gzip_on = root.resolve(), charset, gzip_on
        self.pages: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = unquote(urlsplit(self.path).path).lstrip("/") or "index.shtml"
                file = (server.root / path).resolve()
                if not file.is_relative_to(server.root) or not file.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = file.read_bytes()
                self.send_response(200)
                if file.suffix == ".shtml":
                    self.send_header("Content-Type", f"text/html; charset={server.charset}")
                    with server.lock:
                        server.pages[path] += 1
                    if server.gzip_on and "gzip" in self.headers.get("Accept-Encoding", ""):
                        body = gzip.compress(body)
                        self.send_header("Content-Encoding", "gzip")
                else:
                    self.send_header("Content-Type", "text/plain" if file.suffix == ".txt" else "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def dumped_stat(log: str, name: str) -> int | None:
    match = re.search(rf"'{re.escape(name)}': (\d+)", log)
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("charset, gzip_on", [("utf-8", True), ("iso-8859-1", False)])
def test_the_mirror_served_with_a_lying_charset_is_written_clean(shared_site, tmp_path, charset, gzip_on):
    data_dir = tmp_path / "data"
    with LyingServer(shared_site / "www", charset, gzip_on) as server:
        result = run_crawl(server.url, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    if gzip_on:
        assert dumped_stat(result.stderr, "httpcompression/response_count")

    rows = read_jsonl(data_dir / "articles.jsonl")
    expected = {row["url"]: row for row in load_expected(shared_site)}
    assert len(rows) == sum(1 for row in expected.values() if not row["duplicate_of"])
    assert not (data_dir / "rejects.jsonl").exists()
    assert "\ufffd" not in (data_dir / "articles.jsonl").read_text("utf-8")
    for row in rows:
        truth = expected[urlsplit(row["url"]).path]
        assert {f: row[f] for f in TEXT_FIELDS} == {f: truth[f] for f in TEXT_FIELDS}, row["url"]

    # Every page was repaired, each with one warning line and one count.
    pages = sum(server.pages.values())
    declared = "utf-8" if charset == "utf-8" else "cp1252"
    warnings = re.findall(rf"declares {declared} \(HTTP header\) but is gb18030; decoded as gb18030", result.stderr)
    assert len(warnings) == pages > len(rows)
    assert dumped_stat(result.stderr, "theory/encoding/mismatch") == pages
    assert dumped_stat(result.stderr, "theory/encoding/undecodable") is None


def test_without_the_repair_the_garbage_is_rejected_not_written(shared_site, tmp_path):
    """The pipeline's check on its own: no line of articles.jsonl holds garbage, and rejects.jsonl says why."""
    data_dir = tmp_path / "data"
    with LyingServer(shared_site / "www", "utf-8", gzip_on=False) as server:
        result = run_crawl(
            server.url, data_dir, DOWNLOADER_MIDDLEWARES=json.dumps({"crawler.middlewares.EncodingRepairMiddleware": None})
        )
    assert "theory/encoding/mismatch" not in result.stderr
    rows = read_jsonl(data_dir / "articles.jsonl")
    assert [row["url"] for row in rows if mojibake_problems(row)] == []
    rejects = read_jsonl(data_dir / "rejects.jsonl")
    assert rejects and all("mojibake" in reject["reason"] for reject in rejects)
