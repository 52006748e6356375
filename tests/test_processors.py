"""The loader's processors and the URL grammar, on plain strings.

Expected values follow the field definitions in the mirror's README ("Normalisation rules") and the
docstrings; each table row is one case, so a failure names the input that broke.
"""

from __future__ import annotations

import re

import pytest

from crawler.processors import (
    author_names,
    clean_text,
    image_url,
    looks_like_label,
    looks_like_placeholder,
    page_count,
    placeholder_sources,
    content_hash,
    find_date,
    find_editor,
    find_source,
    find_time,
    published_at,
    split_names,
    strip_author_label,
    strip_site_suffix,
)
from crawler.urls import (
    CURRENT as CURRENT_LAYOUT,
    LEGACY,
    article_id,
    channel_of,
    feed_page_url,
    layout_of,
    article_page_url,
    canonical_article_url,
    canonical_listing_url,
    listing_page_number,
    rebase,
    same_host,
    section_of,
)

SITE = "http://theory.workercn.cn"
CURRENT = "https://www.workercn.cn"
ARTICLE = f"{SITE}/241/201511/06/151106114633189.shtml"

@pytest.mark.parametrize(
    "text, expected",
    [
        ("共3页", 3),
        ("共 12 页", 12),
        ("页次：1/4 共4页", 4),
        ("共0页", None),  # no page is no count
        ("3页", None),
        ("", None),
        (None, None),
    ],
)
def test_page_count_reads_the_n_of_a_pagination_total(text, expected):
    assert page_count(text) == expected


# --- text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("抓牢四个着力点", "抓牢四个着力点"),
        ("　　“三型”党组织建设工作开展以来", "“三型”党组织建设工作开展以来"),  # U+3000 indent
        ("\xa0\xa0\xa0\xa0李堃带领的班组", "李堃带领的班组"),  # a &nbsp; run
        ("\u3000\xa0 \t\r\n正文 \u3000", "正文"),
        ("两个 词", "两个 词"),  # inner whitespace is kept: only the ends are stripped
        ("", None),
        ("　", None),  # <p>　</p>
        ("\xa0", None),  # <p>&nbsp;</p>
        ("\n\t ", None),
    ],
)
def test_clean_text_strips_every_kind_of_whitespace_and_drops_empty_text(text, expected):
    assert clean_text(text) == expected


