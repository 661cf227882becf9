"""The console: web pages to watch, approve and operate pipelines, served by the local API process under `/console`.

The pages read only the pipelines API and the Step Functions API, as the CLI
does, and every call they make is signed (SigV4) as one of the local users and
authorized by the API like any other caller. The browser holds no keys: the
page asks which local user you are (a profile of the local credentials file),
remembers the choice in a cookie, and the console signs on that user's behalf:

- `/console/api/<path>` forwards to the pipelines API's `/<path>`, signed as
  the chosen profile; the API's answer (403s included) comes back unchanged.
- `/console/data/execution` reads DescribeExecution, DescribeStateMachineForExecution
  and GetExecutionHistory from the Step Functions endpoint (`AWS_ENDPOINT_URL_SFN`:
  the local engine, or a deployed one), for an execution of a pipeline the
  caller may describe.
- `/console/data/approvals` lists the pipelines waiting for an approval that the
  caller may see, with their requester, instance and time left.
- `/console/request` is a form rendered from the pipeline request's JSON Schema
  (`forms`), sent to `POST /pipelines` through `/console/api`.

An execution is shown to a team's caller without the hosts and secret names its
input and outputs hold (`executions.redacted_for`), as the API shows it connections.

A console holding keys must not be usable by another web page: every request
must name this server as its Host (no DNS rebinding), a request that changes
something must carry the `X-Cdcflow-Console` header (which no cross-origin
page can send without a CORS preflight this server never allows), and the
profile cookie is `SameSite=Strict`.
"""

from cdcflow.console.server import respond, serves

__all__ = ["respond", "serves"]
