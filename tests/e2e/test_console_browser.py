"""The console in a real headless Chromium against the local stack: the list, a pipeline, its executions, approvals.

Chromium is Debian's (`chromium`, installed by scripts/bootstrap), driven by
Playwright for Python without Playwright's own browser download. The console
is served by an API server in this process, with the stack's environment, so
it runs this checkout's code; its calls go to the stack's tables and engine
signed as the local user chosen in the page. Each page is photographed into
docs/console/ (docs/console.md shows them).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from cdcflow.api_server import api_url, serve_api
from cdcflow.local import connections as local_connections
from cdcflow.local.config import AWS_REGION, Endpoints, config_from_env
from cdcflow.local.credentials import ADMIN_PROFILE, CredentialStore
from cdcflow.local.workflows import lambda_environment
from lambdas import aws
from tests.provision import api_auth

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
REQUESTER, APPROVER = "cdcflow-orders-requester", "cdcflow-orders-approver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
VIEWPORT = {"width": 1280, "height": 800}
PROVISION_SECONDS = 300
PROVISION_ASL = json.loads((Path(__file__).resolve().parents[2] / "statemachines" / "provision_pipeline.asl.json")
                           .read_text())


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is not installed: scripts/bootstrap installs it (apt-get install chromium)"
    return found


@pytest.fixture(scope="module")
def console(local_stack: Endpoints) -> Iterator[str]:
    """The console's URL: an API server in this process with the stack's Lambda environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in lambda_environment(config_from_env()).items():
            patch.setenv(name, value)
        aws.reset_clients()
        assert local_stack.api.credentials_file is not None
        server = serve_api(0, credentials=CredentialStore.from_file(local_stack.api.credentials_file))
        try:
            yield api_url(server)
        finally:
            server.shutdown()
    aws.reset_clients()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_as(browser: Browser, console: str) -> Iterator[Callable[[str], Page]]:
    """`open_as(profile)`: a fresh page (1280x800) signed in as that local user; script errors fail the test."""
    contexts, errors = [], []

    def open_page(profile: str) -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=console)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/console/pipelines")
        with page.expect_navigation():
            page.select_option("#profile", profile)
        expect(page.locator("#profile")).to_have_value(profile)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"the pages raised script errors: {errors}"


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def call(stack: Endpoints, profile: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, stack.api.url + path, json=body, auth=api_auth(stack, profile), timeout=30)


def request_for(pipeline_id: str, table: str, source: str = local_connections.SOURCE) -> dict[str, Any]:
    return {"pipeline_id": pipeline_id, "owner": "team-orders", "source": {"connection": source, "tables": [table]},
            "cluster": local_connections.CLUSTER, "sink": {"connection": local_connections.WAREHOUSE}}


