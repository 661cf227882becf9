#!/usr/bin/env python3
"""The cdcflow CDK app: `npx cdk synth` / `npx cdk deploy`, or `python app.py` to synthesize."""

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.stack import CdcflowStack

app = cdk.App()
CdcflowStack(app, "Cdcflow", description="cdcflow: Change-Data-Capture pipelines as Step Functions workflows")
cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
app.synth()