@pytest.mark.parametrize(
    "title, expected",
    [
        ("抓牢四个着力点加强基层服务型党组织建设-中工网", "抓牢四个着力点加强基层服务型党组织建设"),
        ("标题 - 中工网 ", "标题"),
        ("标题_中工网", "标题"),
        ("标题|中工网", "标题"),
        ("标题｜中工网", "标题"),
        ("标题-理论频道-中工网", "标题"),
        ("2019-2020年工会工作回顾-中工网", "2019-2020年工会工作回顾"),  # a hyphen inside the title stays
        ("关于新就业形态劳动者权益保障的几点思考", "关于新就业形态劳动者权益保障的几点思考"),  # no suffix
        ("标题-中工网评论", "标题-中工网评论"),  # 中工网 not at the end is not the suffix
        ("走进中工网", "走进中工网"),  # no separator: part of the title
        ("新时代困难职工帮扶工作的内在逻辑 - 理论 - 中工网", "新时代困难职工帮扶工作的内在逻辑"),  # the current CMS
        ("标题-理论-中工网", "标题"),
        ("标题 - 人物 - 中工网", "标题 - 人物"),  # another channel's suffix is not ours to take off
        ("理论 - 中工网", "理论"),  # the channel page's own title
    ],
)
def test_strip_site_suffix_removes_only_the_trailing_site_name(title, expected):
    assert strip_site_suffix(title) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("作者：金述华", "金述华"),  # full-width colon, as on the site
        ("作者:金述华", "金述华"),  # half-width colon
        ("作 者：金述华", "金述华"),
        ("　作者：\xa0金述华", "金述华"),
        ("文：金述华", "金述华"),
        ("金述华", "金述华"),  # no label
        ("作者：", ""),
        ("周珺　钱昇", "周珺　钱昇"),  # the label is removed, nothing else
        # a plain-text info line of the current CMS: the names run up to the next label
        ("2025-03-04 09:10:11 来源：工人日报 作者：张三 李四", "张三 李四"),
        ("作者：张三、李四 责任编辑：王五", "张三、李四"),
        ("作者：张三（责任编辑：王五）", "张三"),
    ],
)
def test_strip_author_label(text, expected):
    assert strip_author_label(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("金述华", ["金述华"]),
        ("周珺　钱昇", ["周珺", "钱昇"]),  # U+3000
        ("周珺、钱昇", ["周珺", "钱昇"]),
        ("周珺、 钱昇", ["周珺", "钱昇"]),
        ("周珺 钱昇\xa0赵玥", ["周珺", "钱昇", "赵玥"]),
        ("　周珺　", ["周珺"]),
        ("阿依古丽·买买提、郑堃", ["阿依古丽·买买提", "郑堃"]),  # · belongs to the name
        ("", []),
        ("　", []),
    ],
)
def test_split_names(text, expected):
    assert split_names(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("金述华", ["金述华"]),  # no label: the legacy div.author
        ("作者：张三 李四", ["张三", "李四"]),
        ("作者:张三、李四", ["张三", "李四"]),
        ("作 者：张三", ["张三"]),
        ("文/苏强平", ["苏强平"]),
        ("文／苏强平", ["苏强平"]),  # full-width slash
        ("文｜苏强平", ["苏强平"]),
        ("文|苏强平", ["苏强平"]),
        ("文 / 苏强平", ["苏强平"]),
        ("文：苏强平", ["苏强平"]),
        ("文/图 张三", ["张三"]),
        ("文/图：张三、李四", ["张三", "李四"]),
        ("记者 张三", ["张三"]),
        ("记者：张三 李四", ["张三", "李四"]),
        ("本报记者 张三", ["张三"]),
        ("本报记者 张三 通讯员 李四 王五", ["张三", "李四", "王五"]),
        ("通讯员 李四", ["李四"]),
        ("张三 通讯员 李四", ["张三", "李四"]),  # a name before a role, set apart by a space, is a name
        # an outlet glued to 记者 is not an author
        ("工人日报-中工网记者 张三 通讯员 李四", ["张三", "李四"]),
        ("新华社记者张三", ["张三"]),
        ("文/新华社记者 张三", ["张三"]),
        # the info line as plain text: names start after the label, end at the next one
        ("2025-03-04 09:10:11 来源：工人日报 作者：张三 李四", ["张三", "李四"]),
        ("作者：张三、李四 责任编辑：王五", ["张三", "李四"]),
        ("作者：张三（责任编辑：王五）", ["张三"]),
        ("作者：张三 编辑：王五", ["张三"]),
        ("文静", ["文静"]),  # 文 starts a name, not a label, when nothing follows it as one
        ("作者：", []),
        ("文/", []),
        ("", []),
        ("本报评论员", ["本报评论员"]),
    ],
)
def test_author_names(text, expected):
    assert author_names(text) == expected


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"src": "/a.jpg"}, "/a.jpg"),
        ({"src": " /a.jpg "}, "/a.jpg"),
        ({"src": "/images/blank.gif", "data-src": "/real.jpg"}, "/real.jpg"),
        ({"src": "/images/blank.gif", "data-original": "/real.jpg"}, "/real.jpg"),
        ({"src": "/images/blank.gif", "data-lazy-src": "/real.jpg"}, "/real.jpg"),
        ({"data-lazy-src": "/c.jpg", "data-original": "/b.jpg", "data-src": "/a.jpg"}, "/a.jpg"),  # in that order
        ({"data-lazy-src": "/c.jpg", "data-original": "/b.jpg"}, "/b.jpg"),
        ({"src": "/images/blank.gif", "srcset": "/small.jpg 480w, /large.jpg 800w"}, "/small.jpg"),
        ({"src": "/images/blank.gif", "srcset": "/one.jpg"}, "/one.jpg"),
        ({"src": "/images/blank.gif", "srcset": "/a.jpg, /b.jpg 2x"}, "/a.jpg"),
        ({"src": "/images/blank.gif", "data-srcset": "/lazy.jpg 1x, /lazy@2x.jpg 2x"}, "/lazy.jpg"),
        ({"srcset": "/s.jpg 1x", "data-src": "/d.jpg"}, "/d.jpg"),  # the lazy attributes come first
        ({"src": "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "data-original": "/real.jpg"}, "/real.jpg"),
        ({"src": "DATA:image/png;base64,iVBOR"}, None),  # an inline placeholder alone is no image
        ({"src": "/a.jpg", "data-src": "data:image/gif;base64,R0l"}, "/a.jpg"),  # nor wins over src
        ({"src": "/a.jpg", "data-src": "  "}, "/a.jpg"),
        ({"src": ""}, None),
        ({}, None),
    ],
)
def test_image_url(attributes, expected):
    assert image_url(attributes) == expected