def wait_for(stack: Endpoints, pipeline_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + PROVISION_SECONDS
    pipeline: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pipeline = call(stack, ADMIN_PROFILE, "GET", f"/pipelines/{pipeline_id}").json()
        if done(pipeline):
            return pipeline
        time.sleep(0.5)
    raise AssertionError(f"{pipeline_id} never got there: {pipeline}")


LAYOUT_PROBLEMS = """() => {
  const boxes = [...document.querySelectorAll('#graph .node')].map((group) => ({
    name: group.dataset.state, box: group.querySelector('rect').getBoundingClientRect(),
    label: group.querySelector('text').getBoundingClientRect() }));
  const problems = [];
  for (const a of boxes) {
    if (a.label.width > a.box.width || a.label.height > a.box.height) problems.push(a.name + ' does not fit its box');
    for (const b of boxes) {
      if (a.name < b.name && a.box.left < b.box.right && b.box.left < a.box.right && a.box.top < b.box.bottom
          && b.box.top < a.box.bottom) problems.push(a.name + ' overlaps ' + b.name);
    }
  }
  return problems.concat(boxes.length > 40 ? [] : ['drew only ' + boxes.length + ' states']);
}"""


def reveal(page: Page, row: Any) -> None:
    """Wait for `row` in the list, asking for 100 more pipelines while the list has more than it shows."""
    deadline = time.monotonic() + 60
    while row.count() == 0 and time.monotonic() < deadline:
        more = page.locator("#more")
        if more.is_visible():
            more.click()
        page.wait_for_timeout(500)
    expect(row).to_be_visible()


def node(page: Page, state: str) -> Any:
    return page.locator(f'#graph .node[data-state="{state}"]')


def test_the_list_follows_a_provision_to_active_and_the_pipeline_is_paused_resumed_and_torn_down(
        local_stack, captured_table, open_as):
    pipeline_id = f"console_{RUN}"
    page = open_as(REQUESTER)
    started = call(local_stack, REQUESTER, "POST", "/pipelines", request_for(pipeline_id, captured_table))
    assert started.status_code == 202, started.text

    # The list refreshes itself: the row appears, then turns ACTIVE, without a reload.
    row = page.locator(f'#pipelines tr[data-pipeline="{pipeline_id}"]')
    reveal(page, row)
    expect(row).to_have_attribute("data-status", "ACTIVE", timeout=PROVISION_SECONDS * 1000)
    expect(row.locator("td").nth(1)).to_have_text("team-orders")
    page.select_option("#filters select[name=status]", "FAILED")
    expect(row).to_have_count(0)
    page.select_option("#filters select[name=status]", "ACTIVE")
    reveal(page, row)
    assert "status=ACTIVE" in page.url

    # An alarm in ALARM shows in the list. The stack's own sweep sets the alarms' states every minute from what
    # it measures, so the state is set again until the list has shown it.
    cloudwatch = boto3.client("cloudwatch", endpoint_url=local_stack.aws.url, region_name=AWS_REGION,
                              aws_access_key_id="local", aws_secret_access_key="local")
    alarms_cell = row.locator("td.alarms")
    deadline = time.monotonic() + 30
    while alarms_cell.inner_text() != "ALARM: slot-lag":
        assert time.monotonic() < deadline, f"the list shows {alarms_cell.inner_text()!r} for the alarm in ALARM"
        cloudwatch.set_alarm_state(AlarmName=f"cdcflow-pipeline-{pipeline_id}-slot-lag", StateValue="ALARM",
                                   StateReason="set by the console test")
        time.sleep(1)
    shoot(page, "pipelines")

    row.get_by_role("link", name=pipeline_id).click()
    expect(page.locator("#status")).to_have_text("ACTIVE")
    spec = page.locator("#spec")
    expect(spec).to_contain_text(f'"connection": "{local_connections.SOURCE}"')
    for hidden in ("admin_secret", "password", "host"):
        assert hidden not in spec.inner_text()
    expect(page.locator("#facts")).to_contain_text(f"user/{REQUESTER}")
    shoot(page, "pipeline")

    page.click("#provision-execution")
    # The default snapshot mode: ACTIVE once streaming, then the backfill, which ends the execution.
    expect(node(page, "PipelineBackfilled")).to_have_attribute("data-status", "succeeded",
                                                             timeout=PROVISION_SECONDS * 1000)
    for state in ("ValidateSpec", "CreateSlot", "CheckCanaryArrived", "MarkActiveBackfilling", "CheckBackfillCopied",
                  "MarkBackfilled"):
        expect(node(page, state)).to_have_attribute("data-status", "succeeded")
    for state in ("MarkActive", "DeleteConnectors", "ProvisionFailed", "RequestApproval", "MarkBackfillFailed"):
        expect(node(page, state)).to_have_attribute("data-status", "not_reached")
    expect(page.locator("#status")).to_have_text("SUCCEEDED")
    node(page, "CreateSlot").click()
    expect(page.locator("#details-title")).to_have_text("CreateSlot")
    expect(page.locator("#details-output")).to_contain_text("CreateSlot")
    expect(page.locator("#events tbody tr").last).to_contain_text("ExecutionSucceeded")
    shoot(page, "execution")

    # Pause and resume from the pipeline page, each confirmed and each linking to the execution it started.
    page.locator("#pipeline-link").click()
    for action, settled in (("pause", "PAUSED"), ("resume", "ACTIVE")):
        page.click(f"#{action}")
        expect(page.locator("#confirm-lifecycle")).to_be_visible()
        page.click("#confirm-lifecycle-button")
        expect(page.locator("#action-result")).to_contain_text(f"{action.capitalize()} started", timeout=30_000)
        expect(page.locator("#status")).to_have_text(settled, timeout=PROVISION_SECONDS * 1000)
        if action == "pause":
            expect(page.locator("#resume")).to_be_visible()
            shoot(page, "pipeline-paused")
    page.locator("#lifecycle-execution").click()
    expect(page.locator("#status")).to_have_text("SUCCEEDED", timeout=30_000)
    expect(page.locator("#execution-name")).to_contain_text("-resume-")

    page.locator("#pipeline-link").click()
    page.click("#teardown")
    expect(page.locator("#confirm-teardown")).to_be_visible()
    shoot(page, "teardown-confirm")
    page.click("#confirm-teardown-button")
    expect(page.locator("#action-result")).to_contain_text("Teardown started", timeout=30_000)
    page.locator("#action-result a").click()
    expect(page.locator("#status")).to_have_text("SUCCEEDED", timeout=PROVISION_SECONDS * 1000)
    expect(node(page, "PipelineDeleted")).to_have_attribute("data-status", "succeeded")
    assert wait_for(local_stack, pipeline_id, lambda p: p["status"] == "DELETED")["status"] == "DELETED"


def test_a_pipeline_requested_through_the_form_reaches_active_on_the_graph(local_stack, captured_table, open_as):
    pipeline_id = f"console_{RUN}_form"
    page = open_as(REQUESTER)
    page.locator("nav").get_by_role("link", name="Request").click()
    source = page.locator('[data-field="source.connection"]')
    # The connections offered are those GET /connections lists for the requester's team, by kind.
    expect(source.locator(f'option[value="{local_connections.SOURCE}"]')).to_have_count(1)
    expect(page.locator('[data-field="owner"]')).to_have_value("team-orders")
    source.select_option(local_connections.SOURCE)
    page.locator('[data-field="cluster"]').select_option(local_connections.CLUSTER)
    page.locator('[data-field="sink.connection"]').select_option(local_connections.WAREHOUSE)

    # What the schema refuses comes back from the API's 422 and is shown at the fields it names.
    page.fill('[data-field="pipeline_id"]', "Not-An-Id")
    page.fill('[data-field="source.tables"]', f"{captured_table}\nno_schema")
    page.locator("summary", has_text="Kafka").click()
    page.fill('[data-field="kafka.partitions"]', "0")
    page.click("#submit-request")
    expect(page.locator("#request-result")).to_contain_text("HTTP 422")
    for field, says in (("pipeline_id", "'Not-An-Id' does not match"), ("source.tables", "source.tables[1]"),
                        ("kafka.partitions", "0 is less than the minimum of 1")):
        expect(page.locator(f'[data-error-for="{field}"]')).to_contain_text(says)
        expect(page.locator(f'[data-field="{field}"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-error-for="sink.connection"]')).to_be_hidden()
    shoot(page, "request-errors")

    page.fill('[data-field="pipeline_id"]', pipeline_id)
    page.fill('[data-field="source.tables"]', captured_table)
    page.fill('[data-field="kafka.partitions"]', "")
    expect(page.locator("#preview")).to_contain_text(f'"pipeline_id": "{pipeline_id}"')
    # A field edited since the API's answer no longer shows its problem.
    expect(page.locator('[data-error-for="pipeline_id"]')).to_be_hidden()
    expect(page.locator('[data-field="source.tables"]')).not_to_have_attribute("aria-invalid", "true")
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "request")
    page.click("#submit-request")
    expect(page.locator("#request-result")).to_contain_text("Provisioning started", timeout=30_000)
    expect(page.locator('[data-error-for="pipeline_id"]')).to_be_hidden()
    try:
        page.click("#request-execution")
        expect(node(page, "PipelineBackfilled")).to_have_attribute("data-status", "succeeded",
                                                                   timeout=PROVISION_SECONDS * 1000)
        expect(page.locator("#status")).to_have_text("SUCCEEDED")
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        # The requester is shown no host or secret name of the connections the execution's input holds.
        node(page, "ValidateSpec").click()
        expect(page.locator("#details-input")).to_contain_text(local_connections.SOURCE)
        shown = page.locator("#details-input").inner_text() + page.locator("#events").inner_text()
        for hidden in (local_stack.aws.source_admin_secret, f"{local_stack.postgres.host}:{local_stack.postgres.port}",
                       '"admin_secret"', '"bootstrap_servers"'):
            assert hidden not in shown, hidden
        shoot(page, "execution-form")

        # An admin sees the execution's input as it is.
        admin = open_as(ADMIN_PROFILE)
        admin.goto(page.url)
        node(admin, "ValidateSpec").click()
        expect(admin.locator("#details-input")).to_contain_text(local_stack.aws.source_admin_secret)

        # The pipeline page: its connectors and their tasks as Kafka Connect reports them, and its slot.
        page.locator("#pipeline-link").click()
        expect(page.locator("#status")).to_have_text("ACTIVE")
        for role in ("source", "sink"):
            connector = page.locator(f'#connectors tr[data-connector="{role}"]')
            expect(connector).to_have_attribute("data-state", "RUNNING", timeout=30_000)
            expect(connector.locator(".task").first).to_have_attribute("data-state", "RUNNING")
        expect(page.locator("#slot")).to_contain_text(f"cdcflow_{pipeline_id}")
        # The alarms GET /pipelines/<id> gives, each with its state.
        alarms = page.evaluate("""(path) => fetch(path, { headers: { "X-Cdcflow-Console": "1" } })
            .then((answer) => answer.json()).then((pipeline) => pipeline.alarms || [])""",
                               f"/console/api/pipelines/{pipeline_id}")
        for alarm in alarms:
            expect(page.locator(f'#alarms tr[data-alarm="{alarm["alarm"]}"]')).to_have_attribute(
                "data-state", alarm["state"])
        assert alarms, "GET /pipelines/<id> gave no alarms to show"
        shoot(page, "pipeline-connectors")

        # Update (PATCH): the spec as it is changes nothing; what a running pipeline cannot change is refused,
        # each problem named by its field.
        page.click("#update")
        expect(page.locator("#confirm-update")).to_be_visible()
        assert f'"connection": "{local_connections.SOURCE}"' in page.locator("#update-spec").input_value()
        page.click("#confirm-update-button")
        expect(page.locator("#action-result")).to_contain_text("nothing to change", timeout=30_000)
        page.click("#update")
        page.fill("#update-spec", json.dumps({"kafka": {"partitions": 3}}))
        shoot(page, "update-confirm")
        page.click("#confirm-update-button")
        expect(page.locator('#action-result .problem[data-field="kafka.partitions"]')) \
            .to_contain_text("cannot change on a running pipeline", timeout=30_000)
        expect(page.locator("#action-result")).to_contain_text("HTTP 422")
        page.locator("#action-result").scroll_into_view_if_needed()
        shoot(page, "update-refused")

        # An update it can take runs as UpdatePipeline; once it has, the spec it replaced is in the history.
        page.click("#update")
        page.fill("#update-spec", json.dumps({"debezium": {"heartbeat_interval_ms": 20000}}))
        page.click("#confirm-update-button")
        expect(page.locator("#action-result")).to_contain_text("Update started", timeout=30_000)
        page.locator("#update-execution").click()
        expect(page.locator("#status")).to_have_text("SUCCEEDED", timeout=PROVISION_SECONDS * 1000)
        page.locator("#pipeline-link").click()
        expect(page.locator("#spec")).to_contain_text('"heartbeat_interval_ms": 20000')
        expect(page.locator("#spec-history li")).to_have_count(1)
        page.locator("#spec-history summary").click()
        expect(page.locator("#spec-history pre")).to_contain_text('"heartbeat_interval_ms": 10000')
        expect(page.locator("#spec-history")).to_contain_text(REQUESTER)
        page.locator("#history-section").scroll_into_view_if_needed()
        shoot(page, "pipeline-history")

        # Resync: a condition PostgreSQL refuses comes back as the API's 422 naming the table; one it takes
        # runs as ResyncPipeline.
        page.evaluate("window.scrollTo(0, 0)")
        page.click("#resync")
        condition = page.locator(f'#confirm-resync [name=where][data-table="{captured_table}"]')
        condition.fill("no_such_column > 1")
        page.click("#confirm-resync-button")
        expect(page.locator("#action-result")).to_contain_text('column "no_such_column" does not exist',
                                                               timeout=30_000)
        page.click("#resync")
        condition.fill("id > 0")
        shoot(page, "resync-confirm")
        page.click("#confirm-resync-button")
        expect(page.locator("#action-result")).to_contain_text("Resync started", timeout=30_000)
        page.locator("#resync-execution").click()
        expect(page.locator("#status")).to_have_text("SUCCEEDED", timeout=PROVISION_SECONDS * 1000)
        expect(node(page, "MarkResynced")).to_have_attribute("data-status", "succeeded")
        shoot(page, "execution-resync")
    finally:
        assert call(local_stack, REQUESTER, "DELETE", f"/pipelines/{pipeline_id}").status_code in (202, 409)
        wait_for(local_stack, pipeline_id, lambda p: p["status"] in ("DELETED", "FAILED"))


