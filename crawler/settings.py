"""Scrapy settings of theory-crawler. Every one can be overridden with ``-s NAME=value``."""

BOT_NAME = "theory"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
# Our `crawl` command maps the run's outcome to the documented exit status.
COMMANDS_MODULE = "crawler.commands"

# --- the project's own settings ---
# The two sites of the channel; the crawl of each follows from its URL, so a mirror works with only
# that changed. An empty value leaves that site out.
# The legacy CMS's channel home (2014–2020).
THEORY_BASE_URL = "http://theory.workercn.cn/"
# The current CMS's channel page (2021–).
THEORY_CHANNEL_URL = "https://www.workercn.cn/theory/"
# Further hosts whose current-site article links (/c/YYYY-MM-DD/<id>.shtml) the channel page and the feed
# may give: public captures show /c/ articles served on news.workercn.cn too. Fetched like the channel
# host's; an article link to any other host is counted and logged, not followed.
THEORY_ARTICLE_HOSTS = ["news.workercn.cn"]
# The current channel's JSON feed pages, on the channel's host: {channel} is the channel page's
# directory (theory), {page} counts from 1.
THEORY_FEED_PATH = "/json/{channel}/index_{page}.json"
# articles.jsonl, rejects.jsonl, state.sqlite3, runs/ live here.
THEORY_DATA_DIR = "data"
# Runs in which an article may fail (404, 500 after retries, timeout, rejected) before it is given up.
THEORY_MAX_ATTEMPTS = 3
# Pagination loops cannot outlast this many listing pages per section, or feed pages.
THEORY_MAX_LISTING_PAGES = 5000
# Every this many days a run walks every listing and feed page, not only up to the first known one,
# and so finds articles inserted deep in a listing (an old date, a last page).
THEORY_FULL_WALK_DAYS = 7
# Revisits (crawler/revisions.py): each run re-checks, after its new articles, every written article
# published in the last THEORY_REVISIT_DAYS days plus the THEORY_REVISIT_BUDGET least recently checked
# older ones, with conditional requests; changes go to changes.jsonl. `-a revisit=0` skips them for a run.
THEORY_REVISIT_DAYS = 30
THEORY_REVISIT_BUDGET = 100
# An article is recorded as removed once it has looked removed (404/410, a redirect elsewhere, a page
# without the article frame) in this many runs in a row: one bad day of the site is not a removal.
THEORY_REMOVAL_CONFIRMATIONS = 2
# ... and the first and the confirming of those runs are at least this many hours apart: a rerun minutes
# after a crashed run sees the same bad hour of the site again. 0: runs in a row are enough.
THEORY_REMOVAL_MIN_HOURS = 12
# What the sites' not-found pages served with 200 say in their <title> or main heading: the only wording
# that counts toward a removal. Any other page without the article frame (a new template, a bot check)
# tells nothing about the article.
THEORY_NOT_FOUND_PHRASES = ["页面不存在", "该页面已删除", "您访问的页面不存在"]
# An article written, fetched or checked less than this many hours ago is not revisited (what was just
# fetched is what the site serves now), unless it is on its way to a removal. 0: revisit every run.
THEORY_REVISIT_MIN_HOURS = 20
# Share of the article pages and revisit pages read that may fail to parse before the run reports a layout change.
THEORY_MAX_PARSE_FAILURE_RATIO = 0.2
# ... counted from this many failed pages on: one odd page of a small daily run is not a layout change.
THEORY_MIN_PARSE_FAILURES = 3
# articles.jsonl is fsynced and the state committed after this many items or seconds.
THEORY_SYNC_ITEMS = 200
THEORY_SYNC_SECONDS = 2.0
# A Prometheus text file (name it *.prom in node_exporter's textfile directory) rewritten at the end of
# every run with its exit status, counts and the time of the last success (crawler/metrics.py); "" for none.
THEORY_METRICS_FILE = ""
# Template drift (crawler/drift.py): each site's last THEORY_FIELD_WINDOW written articles are judged on
# which optional fields they carry (source, authors, editor, images, published_time); a field on fewer than
# half the articles its reader expects is a layout alarm (exit 5). 20 spans several daily runs of a few
# articles and is enough to tell a lost field from chance for the fields most articles carry.
THEORY_FIELD_WINDOW = 20
# Values that may repeat on most articles without an alarm (a QR code image under every article, a
# column's byline): image URLs (or their paths) and author names.
THEORY_FIELD_ALLOW = ["本报评论员"]
# Capture every HTTP exchange as WARC/1.1 under <THEORY_DATA_DIR>/warc/ (a file per run, rotated at this
# size, a CDXJ index beside each) and package each run as a WACZ under <THEORY_DATA_DIR>/wacz/.
THEORY_WARC = True
# At least 1 MB (checked): smaller makes thousands of files a run for nothing.
THEORY_WARC_MAX_SIZE = 1_000_000_000
# Fetch (so capture) the images of written articles, each image URL once ever.
THEORY_CAPTURE_IMAGES = True
# Public web archives (crawler/walks/cdx.py): the legacy host may be gone, and an article the site removed
# may survive only there. Where the legacy articles come from: "live" (the legacy host only), "archive"
# (the archive only; the legacy host is never contacted) or "live,archive" (the host first; the archive
# for all articles when its start page fails, and for each article that answers 404/410).
THEORY_LEGACY_SOURCE = "live"
# A CDX server (the Wayback Machine's https://web.archive.org/cdx/search/cdx, or pywb's http://HOST/<coll>/cdx)
# and the replay prefix to which "<14-digit timestamp>id_/<original URL>" is appended (raw mode: the bytes
# as captured, no rewriting): https://web.archive.org/web/, or pywb's http://HOST/<coll>/.
THEORY_ARCHIVE_CDX_URL = "https://web.archive.org/cdx/search/cdx"
THEORY_ARCHIVE_REPLAY_URL = "https://web.archive.org/web/"
# Which capture of an article's page 1 is read: "earliest" is closest to first publication (later ones may
# show edits, or the site's not-found page); "latest" for the last state the archive saw.
THEORY_ARCHIVE_CAPTURE = "earliest"
# Each later page of an article is read from its capture closest in time to page 1's, and only within
# this many days: pages archived years apart may not belong to the same version; such an article is owed.
THEORY_ARCHIVE_MAX_SKEW_DAYS = 30
# Seconds between two requests to the archive, in a download slot of its own: a public archive is a shared
# service and refuses bursts (429). 0 for an archive of one's own on the local network.
THEORY_ARCHIVE_DELAY = 1.0