@pytest.mark.parametrize(
    "sources, expected",
    [
        ([], set()),
        (["/a.jpg", "/b.jpg"], set()),
        (["/a.jpg", "/a.jpg"], set()),  # twice can be a real repeat
        (["/blank.gif"] * 3, {"/blank.gif"}),
        (["/blank.gif", "/a.jpg", " /blank.gif", "/blank.gif ", "/b.jpg"], {"/blank.gif"}),
        (["", "", ""], set()),
    ],
)
def test_placeholder_sources(sources, expected):
    assert placeholder_sources(sources) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://www.workercn.cn/upload/resources/image/2026/10/02/2927825.jpg?r=1", False),
        ("http://www.workercn.cn/images/blank.gif", True),
        ("http://www.workercn.cn/images/loading.png?v=2", True),
        ("/static/placeholder-4x3.svg", True),
        ("data:image/gif;base64,R0lGOD", True),
        ("http://www.workercn.cn/images/blank_1x1.gif", True),
        ("http://www.workercn.cn/upload/blanket.jpg", False),  # a word that only starts like one
        ("http://www.workercn.cn/upload/2021/lazyriver.jpg", False),
        ("http://www.workercn.cn/upload/2021/river.jpg", False),
    ],
)
def test_looks_like_placeholder(url, expected):
    assert looks_like_placeholder(url) is expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("张三", False),
        ("工人日报客户端", False),
        ("文", True),
        ("图", True),
        ("编辑", True),
        ("责任编辑", True),
        ("记者", True),
        ("来源：工人日报", True),
        ("作者：张三", True),
        ("文/张三", True),
        ("撰文：张三", True),  # a label the processors do not know
        ("稿件来源:新华社", True),
        ("中工网—《工人日报》", False),
        ("编辑推荐", False),
        ("文静", False),
    ],
)
def test_looks_like_label(value, expected):
    assert looks_like_label(value) is expected


# --- signdate, source, editor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2015-11-05", "2015-11-05"),
        ("2015-11-05 11:46:33", "2015-11-05"),
        ("2015/1/5", "2015-01-05"),
        ("2015.11.05", "2015-11-05"),
        ("2015年11月5日", "2015-11-05"),
        ("发布时间：2015-11-05", "2015-11-05"),
        ("2016-02-29", "2016-02-29"),  # leap day
        ("2015-02-29", None),  # not a leap year
        ("2019-02-30", None),
        ("2015-13-01", None),
        ("0000-01-01", None),
        ("2019-02-30 2019-03-01", "2019-03-01"),  # the first *valid* date
        ("http://theory.workercn.cn", None),  # the first span of div.signdate
        ("来源：中工网—《工人日报》", None),
        ("151106114633189", None),  # an article id is not a date
        ("20151105", None),
        ("", None),
    ],
)
def test_find_date(text, expected):
    assert find_date(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2015-11-05 11:46:33", "11:46:33"),
        ("2019-04-17 08:57:39", "08:57:39"),
        ("2015-11-05 00:00:00", "00:00:00"),
        ("2015-11-05 9:05", "09:05:00"),  # seconds default to 0
        ("2015-11-05\u300011:46:33", "11:46:33"),
        ("2015-11-05\xa011:46:33", "11:46:33"),
        ("2015-11-05", None),  # date-only signdate
        ("2015-11-05 25:00:00", None),
        ("2015-11-05 23:60:00", None),
        ("2015-11-05 23:59:60", None),
        ("11:46:33", None),  # a time without a date
        ("2019-02-30 10:00:00", None),  # the time of an invalid date
        ("", None),
    ],
)
def test_find_time(text, expected):
    assert find_time(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("来源：中工网—《河北工人报》", "中工网—《河北工人报》"),
        ("来源：工人日报", "工人日报"),
        ("来源:工人日报", "工人日报"),  # half-width colon
        ("来源： 工人日报 ", "工人日报"),
        ("来源：\u3000工人日报\u3000", "工人日报"),
        ("来源：\xa0《求是》", "《求是》"),
        ("2015-11-05 来源：中工网", "中工网"),
        # a plain-text info line of the current CMS: the source runs up to the next label
        ("2025-03-04 09:10:11 来源：工人日报客户端 作者：张三 李四", "工人日报客户端"),
        ("2025-03-04 来源：新华社　作者：张三", "新华社"),
        ("来源：人民网 编辑：李四", "人民网"),
        ("来源：人民日报海外版", "人民日报海外版"),
        ("来 源：求是网", "求是网"),
        ("来源：", None),
        ("来源：　", None),
        ("工人日报", None),  # no label: not recognisably a source
        ("2015-11-05", None),
        ("", None),
    ],
)
def test_find_source(text, expected):
    assert find_source(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("（责任编辑：王某某）", "王某某"),
        ("(责任编辑:王某某)", "王某某"),  # half-width brackets and colon
        ("（责任编辑： 刘昇 ）", "刘昇"),
        ("责任编辑：李赟", "李赟"),
        ("责任编辑：李赟　", "李赟"),
        ("（责任编辑：）", None),
        ("（责任编辑：　）", None),
        ("编辑推荐", None),
        ("", None),
        # the other labels of an editor
        ("编辑：王某某", "王某某"),
        ("编辑:王某某", "王某某"),
        ("编 辑：王某某", "王某某"),
        ("（编辑：王某某）", "王某某"),
        ("责编：王某某", "王某某"),
        ("【责编：王某某】", "王某某"),
        ("编辑：王五 来源：工人日报", "王五"),  # up to the next label of the line
        ("编辑：", None),
        ("王某某", None),  # unlabelled: nothing says it is an editor
    ],
)
def test_find_editor(text, expected):
    assert find_editor(text) == expected


