"""Each ``openstack cache`` command: check_parser first, then take_action (or cliff's run) on scripted nodes."""

from __future__ import annotations

import json

import httpx
import pytest
from osc_lib import exceptions

from glancecache_client.views import CACHE_COLUMNS, HEADERS
from osc_plugin.v2 import cache

from .conftest import (
    CATALOG,
    IMAGE,
    NODE_A,
    NODE_B,
    OTHER,
    THIRD,
    FakeApp,
    FakeNode,
    Harness,
    ParserError,
    cache_body,
    check_parser,
    reply,
    run_display,
)

FORBIDDEN = reply(403, {"message": "You are not authorized to complete cache_list action.", "code": 403},
                  **{"x-openstack-request-id": "req-403"})


# -- list ---------------------------------------------------------------------------------------------------


def test_list_parser_collects_repeated_hosts(harness: Harness) -> None:
    cmd = harness.command(cache.ListCache)
    check_parser(cmd, [], [("hosts", [])])
    check_parser(cmd, ["--host", "node-a", "--host", "node-b:9393"], [("hosts", ["node-a", "node-b:9393"])])


def test_list_without_host_uses_the_catalog_endpoint_and_warns(harness: Harness) -> None:
    harness.node(CATALOG).on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 1024, 3)], [OTHER])))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, [], [("hosts", [])])

    columns, rows = cmd.take_action(parsed)

    # OSC's own headers (`openstack cached image list`), plus Node and Checksum; absent values as OSC shows them.
    assert columns == (
        "Node", "ID", "State", "Size", "Hits", "Last Accessed (UTC)", "Last Modified (UTC)", "Checksum"
    )
    assert [HEADERS[key] for key in CACHE_COLUMNS] == list(columns)  # one view layer names both
    assert isinstance(rows, list)  # a list, not a generator: cliff may sort before printing
    assert rows == [
        (CATALOG, IMAGE, "cached", 1024, 3, "2023-11-14T22:13:20.500000Z", "2023-11-14T19:26:40Z", "N/A"),
        (CATALOG, OTHER, "queued", "N/A", "N/A", "N/A", "N/A", "N/A"),
    ]
    [request] = harness.node(CATALOG).calls()
    assert (request.method, str(request.url)) == ("GET", f"{CATALOG}/v2/cache")
    assert request.headers["x-auth-token"] == "osc-token"
    [warning] = harness.stderr_lines
    assert warning.startswith("Warning: no --host given") and CATALOG in warning and "load-balanced" in warning


def test_quiet_suppresses_the_load_balancer_warning(harness: Harness) -> None:
    harness.node(CATALOG).on("GET", "/v2/cache", reply(200, cache_body()))
    harness.app.options.verbose_level = 0
    cmd = harness.command(cache.ListCache)
    cmd.take_action(check_parser(cmd, [], []))
    assert harness.stderr_lines == []


def test_list_on_several_hosts_puts_node_first_and_never_asks_the_catalog(harness: Harness) -> None:
    harness.node(NODE_A).on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 10, 1)])))
    harness.node(NODE_B).on("GET", "/v2/cache", reply(200, cache_body([], [IMAGE])))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b"], [("hosts", ["node-a", "node-b"])])

    columns, rows = cmd.take_action(parsed)

    assert columns[:2] == ("Node", "ID")
    assert [(row[0], row[1], row[2]) for row in rows] == [(NODE_A, IMAGE, "cached"), (NODE_B, IMAGE, "queued")]
    assert harness.api.resolved == 0 and harness.stderr_lines == []


@pytest.mark.parametrize(
    ("sort_column", "header"),
    [("Size", "Size"), ("size", "Size"), ("Hits", "Hits"), ("Last Accessed (UTC)", "Last Accessed (UTC)"),
     ("ID", "ID"), ("State", "State"), ("Node", "Node")],
)
def test_sort_on_every_column_keeps_every_row(harness: Harness, sort_column: str, header: str) -> None:
    # OSC 10.5's `cached image list --sort-column Size` prints nothing: cliff cannot compare "N/A" with ints and
    # has already used up a generator. The plugin sorts typed values itself (absent first, as glance does), then
    # shows absent values as OSC does ("N/A"), and every row survives.
    harness.node(NODE_A).on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 300, 1), (OTHER, 100, 0)], [THIRD])))
    harness.node(NODE_B).on("GET", "/v2/cache", reply(200, cache_body([(THIRD, 200, 5)])))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(
        cmd, ["--host", "node-a", "--host", "node-b", "-f", "json", "--sort-column", sort_column], []
    )

    rows = run_display(cmd, parsed, harness.app)

    assert len(rows) == 4
    values = [row[header] for row in rows]
    present = [v for v in values if v != "N/A"]
    assert present == sorted(present) and values == ["N/A"] * (len(values) - len(present)) + present
    if header == "Size":
        assert [row["ID"] for row in rows] == [THIRD, OTHER, THIRD, IMAGE]


