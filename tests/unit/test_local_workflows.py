"""The engine and API services get the environment the Lambda functions get on AWS, pointed at the local stack."""

from cdcflow.local import stack, workflows
from cdcflow.local.config import Ports, StackConfig


def test_the_services_see_the_stack_through_their_environment(tmp_path) -> None:
    config = StackConfig(state_dir=tmp_path, ports=Ports(engine=18600, api=18700, dynamodb=18000, moto=15000))

    environment = workflows.lambda_environment(config)

    assert environment["AWS_ENDPOINT_URL_SFN"] == "http://127.0.0.1:18600"
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:18000"
    assert environment["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == "http://127.0.0.1:15000"
    assert environment["REGISTRY_TABLE"] == workflows.REGISTRY_TABLE
    assert environment["IDEMPOTENCY_TABLE"] == workflows.IDEMPOTENCY_TABLE
    assert environment["PROVISION_STATE_MACHINE_ARN"].endswith(":stateMachine:ProvisionPipeline")
    assert environment["TEARDOWN_STATE_MACHINE_ARN"].endswith(":stateMachine:TeardownPipeline")
    assert environment["PAUSE_STATE_MACHINE_ARN"].endswith(":stateMachine:PausePipeline")
    assert environment["RESUME_STATE_MACHINE_ARN"].endswith(":stateMachine:ResumePipeline")


def test_the_engine_is_ready_once_it_lists_every_rendered_workflow() -> None:
    from statemachines import WORKFLOWS

    assert set(workflows.WORKFLOWS) == {workflow.name for workflow in WORKFLOWS}


def test_the_engine_starts_after_the_aws_stand_ins_and_stops_before_everything() -> None:
    order = [service.name for service in stack.SERVICES]

    assert order.index("engine") > max(order.index("dynamodb"), order.index("moto"))
    assert order.index("api") > order.index("engine")
    # `down` stops in reverse: the API and then the engine go before any service a step could be talking to.
    assert order[-2:] == ["engine", "api"]


def test_each_service_runs_this_checkout_in_its_own_process(tmp_path) -> None:
    config = StackConfig(state_dir=tmp_path)

    command = workflows.ENGINE.command(config)

    assert command[-2:] == ["engine", str(tmp_path)]
    assert str(workflows.REPO_ROOT) in command[2]


def test_the_api_is_ready_once_it_answers_the_local_admins_signed_request(tmp_path) -> None:
    import socket

    from cdcflow.api_server import serve_api
    from cdcflow.local.credentials import CredentialStore

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = StackConfig(state_dir=tmp_path, ports=Ports(api=port))
    assert workflows.probe_api(config) == "API not answering (ConnectionError)"
    # The probe made the credentials file, as the API's prepare does; an API that checks it lets the admin in.
    assert config.credentials_file.exists()
    seen = []
    server = serve_api(port, credentials=CredentialStore.from_file(config.credentials_file),
                       handler=lambda event, _: seen.append(event["requestContext"]["identity"]["userArn"])
                       or {"statusCode": 200, "body": "{}"})
    try:
        assert workflows.probe_api(config) is None
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["arn:aws:iam::000000000000:user/cdcflow-admin"]