@pytest.mark.parametrize(
    "day, time_of_day, expected",
    [
        ("2015-11-05", "11:46:33", "2015-11-05T11:46:33+08:00"),  # the site shows Beijing time
        ("2015-11-05", None, "2015-11-05"),
        (None, None, None),
        (None, "11:46:33", None),  # a time alone says nothing about when
    ],
)
def test_published_at(day, time_of_day, expected):
    assert published_at(day, time_of_day) == expected


# --- content hash: compared by properties, never by value ---------------------------------------------

TITLE = "抓牢四个着力点加强基层服务型党组织建设"
BODY = "“三型”党组织建设工作开展以来……\n（作者单位：冀中能源张矿集团宣东矿）"


def test_content_hash_is_a_sha256_hex_digest():
    assert re.fullmatch(r"[0-9a-f]{64}", content_hash(TITLE, BODY))


def test_content_hash_is_equal_for_the_same_title_and_body():
    assert content_hash(TITLE, BODY) == content_hash(TITLE, BODY)


@pytest.mark.parametrize(
    "title, body",
    [
        (TITLE, BODY.replace("\n", "\n\n")),  # paragraphs broken differently
        (f"　{TITLE} ", f"\xa0{BODY}\u3000"),
        (TITLE, BODY.replace("……", "… …")),
    ],
)
def test_content_hash_ignores_whitespace(title, body):
    assert content_hash(title, body) == content_hash(TITLE, BODY)


@pytest.mark.parametrize(
    "original, copy",
    [
        ("（作者单位：冀中能源张矿集团宣东矿）", "(作者单位:冀中能源张矿集团宣东矿)"),
        ("2015年11月", "２０１５年１１月"),
    ],
    ids=["half-width punctuation", "full-width digits"],
)
def test_content_hash_treats_full_and_half_width_forms_alike(original, copy):
    # The published contract (crawler/schema/article.schema.json, README): "SHA-256 of the title and
    # body, NFKC-normalized, whitespace removed". A copy re-keyed with other character widths is the same article.
    assert content_hash(TITLE, f"{BODY}\n{copy}") == content_hash(TITLE, f"{BODY}\n{original}")


@pytest.mark.parametrize(
    "title, body",
    [
        (TITLE, BODY + "补充一句。"),
        (TITLE, BODY.replace("宣东矿", "宣西矿")),
        ("零容忍党员干部追求低级趣味", BODY),  # same body, other title
        (TITLE, None),
        (None, BODY),
    ],
)
def test_content_hash_differs_when_title_or_body_differs(title, body):
    assert content_hash(title, body) != content_hash(TITLE, BODY)


