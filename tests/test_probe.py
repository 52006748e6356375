"""`scrapy probe URL`, run as a maintainer runs it, against tiny pages of both sites on 127.0.0.1.

The pages are written here, smallest copies of the markup in the shared mirrors' READMEs: the current
CMS's UTF-8 pages and JSON feed, and a legacy GBK page under a gb2312 declaration. One server holds
both sites, as their URL spaces do not overlap.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FAST, PROJECT_ROOT
from crawler.commands.probe import kind_of
from fixture_server import FixtureServer

CURRENT_ARTICLE = "c/2026-10-02/8907680.shtml"
NO_BODY_ARTICLE = "c/2026-10-03/8907690.shtml"
LEGACY_ARTICLE = "241/201511/06/151106114633189.shtml"
DRIFTED_ARTICLE = "c/2026-10-04/8907700.shtml"

CURRENT_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>劳动创造幸福 - 理论 - 中工网</title></head>
<body>
<div class="header"><form action="/search/"></form><a href="/">首页</a> <a href="/theory/">理论</a></div>
<div class="container"><div class="left">
  <div class="crumbs"><a href="/">首页</a> &gt; <a href="/theory/">理论</a> &gt; 正文</div>
  <h1 class="title">劳动创造幸福</h1>
  <div class="info"><span class="time">2026-10-02 15:41:16</span><span class="source">来源：工人日报客户端</span><span class="author">作者：张三</span></div>
  {body}
  <div class="editor">责任编辑：王某某</div>
</div>
<div class="right"><div class="hot"><h3>热点</h3><ul><li><a href="/c/2026-09-01/8900001.shtml">人物</a></li></ul></div></div></div>
</body></html>
"""
CURRENT_BODY = """<div class="ccontent">
    <p style="text-indent: 2em;">工人日报-中工网记者 张三 通讯员 李四</p>
    <p style="text-indent: 2em;">第一段正文。</p>
    <p style="text-indent: 2em;">第二段<br/>第三段。</p>
  </div>"""

CHANNEL_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>理论 - 中工网</title></head>
<body>
<div class="container"><div class="left"><ul class="list">
<li id="li_8907690"><h3><a href="/c/2026-10-03/8907690.shtml" target="_blank">第二篇</a></h3>
  <div class="info"><div class="info2" style="float:left">2026-10-03 09:00:00</div></div></li>
<li id="li_8907680"><a href="/c/2026-10-02/8907680.shtml" target="_blank"><img src="/upload/x_526x296c.jpg" /></a>
  <h3><a href="/c/2026-10-02/8907680.shtml" target="_blank">劳动创造幸福</a></h3>
  <div class="info"><div class="info2" style="float:left">2026-10-02 15:41:16</div></div></li>
</ul></div>
<div class="right"><div class="hot"><h3>热点</h3><ul><li><a href="/c/2026-09-01/8900001.shtml">人物</a></li></ul></div></div></div>
</body></html>
"""

FEED = [
    {"id": "8907690", "title": "第二篇", "href": "/c/2026-10-03/8907690.shtml", "time": "2026-10-03 09:00:00", "pic": ""},
    {"id": "8907680", "title": "劳动创造幸福", "href": "/c/2026-10-02/8907680.shtml", "time": "2026-10-02 15:41:16", "pic": ""},
    {"id": "8907670", "title": "第零篇", "href": "/c/2026-10-01/8907670.shtml", "time": "2026-10-01 08:00:00", "pic": ""},
]

# Page 1 of a two-page article; 喆 is GBK but not GB2312, so only a gb18030 decode reads it.
LEGACY_PAGE = """<html><head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312" />
<title>王喆谈基层党建-中工网</title></head>
<body>
<div class="channel_nav"><a href="/">理论频道</a> <a href="/241/241.shtml">实践与思考</a></div>
<div class="list_left">
  <div class="weizhi"><span>当前位置：<a href="http://www.workercn.cn/">中工网</a> <a href="/">理论频道</a> <a href="/241/241.shtml">实践与思考</a> - 正文</span></div>
  <div class="article">
    <div class="ctitle"><span>王喆谈基层党建</span></div>
    <div class="author">王喆</div>
    <div class="signdate"><span>http://theory.workercn.cn</span> <span>2015-11-05</span> <span>来源：中工网—《河北工人报》</span></div>
    <div class="ccontent"><p>　　第一段。</p><p>　　第二段。</p>
      <div><p><input type="hidden" name="__totalpage" value="2" /></p><center><a href="151106114633189.shtml">1</a> <a href="151106114633189_2.shtml">2</a> <a href="151106114633189_2.shtml">下一页</a></center></div>
    </div>
  </div>