def test_sort_descending_and_column_selection(harness: Harness) -> None:
    harness.node(CATALOG).on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 300, 1), (OTHER, 100, 0)])))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(
        cmd, ["-f", "json", "-c", "ID", "-c", "Size", "--sort-column", "Size", "--sort-descending"], []
    )
    assert run_display(cmd, parsed, harness.app) == [
        {"ID": IMAGE, "Size": 300},
        {"ID": OTHER, "Size": 100},
    ]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", f"| {IMAGE} | cached |"),
        ("csv", f'"{IMAGE}","cached",1024,3,'),
        ("value", f"{IMAGE} cached 1024 3 2023-11-14T22:13:20.500000Z"),
        ("yaml", "  Size: 1024\n  State: cached\n"),
        ("yaml", "  Size: N/A\n  State: queued\n"),
    ],
)
def test_every_formatter_renders_typed_rows(harness: Harness, fmt: str, expected: str) -> None:
    harness.node(CATALOG).on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 1024, 3)], [OTHER])))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, ["-f", fmt], [("formatter", fmt)])
    out = run_display(cmd, parsed, harness.app)
    assert expected in out and OTHER in out


def test_list_prints_healthy_nodes_then_fails_naming_the_forbidden_one(harness: Harness) -> None:
    harness.node(NODE_A).on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 10, 1)])))
    harness.node(NODE_B).on("GET", "/v2/cache", FORBIDDEN)
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b", "-f", "json"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to list the cache on 1 of 2 nodes$"):
        cmd.run(parsed)

    assert [row["Node"] for row in json.loads(harness.app.stdout.getvalue())] == [NODE_A]
    [line] = harness.stderr_lines
    assert line.startswith(f"Failed to list the cache on {NODE_B}: HTTP 403 for GET /v2/cache: ")
    assert "not authorized to complete cache_list" in line and "req-403" in line and "admin role" in line


def test_list_prints_no_rows_when_every_node_failed(harness: Harness) -> None:
    harness.node(NODE_A).on("GET", "/v2/cache", FORBIDDEN)
    harness.node(NODE_B).on("GET", "/v2/cache", reply(500, {"message": "boom"}))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b", "-f", "json"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to list the cache on 2 of 2 nodes$"):
        cmd.run(parsed)

    assert harness.app.stdout.getvalue() == ""
    assert len(harness.stderr_lines) == 2


def test_every_node_refusing_exits_3_with_only_the_refusals(harness: Harness) -> None:
    harness.node(NODE_A).on("GET", "/v2/cache", FORBIDDEN)
    harness.node(NODE_B).on("GET", "/v2/cache", reply(401, {"message": "The request requires authentication."}))
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b", "-f", "json"], [])

    assert cmd.run(parsed) == cache.AUTH_REFUSED == 3
    assert harness.app.stdout.getvalue() == ""
    assert [line.split(": ")[:2] for line in harness.stderr_lines] == [
        [f"Failed to list the cache on {NODE_A}", "HTTP 403 for GET /v2/cache"],
        [f"Failed to list the cache on {NODE_B}", "HTTP 401 for GET /v2/cache"],
    ]


def test_bad_host_is_one_clear_command_error(harness: Harness) -> None:
    cmd = harness.command(cache.ListCache)
    parsed = check_parser(cmd, ["--host", "ftp://node-a"], [])
    with pytest.raises(exceptions.CommandError, match="unsupported scheme"):
        cmd.take_action(parsed)


def test_no_image_endpoint_says_what_to_do() -> None:
    from .conftest import FakeAPI

    api = FakeAPI({}, catalog_endpoint=None)
    cmd = cache.ListCache(FakeApp(api), None)  # type: ignore[arg-type]
    with pytest.raises(exceptions.CommandError, match=r"no image endpoint .* --host NODE"):
        cmd.take_action(check_parser(cmd, [], []))


# -- queue --------------------------------------------------------------------------------------------------


