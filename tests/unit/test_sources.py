"""Knowledge sources beyond a directory of markdown: an HTTP URL fetched with conditional
requests, HTML and text files with the source's freshness rule, several sources in one index,
and an interrupted ingest resuming. Real Qdrant local mode, real embeddings, real HTTP."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.conftest import FRESHNESS_AS_OF
from tether import packs
from tether.activities import retrieval
from tether.activities.retrieval import RetrievalActivities
from tether.config import RetrievalConfig
from tether.contracts import IngestInput, IngestReport, RetrievalQuery
from tether.domains.support import PACK
from tether.embeddings import DIMENSIONS, Embedder
from tether.knowledge import DocumentError, parse_front_matter
from tether.store import Store
from tether.vectorstore import EdgeStore

PAGE = """<html><head><title>Gift cards</title></head><body><nav>Home | Shop</nav>
<h2>Using a gift card</h2><p>Gift cards can be used online and in every Northwind store.</p>
<h2>Expiry</h2><p>Gift cards {expiry}.</p></body></html>"""


@dataclass
class Site:
    """A web server holding one page, honouring If-None-Match with 304."""

    body: str | None = PAGE.format(expiry="never expire")
    answers: Counter[int] = field(default_factory=Counter)
    conditional: list[str] = field(default_factory=list)

    def etag(self) -> str:
        return f'"{abs(hash(self.body))}"'


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if state.body is None:
                self._answer(404, b"")
                return
            if self.path.startswith("/go/"):  # a redirect to wherever the path says
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/go/"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            match = self.headers.get("If-None-Match")
            if match:
                state.conditional.append(match)
            if match == state.etag():
                self._answer(304, b"")
                return
            self._answer(200, state.body.encode(), {"ETag": state.etag()})

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            state.answers[status] += 1
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/help/gift-cards.html"
    server.shutdown()


@pytest.fixture
def acts(tmp_path: Path, embedder: Embedder) -> Iterator[RetrievalActivities]:
    vectors = EdgeStore(DIMENSIONS, tmp_path / "edge")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield RetrievalActivities(
        embedder,
        lambda _: vectors,
        store,
        RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF, source_hosts=["127.0.0.1"]),
    )
    vectors.close()
    store.close()


def ingest(acts: RetrievalActivities, **source: Any) -> IngestReport:
    return ActivityEnvironment().run(acts.ingest_documents, IngestInput(domain="support", **source))


def ask(acts: RetrievalActivities, text: str) -> list[str]:
    evidence = acts.retrieve_evidence(RetrievalQuery(domain="support", text=text, request_id="r"))
    return [p.text for p in evidence.passages]


def test_a_url_is_fetched_conditionally_and_follows_its_source(
    acts: RetrievalActivities, site: tuple[Site, str]
) -> None:
    state, url = site
    first = ingest(acts, source="help-site", url=url, max_age_days=7)
    assert first.embedded == first.chunks == 2 and not first.not_modified
    assert "Gift cards never expire." in ask(acts, "Do gift cards expire?")

    again = ingest(acts, source="help-site", url=url, max_age_days=7)  # unchanged at the source
    assert again.not_modified and again.embedded == 0
    assert state.answers[304] == 1 and state.conditional == [state.etag()]

    state.body = PAGE.format(expiry="expire after five years")  # updated at the source
    updated = ingest(acts, source="help-site", url=url, max_age_days=7)
    assert updated.embedded == 2 and not updated.not_modified
    texts = ask(acts, "Do gift cards expire?")
    assert "Gift cards expire after five years." in texts
    assert "Gift cards never expire." not in texts
    assert sorted(acts._vectors("support").hashes("help-site")) == [
        "help-site-gift-cards@v2#0",
        "help-site-gift-cards@v2#1",
    ]  # the old version is gone, not just outranked

    state.body = None  # removed at the source
    gone = ingest(acts, source="help-site", url=url, max_age_days=7)
    assert gone.removed == 2 and acts._vectors("support").hashes("help-site") == {}
    assert not any("Gift cards" in t for t in ask(acts, "Do gift cards expire?"))

    state.body = PAGE.format(expiry="expire after five years")  # back, as it was
    back = ingest(acts, source="help-site", url=url, max_age_days=7)
    assert back.embedded == 2 and not back.not_modified  # fetched in full, not a stale 304


def test_sources_keep_their_own_chunks_and_rules(
    acts: RetrievalActivities, site: tuple[Site, str], tmp_path: Path
) -> None:
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "store-hours.txt").write_text(
        "Store hours\n\nNorthwind stores open at nine and close at six on weekdays.\n"
    )
    (docs / "parking.html").write_text(
        "<title>Parking</title><h2>Parking</h2><p>Every store has free customer parking.</p>"
    )
    _, url = site
    ingest(acts, source="help-site", url=url, max_age_days=7)
    notes = ingest(acts, source="notes", path=str(docs), max_age_days=3650)
    assert notes.documents == 2 and notes.embedded == 2
    assert ingest(acts, source="help-site", url=url).removed == 0  # refreshing one source ...
    assert len(acts._vectors("support").hashes("notes")) == 2  # ... leaves the other's chunks alone
    evidence = acts.retrieve_evidence(
        RetrievalQuery(domain="support", text="When do stores open?", request_id="r")
    )
    assert evidence.passages[0].text.startswith("Northwind stores open at nine")
    assert set(evidence.freshness.sources) == {"help-site", "notes"}

    # The notes were written with a 10-year rule; judged 11 years on they are stale.
    later = RetrievalActivities(
        acts._embedder,
        acts._vectors,
        acts._store,
        RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF + timedelta(days=4018)),
    )
    old = later.retrieve_evidence(
        RetrievalQuery(domain="support", text="When do stores open?", request_id="r")
    )
    assert not any("open at nine" in p.text for p in old.passages)
    assert old.freshness.stale_index


class FailingEmbedder:
    """The real embedder, dying after ``calls`` batches: an ingest interrupted midway."""

    def __init__(self, embedder: Embedder, calls: int) -> None:
        self._embedder, self._left = embedder, calls

    def encode_uncached(self, texts: list[str]) -> Any:  # a batch of chunks
        if self._left == 0:
            raise RuntimeError("worker killed")
        self._left -= 1
        return self._embedder.encode_uncached(texts)

    def encode(self, texts: list[str]) -> Any:  # their sentences
        return self._embedder.encode(texts)


def test_an_interrupted_ingest_resumes_without_duplicates(
    acts: RetrievalActivities, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrieval, "EMBED_BATCH", 64)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(60):  # 60 documents x 3 sections = 180 chunks: three batches of 64
        sections = "\n".join(
            f"## Part {j}\n\nItem {i} part {j} ships from warehouse {i * 7 + j} in {j + 2} days."
            for j in range(3)
        )
        (corpus / f"item-{i:02d}.md").write_text(f"# Item {i}\n\n{sections}\n")
    dying = RetrievalActivities(
        FailingEmbedder(embedder, 1), acts._vectors, acts._store, acts._config
    )  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="worker killed"):
        ingest(dying, source="corpus", path=str(corpus))
    written = len(acts._vectors("support").hashes("corpus"))
    assert 0 < written < 180
    resumed = ingest(acts, source="corpus", path=str(corpus))
    assert resumed.chunks == 180 and resumed.embedded == 180 - written  # not a second time
    stored = acts._vectors("support").hashes("corpus")
    assert len(stored) == 180 and len(set(stored)) == 180


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata address
        "http://127.0.0.1.nip.io/x",
        "http://127.0.0.1@169.254.169.254/latest/meta-data/",  # a user part, not the host
        "http://[::1]/x",
        "http://localhost/x",
    ],
)
def test_a_host_the_operator_did_not_allow_is_never_fetched(
    acts: RetrievalActivities, url: str
) -> None:
    with pytest.raises(ApplicationError, match="not a source this worker fetches from") as err:
        ingest(acts, source="elsewhere", url=url)
    assert err.value.non_retryable
    assert acts._vectors("support").hashes("elsewhere") == {}


def test_a_redirect_off_the_allowed_hosts_is_not_followed(
    acts: RetrievalActivities, site: tuple[Site, str]
) -> None:
    state, url = site
    base = url.split("/help/")[0]
    hop = f"{base}/go/http://169.254.169.254/latest/meta-data/"
    with pytest.raises(ApplicationError, match=r"169\.254\.169\.254: not a source"):
        ingest(acts, source="help-site", url=hop)
    assert ingest(acts, source="help-site", url=f"{base}/go/{url}").chunks > 0  # on the host
    assert state.answers[200] == 1


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("https://docs.example.com/a", ["docs.example.com"], True),
        ("https://DOCS.example.com:443/a", ["docs.example.com:443"], True),
        ("https://docs.example.com:8443/a", ["docs.example.com:443"], False),
        ("http://docs.example.com/a", ["docs.example.com:80"], True),
        ("https://docs.example.com.evil.io/a", ["docs.example.com"], False),
        ("https://evil.io/docs.example.com", ["docs.example.com"], False),
        ("http://[::1]:8080/a", ["[::1]:8080"], True),
        ("https://docs.example.com/a", [], False),
        ("http://intra:6379/", ["intra:80"], False),  # a port named is that port only
        ("https://intra:22/", ["intra:443"], False),
        ("http://intra/", ["intra:80"], True),
        ("http://docs.example.com./a", ["docs.example.com"], False),
    ],
)
def test_which_urls_a_host_list_allows(url: str, hosts: list[str], allowed: bool) -> None:
    assert retrieval.allowed_source(httpx.URL(url), hosts) is allowed


def test_with_a_folder_list_only_those_folders_are_read(
    acts: RetrievalActivities, tmp_path: Path
) -> None:
    """Another folder, a way out by ``..``, a link to a file elsewhere: not read. The pack's
    own knowledge is its operator's, and stays readable."""
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (allowed / "hours.md").write_text("# Hours\n\nNorthwind stores open at nine every day.\n")
    (other / "secret.md").write_text("# Secret\n\nThe admin password is hunter2.\n")
    (allowed / "linked.md").symlink_to(other / "secret.md")
    strict = RetrievalActivities(
        acts._embedder,
        acts._vectors,
        acts._store,
        acts._config.model_copy(update={"source_folders": [allowed]}),
    )
    for path in (other, allowed / ".." / "other", tmp_path / "nowhere"):
        with pytest.raises(ApplicationError, match="not a folder this worker reads from"):
            ingest(strict, source="other", path=str(path))
    read = ingest(strict, source="allowed", path=str(allowed))
    assert read.documents == 1  # hours.md; not the link to the secret
    assert not any("hunter2" in t for t in ask(strict, "What is the admin password?"))
    os.mkfifo(allowed / "pipe.md")  # nobody writes to it: reading would wait forever
    skipping = ingest(strict, source="allowed", path=str(allowed))  # returns: the rest is read
    assert skipping.skipped == ["pipe.md: not a regular file"] and skipping.documents == 1
    (allowed / "pipe.md").unlink()
    packs.register(PACK)  # as a worker serving it has
    own = ingest(strict, source="kb", path=str(PACK.knowledge[0].location))
    assert own.documents > 0


def test_front_matter_from_anywhere_holds_no_alias_bomb() -> None:
    """A fetched page's front matter is YAML from a stranger: ten levels of ten aliases would
    be ten billion strings; it is refused at the first alias."""
    levels = ['a0: &a0 ["x"]'] + [
        f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 11)
    ]
    raw = "---\n" + "\n".join(levels) + "\n---\n# Page\n\nText.\n"
    with pytest.raises(DocumentError, match="aliases are not read here"):
        parse_front_matter("page.md", raw)