# --- URLs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        (ARTICLE, ARTICLE),
        (f"{SITE}/241/201511/06/151106114633189_2.shtml", ARTICLE),  # page 2 -> page 1
        (f"{SITE}/241/201511/06/151106114633189_10.shtml", ARTICLE),
        (f"{ARTICLE}?from=list", ARTICLE),
        (f"{ARTICLE}#comment", ARTICLE),
        (f"{SITE}/241/201511/06/151106114633189_3.shtml?a=1&b=2#top", ARTICLE),
        (f"{ARTICLE}?", ARTICLE),
        ("HTTP://THEORY.WORKERCN.CN/241/201511/06/151106114633189.shtml", ARTICLE),  # scheme and host case
        (f"  {ARTICLE}\n", ARTICLE),  # whitespace around an href
        ("http://127.0.0.1:8080/241/201511/06/151106114633189.shtml",
         "http://127.0.0.1:8080/241/201511/06/151106114633189.shtml"),  # the port stays
        (f"{SITE}/", None),
        (f"{SITE}/241/241.shtml", None),  # a listing page
        (f"{SITE}/241/241_2.shtml", None),
        (f"{SITE}/241/201511/06/1511061146331.shtml", None),  # id too short
        (f"{SITE}/241/201511/6/151106114633189.shtml", None),  # one-digit day directory
        (f"{SITE}/241/201511/06/151106114633189.html", None),
        (f"{SITE}/241/201511/06/151106114633189_.shtml", None),
        (f"{SITE}/241/201511/06/151106114633189.shtml/comments", None),
        (f"{SITE}/upload/images/2015/11/06/U1P4T47D1F1DT20151106114633.jpg", None),
        ("javascript:void(0);", None),
        # the current CMS: /c/YYYY-MM-DD/<id>.shtml
        (f"{CURRENT}/c/2026-10-02/8907680.shtml", f"{CURRENT}/c/2026-10-02/8907680.shtml"),
        (f"{CURRENT}/c/2026-10-02/8907680.shtml?t=1#top", f"{CURRENT}/c/2026-10-02/8907680.shtml"),
        ("HTTPS://WWW.WORKERCN.CN/c/2026-10-02/8907680.shtml", f"{CURRENT}/c/2026-10-02/8907680.shtml"),
        (f"{CURRENT}/c/2026-10-02/12345678.shtml", f"{CURRENT}/c/2026-10-02/12345678.shtml"),  # ids grow
        (f"{CURRENT}/c/2026-10-2/8907680.shtml", None),
        (f"{CURRENT}/c/2026-10-02/89076.shtml", None),  # too short for an id of this CMS
        (f"{CURRENT}/c/2026-10-02/8907680_2.shtml", None),  # the current CMS has no page 2
        (f"{CURRENT}/theory/", None),
        (f"{CURRENT}/json/theory/index_2.json", None),
    ],
)
def test_canonical_article_url(url, expected):
    assert canonical_article_url(url) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"{SITE}/241/241.shtml", f"{SITE}/241/241.shtml"),
        (f"{SITE}/241/241_2.shtml", f"{SITE}/241/241_2.shtml"),  # listing pages keep their number
        (f"{SITE}/241/241_3.shtml?page=3#top", f"{SITE}/241/241_3.shtml"),
        ("HTTP://Theory.Workercn.CN/252/252.shtml", f"{SITE}/252/252.shtml"),
        (f"{SITE}/241/242.shtml", None),  # the file must repeat the section's number
        (f"{SITE}/241/", None),
        (f"{SITE}/", None),
        (ARTICLE, None),
    ],
)
def test_canonical_listing_url(url, expected):
    assert canonical_listing_url(url) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        (ARTICLE, "151106114633189"),
        (f"{SITE}/241/201511/06/151106114633189_3.shtml", "151106114633189"),
        (f"{ARTICLE}?from=list#top", "151106114633189"),
        (f"{SITE}/241/241.shtml", None),
        (f"{SITE}/", None),
        (f"{CURRENT}/c/2026-10-02/8907680.shtml", "8907680"),
        ("/c/2021-10-06/6709342.shtml", "6709342"),
    ],
)
def test_article_id(url, expected):
    assert article_id(url) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        (ARTICLE, LEGACY),
        (f"{SITE}/241/201511/06/151106114633189_2.shtml", LEGACY),
        (f"{CURRENT}/c/2026-10-02/8907680.shtml", CURRENT_LAYOUT),
        (f"{SITE}/241/241.shtml", None),
        (f"{CURRENT}/theory/", None),
    ],
)
def test_layout_of(url, expected):
    assert layout_of(url) == expected