</div>
</body></html>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe-site")

    def write(path: str, data: bytes) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)

    write(CURRENT_ARTICLE, CURRENT_PAGE.format(body=CURRENT_BODY).encode("utf-8"))
    write(NO_BODY_ARTICLE, CURRENT_PAGE.format(body="").encode("utf-8"))
    # The template drifted: an author label the processors do not know, the editor in an unlabelled
    # element, and an image whose real URL sits in an attribute no lazy loader of theirs uses.
    drifted = CURRENT_PAGE.format(body=CURRENT_BODY.replace(
        "<p style=\"text-indent: 2em;\">第一段正文。</p>",
        "<p style=\"text-align: center;\"><img src=\"/images/blank.gif\" data-url=\"/upload/real.jpg\" /></p><p>第一段正文。</p>",
    )).replace("作者：张三", "撰文：张三").replace('<div class="editor">责任编辑：王某某</div>', '<div class="bj">王某某</div>')
    write(DRIFTED_ARTICLE, drifted.encode("utf-8"))
    write("theory/index.shtml", CHANNEL_PAGE.encode("utf-8"))
    write("json/theory/index_1.json", json.dumps(FEED, ensure_ascii=False).encode("utf-8"))
    write(LEGACY_ARTICLE, LEGACY_PAGE.encode("gbk"))
    write("robots.txt", b"User-agent: *\nDisallow: /cms/\n")
    with FixtureServer(root) as server:
        yield server


def probe(site: FixtureServer, path: str, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scrapy", "probe", site.url + path, *options]
    data_dir = site.root.parent / "probe-data"
    settings = {**FAST, "THEORY_BASE_URL": site.url, "THEORY_CHANNEL_URL": site.url + "theory/", "THEORY_DATA_DIR": data_dir}
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert not data_dir.exists(), "a probe wrote into the data directory"
    return result


def test_current_article_with_every_field(site):
    result = probe(site, CURRENT_ARTICLE)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "status    200" in out
    assert "encoding  utf-8" in out
    assert "kind      article" in out and "layout    current" in out
    assert "title          #0 h1.title  (1 node)" in out
    assert "channel_links  NO MATCH" in out
    assert 'title           "劳动创造幸福"' in out
    assert 'section_name    "理论"' in out
    assert 'published_date  "2026-10-02"' in out
    assert "4 paragraphs" in out
    assert "CHECK" not in out and "fields to check" not in out
    assert out.rstrip().endswith("all required fields present")


def test_a_drifted_article_marks_the_fields_to_check(site):
    result = probe(site, DRIFTED_ARTICLE)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr  # every required field is there
    lines = out.split("item (load_article on this page):")[1].splitlines()

    def mark_after(field: str) -> str:
        index = next(n for n, line in enumerate(lines) if line.startswith(f"  {field} "))
        return lines[index + 1].strip()

    assert mark_after("authors") == '^ CHECK: "撰文：张三" looks like a label, not a value'
    assert mark_after("editor") == "^ CHECK: empty, where crawler.readers.current expects it on 87% of articles"
    assert mark_after("images") == f"^ CHECK: {site.url}images/blank.gif looks like a placeholder, not an article image"
    assert "fields to check: editor, authors, images" in out
    # fields that are fine carry no mark
    assert not mark_after("source").startswith("^")


def test_current_article_without_body(site):
    result = probe(site, NO_BODY_ARTICLE)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "body           NO MATCH" in out
    assert "EMPTY required fields: body\n" in out
    assert "the validation pipeline would reject it: missing body" in out


def test_current_channel_page(site):
    # index.shtml is the channel page's directory, as the site serves it.
    result = probe(site, "theory/index.shtml")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "kind      channel" in out
    assert "channel name: 理论" in out
    # The 热点 sidebar's link is not one of the channel's articles.
    assert "article links: 2\n" in out
    assert f"  {site.url}{NO_BODY_ARTICLE}\n  {site.url}{CURRENT_ARTICLE}\n" in out


def test_feed_page(site):
    result = probe(site, "json/theory/index_1.json")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "kind      feed" in out
    assert "entries: 3\n" in out
    assert "article links: 3\n" in out


def test_legacy_article_page_one_of_two(site):
    result = probe(site, LEGACY_ARTICLE)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "encoding  gb18030" in out
    assert "layout    legacy" in out
    assert "title              #0 div.ctitle  (1 node)" in out
    assert 'title           "王喆谈基层党建"' in out
    assert 'section_name    "实践与思考"' in out
    assert 'authors         ["王喆"]' in out
    assert "multi-page article: 2 pages; only page 1 is loaded here" in out
    assert "all required fields present" in out


def test_missing_page_is_one_line(site):
    result = probe(site, "c/2026-01-01/1234567.shtml")
    assert result.returncode == 1
    assert result.stdout == f"fetch failed: {site.url}c/2026-01-01/1234567.shtml: HTTP 404 Not Found\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_robots_txt_applies(site):
    result = probe(site, "cms/list/", "--kind", "channel")
    assert result.returncode == 1
    assert result.stdout.startswith("fetch failed:") and "robots.txt" in result.stdout
    assert site.requests["/cms/list/"] == 0


def test_bad_url_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "probe", "ftp://127.0.0.1/x"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "not an http(s) URL" in result.stderr


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://legacy.test/", "home"),
        ("http://legacy.test/index.shtml", "home"),
        ("http://legacy.test/241/241_3.shtml", "listing"),
        ("http://legacy.test/241/201511/06/151106114633189_2.shtml", "article"),
        ("http://current.test/theory/", "channel"),
        ("http://current.test/lilun/", "channel"),
        ("http://current.test/theory/index.shtml", "channel"),
        ("http://current.test/json/theory/index_2.json?t=1", "feed"),
        ("http://current.test/c/2026-10-02/8907680.shtml", "article"),
        ("http://current.test", "channel"),
        ("http://current.test/about.html", None),
    ],
)
def test_kind_from_the_url(url, kind):
    assert kind_of(url, "http://legacy.test/", "http://current.test/theory/") == kind
