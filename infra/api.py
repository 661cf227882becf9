"""The pipelines REST API: API Gateway in front of the `Api` catalogue function.

Routes (all Lambda proxy integrations, all IAM-authorized: callers sign
with SigV4 and need `execute-api:Invoke` on the route):

| method | path | request checks done by API Gateway |
| --- | --- | --- |
| GET | /pipelines | - |
| POST | /pipelines | body is a JSON object with the spec's required top-level fields |
| GET, DELETE | /pipelines/{id} | `id` path parameter present |

The body model is derived from `lambdas/schemas/pipeline_spec.schema.json`
(top level only; API Gateway models are JSON Schema draft 4): a body
missing a field is rejected with a 400 naming it before any function runs.
The full validation is the function's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.packaging import LAMBDA_PACKAGE

PIPELINE_SPEC_SCHEMA = LAMBDA_PACKAGE / "schemas" / "pipeline_spec.schema.json"
STAGE_NAME = "v1"

_JSON_TYPES = {
    "object": apigw.JsonSchemaType.OBJECT,
    "array": apigw.JsonSchemaType.ARRAY,
    "string": apigw.JsonSchemaType.STRING,
    "integer": apigw.JsonSchemaType.INTEGER,
    "number": apigw.JsonSchemaType.NUMBER,
    "boolean": apigw.JsonSchemaType.BOOLEAN,
}


def pipeline_spec_model_schema(schema_path: Path = PIPELINE_SPEC_SCHEMA) -> apigw.JsonSchema:
    """The top level of the pipeline spec schema as a draft-4 API Gateway model.

    Keeps `required`, `additionalProperties` and each property's type (and a
    string's pattern); nested structure is left to the function's validation.
    """
    schema: dict[str, Any] = json.loads(schema_path.read_text())
    properties = {
        name: apigw.JsonSchema(type=_JSON_TYPES[prop["type"]], pattern=prop.get("pattern"))
        for name, prop in schema["properties"].items()
        if prop.get("type") in _JSON_TYPES
    }
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title="PipelineSpec",
        type=apigw.JsonSchemaType.OBJECT,
        required=list(schema["required"]),
        properties=properties,
        additional_properties=schema.get("additionalProperties", True),
    )


class PipelinesApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, handler: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.DESTROY,
        )
        self.rest_api = apigw.RestApi(
            self, "RestApi",
            rest_api_name="cdcflow-pipelines",
            description="cdcflow: provision, inspect and tear down CDC pipelines",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            # The account-level role API Gateway needs to write execution logs.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.INFO,
                # Request and response bodies stay out of the logs.
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),
            ),
        )
        self.rest_api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={"application/json": '{"message": "$context.error.validationErrorString"}'},
        )

        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        check_parameters = self.rest_api.add_request_validator(
            "ParametersValidator", validate_request_parameters=True,
        )
        check_body = self.rest_api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True,
        )
        spec_model = self.rest_api.add_model(
            "PipelineSpecModel", content_type="application/json", model_name="PipelineSpec",
            schema=pipeline_spec_model_schema(),
        )
        id_parameter = {"method.request.path.id": True}

        pipelines = self.rest_api.root.add_resource("pipelines")
        self.methods = [
            pipelines.add_method("GET", integration, request_validator=check_parameters),
            pipelines.add_method("POST", integration, request_validator=check_body,
                                 request_models={"application/json": spec_model}),
        ]
        pipeline = pipelines.add_resource("{id}")
        self.methods += [
            pipeline.add_method(verb, integration, request_validator=check_parameters, request_parameters=id_parameter)
            for verb in ("GET", "DELETE")
        ]
        for method in self.methods:
            NagSuppressions.add_resource_suppressions(method, [NagPackSuppression(
                id="AwsSolutions-COG4",
                reason="Callers are platform roles and pipelines' CI: IAM (SigV4) authorization, no user pool",
            )])
        NagSuppressions.add_resource_suppressions(self.rest_api, [NagPackSuppression(
            id="AwsSolutions-IAM4",
            reason="API Gateway's account-level logging role: AmazonAPIGatewayPushToCloudWatchLogs is the policy "
                   "AWS documents for it and maintains as the log actions change",
            applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
        )], apply_to_children=True)
        NagSuppressions.add_resource_suppressions(self.rest_api.deployment_stage, [NagPackSuppression(
            id="AwsSolutions-APIG3",
            reason="Every route requires SigV4-signed IAM callers; accounts that mandate WAF attach their "
                   "organisation's web ACL to the stage",
        )])