def test_a_failed_provision_is_drawn_with_its_failed_step_and_the_compensations(local_stack, open_as):
    pipeline_id = f"console_{RUN}_missing"
    started = call(local_stack, REQUESTER, "POST", "/pipelines",
                   request_for(pipeline_id, f"public.console_missing_{RUN}"))
    assert started.status_code == 202, started.text
    failed = wait_for(local_stack, pipeline_id, lambda p: p["status"] == "FAILED")
    step = failed["current_step"]
    assert failed["last_error"]["error"] == "TablesNotFound"

    page = open_as(REQUESTER)
    page.goto(f"/console/pipelines/{pipeline_id}")
    expect(page.locator("#last-error")).to_contain_text("TablesNotFound")
    page.click("#provision-execution")
    expect(node(page, "ProvisionFailed")).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(node(page, step)).to_have_attribute("data-status", "caught")
    compensations = [name for name in ("DeleteAlarms", "DeleteConnectors") if name in PROVISION_ASL["States"]]
    for state in (*compensations, "DeleteTopics", "DropSlot", "DropPublication", "DropHeartbeatTable",
                  "DropReplicationUser", "MarkFailed"):
        expect(node(page, state)).to_have_attribute("data-status", "succeeded")
    for state in ("CreateSlot", "PutSourceConnector", "MarkActiveBackfilling", "PipelineBackfilled"):
        expect(node(page, state)).to_have_attribute("data-status", "not_reached")
    # The catch that led into the compensations is drawn as taken.
    first_compensation = PROVISION_ASL["States"][step]["Catch"][0]["Next"]
    expect(page.locator(f'#graph path.edge.catch.taken[data-from="{step}"][data-to="{first_compensation}"]')) \
        .to_have_count(1)
    expect(page.locator("#status")).to_have_text("FAILED")
    expect(page.locator("#execution-error")).to_contain_text(f"public.console_missing_{RUN}")
    # ProvisionPipeline's states (over 40) are legible at 1280x800: no two states overlap, every name fits its box.
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    node(page, step).click()
    expect(page.locator("#details-error")).to_contain_text("TablesNotFound")
    shoot(page, "execution-failed")

    # Another team's requester gets the API's refusal, and no graph.
    outsider = open_as("cdcflow-payments-requester")
    outsider.goto(page.url)
    expect(outsider.locator("#notice")).to_contain_text("HTTP 403", timeout=30_000)
    expect(outsider.locator("#notice")).to_contain_text("is not a member of team 'team-orders'")
    expect(outsider.locator("#graph .node")).to_have_count(0)
    assert call(local_stack, REQUESTER, "DELETE", f"/pipelines/{pipeline_id}").status_code in (202, 409)