# --- politeness for the live hosts ---
USER_AGENT = "Mozilla/5.0 (compatible; theory-crawler/1.0; archival crawler of the theory channel of workercn.cn)"
ROBOTSTXT_OBEY = True
# At most 4 requests a second to each host, fewer when it answers slowly: DOWNLOAD_DELAY is the floor
# of AutoThrottle's delay, which follows the host's latency divided by the target concurrency (about one
# request in flight per host, AutoThrottle's own advice for a polite crawl). Two hosts, two slots each.
CONCURRENT_REQUESTS = 4
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 0.25
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
# A stuck run must end: cron starts the next one a day later. A first full crawl takes a few hours.
CLOSESPIDER_TIMEOUT = 12 * 3600
DOWNLOAD_TIMEOUT = 30
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_MAX_TIMES = 5
# After this many connection failures or timeouts in a row on one host, the run sends it nothing more
# (crawler.middlewares.HostBreakerMiddleware): what it still owes is owed to the next run.
THEORY_HOST_MAX_FAILURES_IN_A_ROW = 5
# The site's pages are tens of KB. Scrapy's defaults (1 GiB, warn at 32 MiB) let a gzip bomb inflate to
# 1 GiB in memory and a 50 MB page become one JSON line; the limit holds for the bytes on the wire and
# for the decompressed body alike, and a page over it fails as "too_large" like any other failure.
DOWNLOAD_MAXSIZE = 8 * 1024 * 1024
DOWNLOAD_WARNSIZE = 1024 * 1024
# Every request's errback logs its own failure as one error line with the reason; Scrapy's
# "Gave up retrying" line for the same request would only say it twice.
RETRY_GIVE_UP_LOG_LEVEL = "INFO"

# Scrapy starts this many asyncio tasks for the output of every response; a callback here yields one
# item or a page of links, and the pipelines are synchronous, so 100 (the default) is pure overhead.
CONCURRENT_ITEMS = 8

# Every followed URL comes from the channel's own URL grammar (crawler/urls.py), so neither depth
# accounting nor a URL length check has anything to catch, and both cost time on every request.
SPIDER_MIDDLEWARES = {
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
}
DOWNLOADER_MIDDLEWARES = {
    # 585 < HttpCompressionMiddleware's 590: re-decodes the decompressed pages whose declared charset garbles them.
    "crawler.middlewares.EncodingRepairMiddleware": 585,
    # 560 > RetryMiddleware's 550: sees every try's connection failure, and stops a dead host's retries.
    "crawler.middlewares.HostBreakerMiddleware": 560,
    # 555 > RetryMiddleware's 550: retries a public archive's 429 and 5xx after a wait (Retry-After), not at once.
    "crawler.archive.ArchiveRetryMiddleware": 555,
    # 610 > RedirectMiddleware's 600: sees each redirect before it is followed (see the class).
    "crawler.middlewares.RedirectGuardMiddleware": 610,
    # 950: above every middleware that changes a response: captures the bytes as they came over the wire.
    "crawler.middlewares.WarcCaptureMiddleware": 950,
}

# --- pipelines and extensions ---
# Where every run ends by delivering what it appended as BagIt bags, like `scrapy deliver DIR` (see the
# README's "Delivery"): a downstream archive gets each run once without a cron line of its own. Empty: off.
THEORY_DELIVERY_DIR = ""

ITEM_PIPELINES = {
    "crawler.pipelines.ValidationPipeline": 100,
    "crawler.pipelines.DedupePipeline": 200,
    "crawler.pipelines.StoragePipeline": 300,
}
EXTENSIONS = {
    "scrapy.extensions.logstats.LogStats": None,
    "crawler.extensions.ProgressLog": 0,
    "crawler.extensions.RunReport": 500,
    "crawler.extensions.OneLineRobotsTxtErrors": 510,
    # After RunReport: its spider_closed handler, connected first, sets the exit status this one writes.
    "crawler.metrics.MetricsFile": 520,
    # After RunReport too: the page lists this run's report. Rewrites <THEORY_DATA_DIR>/coverage.html.
    "crawler.extensions.CoveragePage": 530,
}
# Nothing listens: an unattended cron crawler needs neither Scrapy's telnet console nor its remote-control
# HTTP server (which runs Python code sent to it), and each is a door open on the machine for the whole run.
# For debugging, `-s TELNETCONSOLE_ENABLED=1` or `-s REMOTE_CONTROL_ENABLED=1` turns one back on.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_FORMATTER = "crawler.extensions.ConciseLogFormatter"
LOG_LEVEL = "INFO"
LOGSTATS_INTERVAL = 30.0

FEED_EXPORT_ENCODING = "utf-8"