def test_queue_parser() -> None:
    cmd = cache.QueueCache(FakeApp(None), None)  # type: ignore[arg-type]
    check_parser(cmd, [IMAGE, OTHER], [("images", [IMAGE, OTHER]), ("wait", False), ("timeout", 300.0)])
    check_parser(cmd, [IMAGE, "--wait", "--timeout", "2.5"], [("wait", True), ("timeout", 2.5)])
    with pytest.raises(ParserError, match="the following arguments are required"):
        check_parser(cmd, [], [])
    with pytest.raises(ParserError, match="timeout must be more than 0"):
        check_parser(cmd, [IMAGE, "--timeout", "0"], [])


def test_queue_goes_on_past_a_failing_image_and_counts_it(harness: Harness) -> None:
    node = harness.node(NODE_A)
    node.on("PUT", f"/v2/cache/{IMAGE}", reply(202))
    node.on("PUT", f"/v2/cache/{OTHER}", reply(404, {"message": f"Image {OTHER} not found."}))
    node.on("PUT", f"/v2/cache/{THIRD}", reply(202))
    cmd = harness.command(cache.QueueCache)
    parsed = check_parser(cmd, [IMAGE, OTHER, THIRD, "--host", "node-a"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to queue 1 of 3 images$"):
        cmd.take_action(parsed)

    assert [r.url.path for r in node.calls("PUT")] == [f"/v2/cache/{i}" for i in (IMAGE, OTHER, THIRD)]
    [line] = harness.stderr_lines
    assert line == (
        f"Failed to queue image {OTHER} on {NODE_A}: HTTP 404 for PUT /v2/cache/{OTHER}: Image {OTHER} not found."
    )


def test_queue_refused_for_every_image_exits_3_but_a_partial_refusal_exits_1(harness: Harness) -> None:
    node = harness.node(NODE_A)
    node.on("PUT", f"/v2/cache/{IMAGE}", FORBIDDEN)
    node.on("PUT", f"/v2/cache/{OTHER}", FORBIDDEN)
    node.on("PUT", f"/v2/cache/{THIRD}", reply(202))
    cmd = harness.command(cache.QueueCache)

    assert cmd.run(check_parser(cmd, [IMAGE, OTHER, "--host", "node-a"], [])) == 3
    assert len(harness.stderr_lines) == 2
    with pytest.raises(exceptions.CommandError, match=r"^Failed to queue 1 of 2 images$"):
        cmd.run(check_parser(cmd, [IMAGE, THIRD, "--host", "node-a"], []))


def test_queue_on_several_nodes_and_wait_until_cached(harness: Harness) -> None:
    for url in (NODE_A, NODE_B):
        node = harness.node(url)
        node.on("PUT", f"/v2/cache/{IMAGE}", reply(202))
        node.on(
            "GET", "/v2/cache", reply(200, cache_body([], [IMAGE])), reply(200, cache_body([(IMAGE, 5, 0)]))
        )
    cmd = harness.command(cache.QueueCache)
    parsed = check_parser(cmd, [IMAGE, "--host", "node-a", "--host", "node-b", "--wait", "--timeout", "10"], [])

    assert cmd.take_action(parsed) is None

    for url in (NODE_A, NODE_B):
        assert len(harness.node(url).calls("PUT")) == 1
        assert len(harness.node(url).calls("GET", "/v2/cache")) == 2
    assert harness.stderr_lines == []


def test_queue_wait_times_out_with_a_failure(harness: Harness) -> None:
    node = harness.node(NODE_A)
    node.on("PUT", f"/v2/cache/{IMAGE}", reply(202))
    node.on("GET", "/v2/cache", reply(200, cache_body([], [IMAGE])))
    cmd = harness.command(cache.QueueCache)
    parsed = check_parser(cmd, [IMAGE, "--host", "node-a", "--wait", "--timeout", "0.3"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to queue 1 of 1 images$"):
        cmd.take_action(parsed)
    [line] = harness.stderr_lines
    assert line.startswith(f"Failed to cache image {IMAGE} on {NODE_A}: image {IMAGE} was not cached within")


def test_queue_wait_on_a_node_that_cannot_wait_queues_nothing_and_fails_every_image(harness: Harness) -> None:
    no_cache_api = {"versions": [{"id": "v2.9", "status": "CURRENT"}, {"id": "v2.0", "status": "SUPPORTED"}]}
    node = harness.node(NODE_A)
    node.on("GET", "/versions", reply(200, no_cache_api))
    cmd = harness.command(cache.QueueCache)
    parsed = check_parser(cmd, [IMAGE, OTHER, "--host", "node-a", "--wait"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to queue 2 of 2 images$"):
        cmd.take_action(parsed)
    assert node.calls("PUT") == []
    [line] = harness.stderr_lines
    assert line.startswith(f"Failed to queue (nothing queued) on {NODE_A}: ") and "v2.14" in line


# -- delete -------------------------------------------------------------------------------------------------


def test_delete_tolerates_nodes_that_never_had_the_image(harness: Harness) -> None:
    harness.node(NODE_A).on("DELETE", f"/v2/cache/{IMAGE}", reply(204))
    harness.node(NODE_B).on("DELETE", f"/v2/cache/{IMAGE}", reply(404, {"message": "not cached"}))
    cmd = harness.command(cache.DeleteCache)
    parsed = check_parser(cmd, [IMAGE, "--host", "node-a", "--host", "node-b"], [("images", [IMAGE])])

    assert cmd.take_action(parsed) is None
    assert harness.stderr_lines == []


def test_delete_fails_for_an_image_no_node_had_and_for_other_errors(harness: Harness) -> None:
    for url in (NODE_A, NODE_B):
        harness.node(url).on("DELETE", f"/v2/cache/{IMAGE}", reply(404, {"message": f"Image {IMAGE} not found"}))
        harness.node(url).on("DELETE", f"/v2/cache/{THIRD}", reply(204))
    harness.node(NODE_A).on("DELETE", f"/v2/cache/{OTHER}", reply(204))
    harness.node(NODE_B).on("DELETE", f"/v2/cache/{OTHER}", FORBIDDEN)
    cmd = harness.command(cache.DeleteCache)
    parsed = check_parser(cmd, [IMAGE, OTHER, THIRD, "--host", "node-a", "--host", "node-b"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to delete 2 of 3 images$"):
        cmd.take_action(parsed)

    lines = harness.stderr_lines
    assert len(lines) == 3
    assert lines[0].startswith(f"Failed to delete image {IMAGE} on {NODE_A}: HTTP 404")
    assert lines[1].startswith(f"Failed to delete image {IMAGE} on {NODE_B}: HTTP 404")
    assert lines[2].startswith(f"Failed to delete image {OTHER} on {NODE_B}: HTTP 403")


# -- name lookup (real keystoneauth session, real HTTP to a small local images endpoint) ----------------------


def test_queue_accepts_a_unique_image_name(harness: Harness) -> None:
    # The lookup lives in the library: GET /v2/images?name= on the first node, with the node's token.
    node = harness.node(NODE_A)
    names = {"cirros": [IMAGE], "twin": [OTHER, THIRD], "nothing": []}

    def images(request: httpx.Request) -> httpx.Response:
        node.seen.append(request)
        found = names[request.url.params["name"]]
        return reply(200, {"images": [{"id": i} for i in found]})

    node.on("PUT", f"/v2/cache/{IMAGE}", reply(202))
    node.handler = lambda request: (  # type: ignore[method-assign]
        images(request) if request.url.path == "/v2/images" else FakeNode.handler(node, request)
    )
    cmd = harness.command(cache.QueueCache)
    parsed = check_parser(cmd, ["cirros", "twin", "nothing", "--host", "node-a"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to queue 2 of 3 images$"):
        cmd.take_action(parsed)

    assert [r.url.path for r in node.calls("PUT")] == [f"/v2/cache/{IMAGE}"]
    assert harness.stderr_lines == [
        f"Failed to queue image twin on {NODE_A}: more than one image is named 'twin': give the image ID instead",
        f"Failed to queue image nothing on {NODE_A}: HTTP 404 for GET /v2/images: no image is named 'nothing' "
        "(and it is not an image ID)",
    ]
    assert {r.headers["x-auth-token"] for r in node.calls("GET", "/v2/images")} == {"osc-token"}


# -- clear --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "header"),
    [
        ([], None),
        (["--target", "both"], None),
        (["--target", "cache"], "cache"),
        (["--target", "queued"], "queue"),
        (["--cache"], "cache"),
        (["--queue"], "queue"),
        (["--cache", "--queue"], None),  # OSC 10.5 clears only the queue here
        (["--target", "cache", "--cache"], "cache"),
    ],
)
def test_clear_target_header(harness: Harness, args: list[str], header: str | None) -> None:
    node = harness.node(CATALOG)
    node.on("DELETE", "/v2/cache", reply(204))
    node.on("GET", "/v2/cache", reply(200, cache_body([(IMAGE, 1, 0)], [OTHER])), reply(200, cache_body()))
    cmd = harness.command(cache.ClearCache)
    parsed = check_parser(cmd, args, [])

    columns, rows = cmd.take_action(parsed)

    [request] = node.calls("DELETE")
    assert request.headers.get("x-image-cache-clear-target") == header
    assert columns == ("Node", "Cached Removed", "Queued Removed") and rows == [(CATALOG, 1, 1)]


def test_clear_rejects_a_bad_or_contradictory_target(harness: Harness) -> None:
    cmd = harness.command(cache.ClearCache)
    with pytest.raises(ParserError, match="unknown clear target 'everything'"):
        check_parser(cmd, ["--target", "everything"], [])
    parsed = check_parser(cmd, ["--target", "queue", "--cache"], [])
    with pytest.raises(exceptions.CommandError, match="contradicts --cache/--queue"):
        cmd.take_action(parsed)
    assert harness.api.nodes == {}  # nothing was sent anywhere


def test_clear_without_the_list_permission_clears_and_shows_unknown_counts(harness: Harness) -> None:
    # A policy of {"cache_list": "!"}: the clear needs only cache_delete; the counts cannot be had.
    harness.node(NODE_A).on("GET", "/v2/cache", reply(200, cache_body([], [IMAGE])), reply(200, cache_body()))
    harness.node(NODE_A).on("DELETE", "/v2/cache", reply(204))
    harness.node(NODE_B).on("GET", "/v2/cache", FORBIDDEN)
    harness.node(NODE_B).on("DELETE", "/v2/cache", reply(204))
    cmd = harness.command(cache.ClearCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b", "-f", "json"], [])

    assert cmd.run(parsed) == 0
    assert json.loads(harness.app.stdout.getvalue()) == [
        {"Node": NODE_A, "Cached Removed": 0, "Queued Removed": 1},
        {"Node": NODE_B, "Cached Removed": "N/A", "Queued Removed": "N/A"},
    ]
    assert len(harness.node(NODE_B).calls("DELETE")) == 1 and harness.stderr_lines == []


def test_clear_reports_a_node_refusing_the_delete_and_exits_1(harness: Harness) -> None:
    harness.node(NODE_A).on("GET", "/v2/cache", reply(200, cache_body([], [IMAGE])), reply(200, cache_body()))
    harness.node(NODE_A).on("DELETE", "/v2/cache", reply(204))
    harness.node(NODE_B).on("GET", "/v2/cache", reply(200, cache_body()))
    harness.node(NODE_B).on("DELETE", "/v2/cache", FORBIDDEN)
    cmd = harness.command(cache.ClearCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b", "-f", "json"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to clear the cache on 1 of 2 nodes$"):
        cmd.run(parsed)
    assert json.loads(harness.app.stdout.getvalue()) == [{"Node": NODE_A, "Cached Removed": 0, "Queued Removed": 1}]


# -- clean, prune -------------------------------------------------------------------------------------------


def test_clean_posts_and_names_a_node_without_api_2_18(harness: Harness) -> None:
    harness.node(NODE_A).on("POST", "/v2/cache/clean", reply(200))
    old = {"versions": [{"id": "v2.16", "status": "CURRENT"}, {"id": "v2.14", "status": "SUPPORTED"}]}
    harness.node(NODE_B).on("GET", "/versions", reply(200, old))
    cmd = harness.command(cache.CleanCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b"], [("hosts", ["node-a", "node-b"])])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to clean the cache on 1 of 2 nodes$"):
        cmd.take_action(parsed)

    assert len(harness.node(NODE_A).calls("POST", "/v2/cache/clean")) == 1
    assert harness.node(NODE_B).calls() == []
    [line] = harness.stderr_lines
    assert line.startswith(f"Failed to clean the cache on {NODE_B}: cleaning the cache needs Image API v2.18")


def test_clean_succeeds_quietly(harness: Harness) -> None:
    harness.node(CATALOG).on("POST", "/v2/cache/clean", reply(200))
    harness.app.options.verbose_level = 0
    cmd = harness.command(cache.CleanCache)
    assert cmd.take_action(check_parser(cmd, [], [])) is None
    assert harness.stderr_lines == [] and harness.app.stdout.getvalue() == ""


def test_prune_rows_per_node(harness: Harness) -> None:
    harness.node(NODE_A).on("POST", "/v2/cache/prune", reply(200, {"total_files_pruned": 2, "total_bytes_pruned": 300}))
    harness.node(NODE_B).on("POST", "/v2/cache/prune", reply(200, {"total_files_pruned": 0, "total_bytes_pruned": 0}))
    cmd = harness.command(cache.PruneCache)
    parsed = check_parser(cmd, ["--host", "node-a", "--host", "node-b", "-f", "json"], [])
    assert run_display(cmd, parsed, harness.app) == [
        {"Node": NODE_A, "Files Pruned": 2, "Bytes Pruned": 300},
        {"Node": NODE_B, "Files Pruned": 0, "Bytes Pruned": 0},
    ]


# -- nodes list ---------------------------------------------------------------------------------------------


def test_nodes_list_without_host_does_not_warn(harness: Harness) -> None:
    harness.node(CATALOG).on("GET", f"/v2/cache/nodes/{IMAGE}", reply(200, [NODE_A, NODE_B]))
    cmd = harness.command(cache.ListCacheNodes)
    parsed = check_parser(cmd, [IMAGE.upper()], [("images", [IMAGE.upper()])])

    columns, rows = cmd.take_action(parsed)

    assert columns == ("ID", "Node URL")
    assert rows == [(IMAGE, NODE_A), (IMAGE, NODE_B)]
    assert harness.stderr_lines == []


def test_nodes_list_asks_one_node_passing_over_an_unhealthy_one(harness: Harness) -> None:
    # The registry is shared: one answer, one row per node holding the image, however many nodes are given.
    harness.node(NODE_A).on("GET", f"/v2/cache/nodes/{IMAGE}", reply(503, {"message": "overloaded"}))
    harness.node(NODE_B).on("GET", f"/v2/cache/nodes/{IMAGE}", reply(200, [NODE_A, NODE_B]))
    harness.node(CATALOG).on("GET", f"/v2/cache/nodes/{IMAGE}", reply(200, [NODE_A, NODE_B]))
    cmd = harness.command(cache.ListCacheNodes)
    parsed = check_parser(cmd, [IMAGE, "--host", "node-a", "--host", "node-b", "--host", CATALOG, "-f", "value"], [])

    assert cmd.run(parsed) == 0
    assert harness.app.stdout.getvalue() == f"{IMAGE} {NODE_A}\n{IMAGE} {NODE_B}\n"
    assert harness.node(CATALOG).calls() == [] and harness.stderr_lines == []


def test_nodes_list_reports_a_conflict_as_the_clusters_answer(harness: Harness) -> None:
    harness.node(NODE_A).on(
        "GET", f"/v2/cache/nodes/{IMAGE}", reply(409, {"message": "Centralized caching is not enabled"})
    )
    cmd = harness.command(cache.ListCacheNodes)
    parsed = check_parser(cmd, [IMAGE, "--host", "node-a", "--host", "node-b", "-f", "value"], [])

    with pytest.raises(exceptions.CommandError, match=r"^Failed to list the nodes caching 1 of 1 images$"):
        cmd.run(parsed)
    assert harness.app.stdout.getvalue() == ""
    [line] = harness.stderr_lines
    assert "HTTP 409" in line and "Centralized caching is not enabled" in line and NODE_A in line
    assert harness.node(NODE_B).calls() == []


def test_nodes_list_takes_exactly_one_image() -> None:
    cmd = cache.ListCacheNodes(FakeApp(None), None)  # type: ignore[arg-type]
    with pytest.raises(ParserError, match="unrecognized arguments"):
        check_parser(cmd, [IMAGE, OTHER], [])


def test_every_command_has_help_without_credentials() -> None:
    for cls in (cache.ListCache, cache.QueueCache, cache.DeleteCache, cache.ClearCache, cache.CleanCache,
                cache.PruneCache, cache.ListCacheNodes):
        cmd = cls(FakeApp(None), None)  # type: ignore[arg-type]
        text = cmd.get_parser("openstack cache").format_help()
        assert "--host <host>" in text and cmd.get_description()
        assert "display" not in cmd.get_description().lower()


def test_fake_node_answers_unknown_routes_with_404() -> None:
    # The harness itself must be able to fail a test: an unscripted request is a 404, not a silent success.
    import httpx

    node = FakeNode(NODE_A)
    assert node.handler(httpx.Request("GET", f"{NODE_A}/v2/cache")).status_code == 404