@pytest.fixture
def rds_source(local_stack: Endpoints) -> Iterator[tuple[str, str]]:
    """A source connection of team orders on an RDS instance (moto's), whose reboot needs an approval."""
    name, instance = f"console-rds-{RUN}", f"console-{RUN}"
    boto3.client("rds", endpoint_url=local_stack.aws.url, region_name=AWS_REGION, aws_access_key_id="local",
                 aws_secret_access_key="local").create_db_instance(
        DBInstanceIdentifier=instance, Engine="postgres", EngineVersion="15.4", DBInstanceClass="db.t3.micro",
        AllocatedStorage=20, MasterUsername="postgres", MasterUserPassword="not-used-by-cdcflow",
        Tags=[{"Key": "cdcflow:managed", "Value": "true"}])  # the platform lets cdcflow manage it
    pg = local_stack.postgres
    registered = call(local_stack, ADMIN_PROFILE, "POST", "/connections", {
        "name": name, "kind": "source", "host": pg.host, "port": pg.port, "database": pg.source_database,
        "admin_secret": local_stack.aws.source_admin_secret, "rds_instance_id": instance, "teams": ["team-orders"]})
    assert registered.status_code == 200, registered.text
    yield name, instance
    call(local_stack, ADMIN_PROFILE, "DELETE", f"/connections/{name}")


