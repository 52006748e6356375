"""What each run appended, and its delivery to downstream archives as BagIt bags, exactly once.

The run report says where a run's lines are: for each JSON Lines output, the byte range from the end of
the previous report's range to the size synced at this run's end (lines a killed run synced without a
report fall in the next run's range), and which WARC files it wrote. ``deliver`` turns each report not yet
delivered into one bag (RFC 8493, bagit-python): the run's range of each file, its report and the WACZ
packages (or bare WARC files) holding its captures. A bag is built in a hidden directory inside DEST and
renamed into place whole; the ledger (``delivered.json`` in the data dir, written under the run lock)
records a run only after that rename, and a bag found in DEST that the ledger lacks (a delivery killed
between the rename and the ledger) is recorded rather than built again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from crawler.capture import packaged_warc_files
from crawler.warc import fsync_dir

logger = logging.getLogger(__name__)

JSONL_FILES = ("articles.jsonl", "changes.jsonl", "duplicates.jsonl")
RUNS_DIR = "runs"
LEDGER = "delivered.json"
BAG_PREFIX = "theory-run-"
PARTIAL_SUFFIX = ".partial"
MAX_LINE_BYTES = 64 << 20  # far above any line (an article is tens of KB): bounds the backward read
_CHUNK = 1 << 20


# -- the run report's ranges ---------------------------------------------------------------------


def reports(runs_dir: Path) -> list[tuple[str, dict]]:
    """(name, report) of every readable run report, oldest first (their names are their start times)."""
    found = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        try:
            report = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("%s: not a readable run report (%s); left out", path, error)
            continue
        if isinstance(report, dict):
            found.append((path.name, report))
    return found


def last_line_digest(path: Path, end: int) -> str | None:
    """SHA-256 of the line that ends at byte ``end`` of the file (None when there is none): what ties a
    report's end offset to the bytes it counted, so that a file rewritten below it is noticed."""
    if end <= 0:
        return None
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size < end:
                return None
            line = b""
            position = end
            while position > 0 and len(line) <= MAX_LINE_BYTES:
                step = min(_CHUNK, position)
                position -= step
                file.seek(position)
                line = file.read(step) + line
                newline = line.rfind(b"\n", 0, len(line) - 1)
                if newline >= 0:
                    line = line[newline + 1 :]
                    break
    except OSError:
        return None
    return hashlib.sha256(line).hexdigest()


def count_lines(path: Path, start: int, end: int) -> int:
    lines = 0
    with open(path, "rb") as file:
        file.seek(start)
        left = end - start
        while left > 0 and (chunk := file.read(min(_CHUNK, left))):
            lines += chunk.count(b"\n")
            left -= len(chunk)
    return lines


def appended_ranges(data_dir: Path, previous: dict | None, synced: dict[str, int]) -> dict[str, dict]:
    """For each JSON Lines output, what this run appended: ``start`` (the previous report's ``end``, 0 for
    the first), ``end`` (the size synced at this run's end), ``lines`` and the digest of the line ending
    at ``end``. A file that changed below the previous end (truncated, replaced) starts again at 0, with
    ``rewritten_below``: the lines the recovery wrote again are in the range, and a delivery keeps only
    those no bag holds yet."""
    before = (previous or {}).get("appended") or {}
    ranges = {}
    for name in JSONL_FILES:
        path = Path(data_dir) / name
        size = path.stat().st_size if path.exists() else 0
        last = before.get(name) or {}
        start = int(last.get("end", 0))
        end = synced.get(name)
        if end is None:  # the output never opened (a failed start): nothing was synced this run
            end = min(start, size)
        entry: dict = {}
        if start > end or (start and last_line_digest(path, start) != last.get("end_line_sha256")):
            logger.warning(
                "%s changed below the end of the previous run's range (byte %d): it was truncated or replaced;"
                " this run's range starts at 0", path, start,
            )
            entry["rewritten_below"] = start
            start = 0
        entry.update(start=start, end=end, lines=count_lines(path, start, end) if end > start else 0)
        entry["end_line_sha256"] = last_line_digest(path, end)
        ranges[name] = entry
    return ranges


def warc_ranges(warc_dir: Path, created: list[str], earlier: list[dict]) -> list[dict]:
    """The WARC files of this run, whole: those it created, and those no earlier report names (a killed
    run's, cut back to their last whole record by this run's recovery). WARC files are never reopened."""
    reported = {entry.get("file") for report in earlier for entry in report.get("warc_files") or [] if isinstance(entry, dict)}
    files = []
    for path in sorted(Path(warc_dir).glob("*.warc.gz")):
        if path.name in created or path.name not in reported:
            files.append({"file": path.name, "start": 0, "end": path.stat().st_size})
    return files


# -- the ledger ----------------------------------------------------------------------------------


