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