def test_the_approver_approves_a_reboot_that_its_requester_may_not(local_stack, captured_table, rds_source, open_as):
    source, instance = rds_source
    pipeline_id = f"console_{RUN}_rds"
    started = call(local_stack, REQUESTER, "POST", "/pipelines", request_for(pipeline_id, captured_table, source))
    assert started.status_code == 202, started.text
    wait_for(local_stack, pipeline_id, lambda p: p["current_step"] == "RequestApproval")
    try:
        page = open_as(REQUESTER)
        page.goto("/console/approvals")
        row = page.locator(f'#approvals tr[data-pipeline="{pipeline_id}"]')
        expect(row).to_be_visible(timeout=30_000)
        expect(row).to_contain_text(REQUESTER)
        expect(row).to_contain_text(source)
        expect(row.locator(".time-left")).to_contain_text(" h ")
        row.locator("input[name=comment]").fill("I asked for it")
        row.get_by_role("button", name="Approve").click()
        expect(row.locator(".result")).to_contain_text("HTTP 403", timeout=30_000)
        expect(row.locator(".result")).to_contain_text("may not approve its own reboot")
        shoot(page, "approvals-refused")

        approver = open_as(APPROVER)
        approver.goto("/console/approvals")
        row = approver.locator(f'#approvals tr[data-pipeline="{pipeline_id}"]')
        expect(row).to_be_visible(timeout=30_000)
        shoot(approver, "approvals")
        row.locator("input[name=comment]").fill("reboot in the maintenance window")
        row.get_by_role("button", name="Approve").click()
        expect(row.locator(".result")).to_contain_text("Approved", timeout=30_000)
        resumed = wait_for(local_stack, pipeline_id, lambda p: p["current_step"] != "RequestApproval")
        assert resumed["status"] != "FAILED", resumed
    finally:
        call(local_stack, REQUESTER, "DELETE", f"/pipelines/{pipeline_id}")
        wait_for(local_stack, pipeline_id, lambda p: p["status"] in ("DELETED", "FAILED"))