def line_key(name: str, line: bytes) -> str:
    """What makes a line the same line again after a rewrite: the article, the event, the dropped copy."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("article_id"), str):
        if name == "changes.jsonl":
            return "|".join(str(record.get(key)) for key in ("event", "article_id", "version", "detected_at"))
        return record["article_id"]
    return "sha256:" + hashlib.sha256(line).hexdigest()


class Ledger:
    """``<data dir>/delivered.json``: the runs delivered, with their bags, and the key of every line a bag
    holds (so that a rewritten file never has a line delivered twice)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            data = json.loads(path.read_text("utf-8")) if path.exists() else {}
        except (OSError, ValueError) as error:
            raise DeliveryFailed(
                1, f"{path} cannot be read ({error}); move it aside, and the next delivery records again the bags it finds in DEST"
            ) from None
        self.runs: dict[str, dict] = data.get("runs", {})
        self.keys: dict[str, set[str]] = {name: set(data.get("keys", {}).get(name, [])) for name in JSONL_FILES}
        self.ends: dict[str, int] = data.get("ends", {})

    def record(self, run: str, bag: str, lines: dict[str, list[bytes]], ends: dict[str, int]) -> None:
        self.runs[run] = {"bag": bag, "delivered_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for name, kept in lines.items():
            self.keys[name].update(line_key(name, line) for line in kept)
        for name, end in ends.items():
            self.ends[name] = max(end, self.ends.get(name, 0))
        try:
            self.save()
        except OSError as error:  # the bag is in place: the next delivery finds it and records it
            raise DeliveryFailed(WRITE_FAILED, f"cannot write {self.path}: {error.strerror or error}") from None

    def save(self) -> None:
        data = {"runs": self.runs, "ends": self.ends, "keys": {name: sorted(keys) for name, keys in self.keys.items()}}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        fsync_dir(self.path.parent)


# -- bags ----------------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """A delivery that could not be done; ``status`` is the exit status (2: DEST unusable, 7: a write
    failed). Nothing was recorded as delivered."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


WRITE_FAILED = 7
BAD_DEST = 2
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_dest(dest: Path) -> None:
    if not dest.is_dir():
        raise DeliveryFailed(BAD_DEST, f"{dest} is not a directory")
    if not os.access(dest, os.W_OK | os.X_OK):
        raise DeliveryFailed(BAD_DEST, f"{dest} is not writable")


def read_range(path: Path, start: int, end: int) -> list[bytes]:
    """The whole lines of ``path`` between the two offsets (a range past the file's end is cut to it)."""
    if not path.exists():
        return []
    lines = []
    with open(path, "rb") as file:
        file.seek(start)
        offset = start
        for line in file:
            if offset + len(line) > end or not line.endswith(b"\n"):
                break
            lines.append(line)
            offset += len(line)
    return lines


def wacz_index(wacz_dir: Path) -> dict[str, Path]:
    """WARC file name -> the WACZ that packages it."""
    return packaged_warc_files(
        wacz_dir, lambda package, error: logger.warning("%s: not a readable WACZ (%s); its WARC files are delivered bare", package, error),
    )


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(directory))


def build_bag(dest: Path, name: str, payload: dict[str, bytes | Path], info: dict) -> Path:
    """Write the payload (path in the bag's data/ -> bytes or a file to copy) as bag ``name`` in DEST:
    built in a hidden directory there, then renamed whole."""
    import bagit

    partial = dest / f".{name}{PARTIAL_SUFFIX}"
    final = dest / name
    if final.exists():
        raise DeliveryFailed(WRITE_FAILED, f"{final} exists already")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for relative, content in payload.items():
            target = partial / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
        bagit.make_bag(str(partial), info, checksums=["sha256", "sha512"])
        _fsync_tree(partial)
        os.rename(partial, final)
        fsync_dir(dest)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError):
            status = WRITE_FAILED if error.errno in FULL or error.errno not in (errno.EROFS, errno.EACCES) else BAD_DEST
            raise DeliveryFailed(status, f"cannot write bag {final}: {error.strerror or error}") from None
        if type(error).__name__ == "BagError":
            raise DeliveryFailed(WRITE_FAILED, f"cannot write bag {final}: {error}") from None
        raise
    return final


def bag_name(report_name: str) -> str:
    return BAG_PREFIX + report_name.removesuffix(".json")


def bag_info(report_name: str, report: dict, sites: list[str]) -> dict:
    info = {
        "Source-Organization": "中工网 (workercn.cn), theory channel (理论频道)",
        "Source-URL": sites or ["(none)"],
        "External-Identifier": f"theory-crawler run {report_name.removesuffix('.json')}",
        "External-Description": (
            "What one theory-crawler run appended: its byte range of articles.jsonl, changes.jsonl and"
            " duplicates.jsonl, its run report, and the web archive of its captures"
        ),
        "Run-Started": str(report.get("started_at")),
        "Run-Finished": str(report.get("finished_at")),
        "Run-Exit-Status": str(report.get("exit_status")),
    }
    for name, entry in (report.get("appended") or {}).items():
        info[f"Range-{name}"] = f"{entry.get('start')}-{entry.get('end')}"
    return info


