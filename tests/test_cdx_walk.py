"""The CDX walk and the choice of captures, on CDX answers saved in tests/fixtures/cdx (see its README)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from crawler.walks.cdx import (
    DONE, NO_HOME_CAPTURE, NO_SECTION_READ, QUERY_CAP, Answer, Capture, CdxWalk, HomeLookup, Query, SectionPlan, article_prefix,
    first_page_capture, is_home_capture, later_page_capture, parse_answer, plan_sections, section_prefixes, since_for,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cdx"
LEGACY = "http://theory.workercn.cn"
MIRROR = "http://127.0.0.1:8000"


def answer(name: str) -> Answer:
    return parse_answer((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(
    "name, captures, resume_key, rows, cut, resumable",
    [
        ("wayback_241_first.json", [
            Capture("20151107083012", f"{LEGACY}/241/201511/06/151106114633189.shtml"),
            Capture("20190302110455", f"{LEGACY}/241/201511/06/151106114633189.shtml"),
            Capture("20151107083101", f"{LEGACY}/241/201511/06/151106114633189_2.shtml"),
        ], "cn%2Cworkercn%2Ctheory%29%2F241%2F241.shtml+20151107083000%21", 4, False, True),
        # A revisit record, a capture of a 404 and an image are no article captures; a charset is still HTML.
        ("wayback_241_rest.json", [Capture("20160301120000", f"{LEGACY}/241/201602/14/160214090512345.shtml")], None, 4, False, True),
        ("wayback_241_cut.json", [], None, 0, True, True),
        ("pywb_241.jsonl", [
            Capture("20261206020235", f"{MIRROR}/241/201511/06/151106114633189.shtml"),
            Capture("20261206020236", f"{MIRROR}/241/201511/06/151106114633189_2.shtml"),
        ], None, 3, False, False),
        # Cut mid-line: the whole lines before the cut count, the answer is marked cut.
        ("pywb_241_cut.jsonl", [
            Capture("20261206020235", f"{MIRROR}/241/201511/06/151106114633189.shtml"),
            Capture("20261206020236", f"{MIRROR}/241/201511/06/151106114633189_2.shtml"),
        ], None, 2, True, False),
    ],
)
def test_parse_answer(name, captures, resume_key, rows, cut, resumable):
    assert answer(name) == Answer(captures, resume_key, rows, cut, resumable)


@pytest.mark.parametrize("body, resumable", [(b"", False), (b"[]", True), (b"\n", False)])
def test_an_empty_answer_has_no_captures(body, resumable):
    assert parse_answer(body) == Answer([], resumable=resumable)


@pytest.mark.parametrize("body", [b"<html><body>Service Unavailable</body></html>", b'[{"a": 1}]', b"[1, 2]"])
def test_an_answer_that_is_no_cdx_is_an_error(body):
    with pytest.raises(ValueError):
        parse_answer(body)


def params(query: Query, **kwargs) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(query.url("http://archive.test/cdx", **kwargs)).query)


@pytest.mark.parametrize(
    "query, since, expected",
    [
        (Query("theory.workercn.cn/241/"), None, []),
        (Query("theory.workercn.cn/241/"), "20250101000000", [("from", "20250101000000")]),
        (Query("theory.workercn.cn/241/", 2016), None, [("from", "20160101000000"), ("to", "20161231235959")]),
        (Query("theory.workercn.cn/241/", 2016), "20160601000000", [("from", "20160601000000"), ("to", "20161231235959")]),
        (Query("theory.workercn.cn/241/", resume_key="k%2C1"), None, [("resumeKey", "k%2C1")]),
        (Query("theory.workercn.cn/241/", resume_key="k"), "20250101000000", [("from", "20250101000000"), ("resumeKey", "k")]),
    ],
)
def test_query_url(query, since, expected):
    assert params(query, since=since, limit=100) == [
        ("url", "theory.workercn.cn/241/*"), ("output", "json"), ("filter", "statuscode:200"),
        ("filter", "mimetype:text/html"), ("limit", "100"), ("showResumeKey", "true"), *expected,
    ]


def test_wayback_resume_keys_are_followed_until_the_answer_has_none():
    walk = CdxWalk(section_prefixes("theory.workercn.cn", ["241", "252"]), limit=4, this_year=2026)
    query = walk.first()
    assert query == Query("theory.workercn.cn/241/")
    step = walk.read(query, answer("wayback_241_first.json"))
    assert step.next == Query("theory.workercn.cn/241/", resume_key="cn%2Cworkercn%2Ctheory%29%2F241%2F241.shtml+20151107083000%21")
    # Four rows, the limit, but no resume key: the Wayback answer is whole; no split by year.
    step = walk.read(step.next, answer("wayback_241_rest.json"))
    assert step == type(step)(Query("theory.workercn.cn/252/"))
    step = walk.read(step.next, Answer([]))
    assert step.next is None and walk.end == DONE and walk.complete
    assert walk.articles() == {
        f"{LEGACY}/241/201511/06/151106114633189.shtml": {
            1: [Capture("20151107083012", f"{LEGACY}/241/201511/06/151106114633189.shtml"),
                Capture("20190302110455", f"{LEGACY}/241/201511/06/151106114633189.shtml")],
            2: [Capture("20151107083101", f"{LEGACY}/241/201511/06/151106114633189_2.shtml")],
        },
        f"{LEGACY}/241/201602/14/160214090512345.shtml": {1: [Capture("20160301120000", f"{LEGACY}/241/201602/14/160214090512345.shtml")]},
    }
    assert walk.latest == "20190302110455"


def test_a_pywb_answer_at_the_limit_is_asked_again_year_by_year():
    walk = CdxWalk(section_prefixes("127.0.0.1:8000", ["241"]), limit=3, this_year=2016)
    query = walk.first()
    step = walk.read(query, answer("pywb_241.jsonl"))
    assert step.event == "split_by_year"
    years = [step.next]
    while step.next is not None:
        step = walk.read(step.next, Answer([], rows=1))
        years.append(step.next)
    assert years == [Query("127.0.0.1:8000/241/", 2014), Query("127.0.0.1:8000/241/", 2015), Query("127.0.0.1:8000/241/", 2016), None]
    assert walk.complete


def test_a_year_still_over_the_limit_leaves_the_walk_incomplete():
    walk = CdxWalk(section_prefixes("127.0.0.1:8000", ["241"]), limit=3, this_year=2014)
    walk.read(walk.first(), answer("pywb_241.jsonl"))
    step = walk.read(Query("127.0.0.1:8000/241/", 2014), answer("pywb_241.jsonl"))
    assert step.event == "limit_reached" and step.next is None
    assert walk.ended and not walk.complete
    assert walk.failures == [("127.0.0.1:8000/241/ 2014", "limit_reached")]


def test_a_cut_answer_keeps_its_whole_lines_and_leaves_the_walk_incomplete():
    walk = CdxWalk(section_prefixes("127.0.0.1:8000", ["241", "252"]), this_year=2026)
    step = walk.read(walk.first(), answer("pywb_241_cut.jsonl"))
    assert step.event == "cut_answer" and step.next == Query("127.0.0.1:8000/252/")
    walk.read(step.next, Answer([]))
    assert walk.ended and not walk.complete
    assert walk.failures == [("127.0.0.1:8000/241/", "cut_answer")]
    assert list(walk.articles()) == [f"{MIRROR}/241/201511/06/151106114633189.shtml"]


def test_failed_and_refused_queries():
    walk = CdxWalk(section_prefixes("h", ["241", "252", "253"]), this_year=2026)
    step = walk.failed(walk.first(), "http_503")
    assert step.next == Query("h/252/")
    assert walk.refused().next is None
    assert walk.ended and not walk.complete and walk.failures == [("h/241/", "http_503")]


def test_the_query_cap_bounds_a_server_that_resumes_forever():
    walk = CdxWalk(section_prefixes("h", ["241"]), max_queries=3, this_year=2026)
    step = walk.read(walk.first(), Answer([], resume_key="k"))
    step = walk.read(step.next, Answer([], resume_key="k"))
    step = walk.read(step.next, Answer([], resume_key="k"))
    assert step.next is None and step.event == "query_cap_reached"
    assert walk.end == QUERY_CAP and not walk.complete


@pytest.mark.parametrize(
    "latest, since",
    [(None, None), ("20260301120000", "20260130120000"), ("20150105000000", "20141206000000")],
)
def test_incremental_runs_start_30_days_before_the_latest_capture_seen(latest, since):
    assert since_for(latest) == since


def caps(*stamps: str) -> list[Capture]:
    return [Capture(stamp, "http://h/241/201511/06/151106114633189.shtml") for stamp in stamps]


@pytest.mark.parametrize(
    "stamps, which, chosen",
    [
        (["20190302110455", "20151107083012"], "earliest", "20151107083012"),
        (["20190302110455", "20151107083012"], "latest", "20190302110455"),
        ([], "earliest", None),
    ],
)
def test_first_page_capture(stamps, which, chosen):
    capture = first_page_capture(caps(*stamps), which)
    assert (capture.timestamp if capture else None) == chosen


@pytest.mark.parametrize(
    "stamps, first, chosen",
    [
        # The closest in time, before or after page 1's.
        (["20151101000000", "20151108000000", "20160101000000"], "20151107083012", "20151108000000"),
        (["20151020000000", "20151230000000"], "20151107083012", "20151020000000"),
        # Exactly 30 days away is within; a tie goes to the earlier capture.
        (["20151207083012"], "20151107083012", "20151207083012"),
        (["20151106000000", "20151108000000"], "20151107000000", "20151106000000"),
        # Page 2 archived only years after page 1: none within the window, the article is owed.
        (["20190302110455"], "20151107083012", None),
        (["20151207083013"], "20151107083012", None),
        ([], "20151107083012", None),
    ],
)
def test_later_page_capture_within_the_skew(stamps, first, chosen):
    capture = later_page_capture(caps(*stamps), caps(first)[0], 30)
    assert (capture.timestamp if capture else None) == chosen


def test_replay_url_is_raw_mode():
    capture = Capture("20151107083012", "http://theory.workercn.cn/241/201511/06/151106114633189.shtml")
    assert capture.replay_url("https://web.archive.org/web/") == (
        "https://web.archive.org/web/20151107083012id_/http://theory.workercn.cn/241/201511/06/151106114633189.shtml"
    )


def test_article_prefix_matches_every_page_of_one_article():
    assert article_prefix("http://127.0.0.1:8000/241/201511/06/151106114633189.shtml") == "127.0.0.1:8000/241/201511/06/151106114633189"


# --- the sections of a full walk, from the archive's capture of the legacy home ---


@pytest.mark.parametrize(
    "name, captures",
    [
        # A 302 and a revisit record are no capture of the page; the default port is the same host.
        ("wayback_home.json", [
            Capture("20150310101010", f"{LEGACY}/"), Capture("20190815080000", f"{LEGACY}/"),
        ]),
        # A URL with a query string is another page than the one replayed at the bare URL.
        ("pywb_home.jsonl", [Capture("20261206020230", f"{MIRROR}/index.shtml")]),
        # The answer to a section's prefix: articles and listings, no home.
        ("pywb_241.jsonl", []),
    ],
)
def test_home_captures(name, captures):
    assert parse_answer((FIXTURES / name).read_bytes(), page=is_home_capture).captures == captures


def test_the_home_query_asks_for_that_url_only():
    assert params(Query("theory.workercn.cn/index.shtml", exact=True), limit=100)[0] == ("url", "theory.workercn.cn/index.shtml")


def test_the_home_is_asked_in_both_forms_and_its_latest_capture_is_replayed():
    lookup = HomeLookup("theory.workercn.cn")
    first = lookup.next_query()
    lookup.read(first, parse_answer((FIXTURES / "wayback_home.json").read_bytes(), page=is_home_capture))
    second = lookup.next_query()
    lookup.read(second, Answer([Capture("20160101000000", f"{LEGACY}/index.shtml")]))
    assert [first, second] == [Query("theory.workercn.cn/", exact=True), Query("theory.workercn.cn/index.shtml", exact=True)]
    assert lookup.next_query() is None
    assert lookup.latest() == Capture("20190815080000", f"{LEGACY}/")
    assert lookup.plan(["239", "254"], KNOWN, None, None) == SectionPlan(["239", "254", "241", "253"], from_home=True)


KNOWN = ["239", "241", "253"]


@pytest.mark.parametrize(
    "read, only, channel, failures, captured, sections, from_home, fallback, complete",
    [
        # The home's sections first, in its order, then the known ones it does not name.
        (["254", "241"], None, None, [], True, ["254", "241", "239", "253"], True, None, True),
        # -a sections= restricts the walk to the sections given; the channel's id is never a legacy section.
        (["254", "241"], ["254"], None, [], True, ["254"], True, None, True),
        (["254", "241"], None, "241", [], True, ["254", "239", "253"], True, None, True),
        # The archive holds no capture of the home, or one that names no section: its last word, complete.
        ([], None, None, [], False, KNOWN, False, NO_HOME_CAPTURE, True),
        ([], None, None, [], True, KNOWN, False, NO_SECTION_READ, True),
        # The home's query or replay failed: a retry next run can do better, incomplete.
        ([], None, None, [("home h/", "http_503")], False, KNOWN, False, "http_503", False),
        ([], None, None, [("home 2015id_/http://h/", "archive_http_404")], True, KNOWN, False, "archive_http_404", False),
        # One form answered and was read, the other failed: that other may hold a later capture.
        (["254"], None, None, [("home h/index.shtml", "cut_answer")], True, ["254", *KNOWN], True, None, False),
    ],
)
def test_plan_sections(read, only, channel, failures, captured, sections, from_home, fallback, complete):
    plan = plan_sections(read, KNOWN, only, channel, failures, captured)
    assert (plan.sections, plan.from_home, plan.fallback, plan.complete) == (sections, from_home, fallback, complete)


def test_a_failed_home_query_or_replay_is_remembered_by_the_lookup():
    lookup = HomeLookup("h")
    lookup.failed(lookup.next_query(), "not_cdx")
    lookup.read(lookup.next_query(), Answer([Capture("20150101000000", "http://h/index.shtml")]))
    lookup.replay_failed(lookup.latest(), "archive_http_404")
    plan = lookup.plan([], KNOWN, None, None)
    assert plan.failures == (("home h/", "not_cdx"), ("home 20150101000000id_/http://h/index.shtml", "archive_http_404"))
    assert plan.fallback == "not_cdx" and not plan.complete
