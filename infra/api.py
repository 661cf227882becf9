"""The pipelines REST API: API Gateway in front of the `Api` catalogue function.

Routes (all Lambda proxy integrations to one function, all IAM-authorized:
callers sign with SigV4 and need `execute-api:Invoke` on the route), as in
`docs/openapi.yaml`:

| method | path |
| --- | --- |
| GET, POST | /pipelines |
| GET, PATCH, PUT, DELETE | /pipelines/{id} |
| POST | /pipelines/{id}/approval |
| POST | /pipelines/{id}/resync |
| POST | /pipelines/{id}/pause |
| POST | /pipelines/{id}/resume |
| GET, POST | /connections |
| GET, DELETE | /connections/{name} |

API Gateway validates the request parameters it is told about (the `id`
path parameter). Bodies are validated by the function against the full
pipeline-spec JSON Schema (draft 2020-12, which API Gateway's draft-4 models
cannot express), so the API answers the same 4xx naming the field on AWS
and on the local API server.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

STAGE_NAME = "v1"


class PipelinesApi(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, handler: lambda_.IFunction, throttle_rate: int,
        throttle_burst: int,
    ) -> None:
        """`throttle_rate` (requests per second) and `throttle_burst` apply to every method of the stage."""
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
                # Beyond these API Gateway answers 429 before the function (and its reserved concurrency) is reached.
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),
            ),
        )
        # API Gateway's own 400 in the function's error shape: {"message": ...}.
        self.rest_api.add_gateway_response(
            "BadRequestParameters",
            type=apigw.ResponseType.BAD_REQUEST_PARAMETERS,
            status_code="400",
            templates={"application/json": '{"message": "$context.error.validationErrorString"}'},
        )

        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        check_parameters = self.rest_api.add_request_validator(
            "ParametersValidator", validate_request_parameters=True,
        )
        id_parameter = {"method.request.path.id": True}

        pipelines = self.rest_api.root.add_resource("pipelines")
        pipeline = pipelines.add_resource("{id}")
        approval = pipeline.add_resource("approval")
        pause = pipeline.add_resource("pause")
        resume = pipeline.add_resource("resume")
        resync = pipeline.add_resource("resync")
        self.methods = [
            pipelines.add_method("GET", integration),
            pipelines.add_method("POST", integration),
            pipeline.add_method("GET", integration, request_validator=check_parameters,
                                request_parameters=id_parameter),
            pipeline.add_method("DELETE", integration, request_validator=check_parameters,
                                request_parameters=id_parameter),
            pipeline.add_method("PATCH", integration, request_validator=check_parameters,
                                request_parameters=id_parameter),
            pipeline.add_method("PUT", integration, request_validator=check_parameters,
                                request_parameters=id_parameter),
            approval.add_method("POST", integration, request_validator=check_parameters,
                                request_parameters=id_parameter),
            pause.add_method("POST", integration, request_validator=check_parameters,
                             request_parameters=id_parameter),
            resume.add_method("POST", integration, request_validator=check_parameters,
                              request_parameters=id_parameter),
            resync.add_method("POST", integration, request_validator=check_parameters,
                              request_parameters=id_parameter),
        ]
        connections = self.rest_api.root.add_resource("connections")
        connection = connections.add_resource("{name}")
        name_parameter = {"method.request.path.name": True}
        self.methods += [
            connections.add_method("GET", integration),
            connections.add_method("POST", integration),
            connection.add_method("GET", integration, request_validator=check_parameters,
                                  request_parameters=name_parameter),
            connection.add_method("DELETE", integration, request_validator=check_parameters,
                                  request_parameters=name_parameter),
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
        NagSuppressions.add_resource_suppressions(self.rest_api, [NagPackSuppression(
            id="AwsSolutions-APIG2",
            reason="Request bodies are validated by the Api function against the full pipeline-spec JSON Schema "
                   "(draft 2020-12, beyond API Gateway's draft-4 models), answering 4xx naming the field; "
                   "API Gateway validates the path parameters",
        )])
        NagSuppressions.add_resource_suppressions(self.rest_api.deployment_stage, [NagPackSuppression(
            id="AwsSolutions-APIG3",
            reason="Every route requires SigV4-signed IAM callers; accounts that mandate WAF attach their "
                   "organisation's web ACL to the stage",
        )])