def payload_lines(bag: Path, name: str) -> list[bytes]:
    path = bag / "data" / name
    return read_range(path, 0, path.stat().st_size) if path.exists() else []


def deliver_runs(data_dir: Path, dest: Path, sites: list[str]) -> list[tuple[Path, dict[str, int]]]:
    """One bag per run report not yet delivered, oldest first; the caller holds the run lock. Returns
    (bag, lines per file) of each bag made. Raises DeliveryFailed at the first bag that cannot be made:
    the runs before it are delivered and recorded, it and those after are not."""
    check_dest(dest)
    for leftover in dest.glob(f".theory-*{PARTIAL_SUFFIX}"):
        logger.warning("removing %s, the partial bag of a delivery that was killed", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    ledger = Ledger(data_dir / LEDGER)
    made = []
    shorter_said: set[str] = set()
    warc_dir, wacz_dir = data_dir / "warc", data_dir / "wacz"
    index = None
    for report_name, report in reports(data_dir / RUNS_DIR):
        if report_name in ledger.runs or not isinstance(report.get("appended"), dict):
            continue  # delivered, or a report of a release that kept no ranges
        name = bag_name(report_name)
        if (dest / name / "bagit.txt").exists():
            # Renamed into place by a delivery killed before its ledger: it is delivered, record it.
            ranges = report["appended"]
            ledger.record(report_name, name, {f: payload_lines(dest / name, f) for f in JSONL_FILES},
                          {f: int(ranges.get(f, {}).get("end", 0)) for f in JSONL_FILES})
            logger.warning("%s was delivered by a delivery killed before it recorded it; recorded now", dest / name)
            continue
        payload: dict[str, bytes | Path] = {}
        kept: dict[str, list[bytes]] = {}
        ends = {}
        for file in JSONL_FILES:
            entry = report["appended"].get(file) or {}
            start, end = int(entry.get("start", 0)), int(entry.get("end", 0))
            path = data_dir / file
            size = path.stat().st_size if path.exists() else 0
            delivered_end = ledger.ends.get(file, 0)
            if (size < delivered_end or start < delivered_end) and file not in shorter_said:
                logger.warning(
                    "%s is shorter than what was delivered, or was rewritten below it (%d bytes now, this range"
                    " from byte %d, %d delivered): delivering only the lines no bag holds yet",
                    path, size, start, delivered_end,
                )
                shorter_said.add(file)
            lines = [line for line in read_range(path, start, end) if line_key(file, line) not in ledger.keys[file]]
            kept[file] = lines
            ends[file] = end
            payload[file] = b"".join(lines)
        payload[f"runs/{report_name}"] = data_dir / RUNS_DIR / report_name
        if index is None:
            index = wacz_index(wacz_dir)
        for entry in report.get("warc_files") or []:
            warc = entry.get("file") if isinstance(entry, dict) else None
            if not warc:
                continue
            if warc in index:
                payload[f"wacz/{index[warc].name}"] = index[warc]
            elif (warc_dir / warc).exists():
                payload[f"warc/{warc}"] = warc_dir / warc
        bag = build_bag(dest, name, payload, bag_info(report_name, report, report.get("sites") or sites))
        ledger.record(report_name, name, kept, ends)
        made.append((bag, {file: len(lines) for file, lines in kept.items()}))
    return made


def deliver_all(data_dir: Path, dest: Path, sites: list[str]) -> Path:
    """One bag of the whole data dir (its outputs up to the latest report's ends, the run reports, the web
    archive); records nothing as delivered."""
    check_dest(dest)
    runs = reports(data_dir / RUNS_DIR)
    latest = next((report["appended"] for _, report in reversed(runs) if isinstance(report.get("appended"), dict)), None)
    payload: dict[str, bytes | Path] = {}
    for file in JSONL_FILES:
        path = data_dir / file
        if latest is None:
            end = path.stat().st_size if path.exists() else 0
        else:
            end = int((latest.get(file) or {}).get("end", 0))
        payload[file] = b"".join(read_range(path, 0, end))
    for directory, pattern in ((RUNS_DIR, "*.json"), ("wacz", "*.wacz"), ("warc", "*.warc.gz*")):
        for path in sorted((data_dir / directory).glob(pattern)):
            payload[f"{directory}/{path.name}"] = path
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    info = {
        "Source-Organization": "中工网 (workercn.cn), theory channel (理论频道)",
        "Source-URL": sites or ["(none)"],
        "External-Identifier": f"theory-crawler data dir {data_dir.resolve()} at {stamp}",
        "External-Description": "The whole theory-crawler data dir (its outputs up to the latest run report's ends), for a first copy or an audit",
    }
    return build_bag(dest, f"theory-all-{stamp}", payload, info)