@pytest.mark.parametrize(
    "channel_url, expected",
    [
        (f"{CURRENT}/theory/", "theory"),
        (f"{CURRENT}/theory/index.shtml", "theory"),
        ("http://127.0.0.1:8001/lilun/", "lilun"),
        ("/theory/", "theory"),
        (f"{CURRENT}/", None),
    ],
)
def test_channel_of(channel_url, expected):
    assert channel_of(channel_url) == expected


@pytest.mark.parametrize(
    "channel_url, feed_path, page, expected",
    [
        (f"{CURRENT}/theory/", "/json/{channel}/index_{page}.json", 2, f"{CURRENT}/json/theory/index_2.json"),
        ("http://127.0.0.1:8001/theory/", "/json/{channel}/index_{page}.json", 1, "http://127.0.0.1:8001/json/theory/index_1.json"),
        (f"{CURRENT}/lilun/", "/json/lilun/34198_{page}.json", 3, f"{CURRENT}/json/lilun/34198_3.json"),
    ],
)
def test_feed_page_url(channel_url, feed_path, page, expected):
    assert feed_page_url(channel_url, feed_path, page) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        (ARTICLE, "241"),
        (f"{SITE}/252/201511/04/151104091240517_2.shtml", "252"),
        (f"{SITE}/253/253.shtml", "253"),
        (f"{SITE}/253/253_4.shtml", "253"),
        (f"{SITE}/", None),
        (f"{SITE}/241/242.shtml", None),
        (f"{SITE}/css/theory.css", None),
    ],
)
def test_section_of(url, expected):
    assert section_of(url) == expected


@pytest.mark.parametrize(
    "page, expected",
    [
        (1, ARTICLE),
        (2, f"{SITE}/241/201511/06/151106114633189_2.shtml"),
        (3, f"{SITE}/241/201511/06/151106114633189_3.shtml"),
        (12, f"{SITE}/241/201511/06/151106114633189_12.shtml"),
    ],
)
def test_article_page_url(page, expected):
    assert article_page_url(ARTICLE, page) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"{SITE}/241/241.shtml", 1),
        (f"{SITE}/241/241_2.shtml", 2),
        (f"{SITE}/241/241_15.shtml?page=3", 15),
        (f"{SITE}/241/242_2.shtml", None),  # another section's number in the file name: not a listing
        (ARTICLE, None),
    ],
)
def test_listing_page_number(url, expected):
    assert listing_page_number(url) == expected


@pytest.mark.parametrize(
    "url, base, expected",
    [
        ("http://127.0.0.1:8000/241/201511/06/151106114633189.shtml", f"{SITE}/", ARTICLE),
        (ARTICLE, "http://127.0.0.1:9/", "http://127.0.0.1:9/241/201511/06/151106114633189.shtml"),
    ],
)
def test_rebase_moves_a_url_to_the_base_host(url, base, expected):
    assert rebase(url, base) == expected


@pytest.mark.parametrize("page", [2, 3, 12])
def test_article_page_url_leads_back_to_page_1(page):
    assert canonical_article_url(article_page_url(ARTICLE, page)) == ARTICLE


@pytest.mark.parametrize(
    "url, other, expected",
    [
        (ARTICLE, f"{SITE}/", True),
        ("HTTP://THEORY.WORKERCN.CN/241/241.shtml", f"{SITE}/", True),
        ("http://news.workercn.cn/32841/32841.shtml", f"{SITE}/", False),  # a sibling host is off-site
        ("http://www.workercn.cn/", f"{SITE}/", False),
        ("http://127.0.0.1:8081/241/241.shtml", "http://127.0.0.1:8080/", False),  # another port, another site
        ("http://127.0.0.1:8080/241/241.shtml", "http://127.0.0.1:8080/", True),
    ],
)
def test_same_host(url, other, expected):
    assert same_host(url, other) is expected
