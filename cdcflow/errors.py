"""How a service the CLI talks to fails it; the API client, the history follower and the reconcile runner raise these."""


class ServiceUnreachable(Exception):
    """The API or the Step Functions endpoint did not answer; the message names the URL."""


class ServiceFailed(Exception):
    """The API answered with a 5xx, or the Reconcile function failed; the message names which."""
