"""Lambda code and dependency layer, packaged without Docker.

Both assets use CDK's local bundling, so `cdk synth` and `Template.from_stack`
run on a machine without Docker:

- the code asset is the `lambdas/` package copied as `lambdas/` into the
  asset root (handlers are `lambdas.steps.<module>.handler`);
- the layer holds the third-party packages of `lambda-layer-requirements.txt`,
  installed by pip for the Lambda platform (manylinux2014 x86_64, the
  runtime's CPython, wheels only) into `python/`. The install is cached under
  `build/lambda-layer/<hash of the requirements>/`, so repeated synths copy
  instead of reinstalling; editing the requirements file is what rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PACKAGE = REPO_ROOT / "lambdas"
LAYER_REQUIREMENTS = Path(__file__).resolve().parent / "lambda-layer-requirements.txt"
LAYER_CACHE = REPO_ROOT / "build" / "lambda-layer"

# Python 3.11 is past its Lambda deprecation (creation blocked since 2026-07-31, per
# cfn-lint's runtime data), so the functions run on the nearest supported runtime.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12
PIP_PLATFORM = "manylinux2014_x86_64"
PIP_PYTHON_VERSION = LAMBDA_RUNTIME.name.removeprefix("python")  # wheels for the runtime's CPython
PIP_TIMEOUT_SECONDS = 600

_IGNORED = ("__pycache__", "*.pyc", "*.pyo")


class LayerBuildFailed(RuntimeError):
    """pip could not install the layer's packages (typically: no access to the package index)."""


def requirements_hash(requirements: Path = LAYER_REQUIREMENTS) -> str:
    """A hash of the requirement lines (comments and blank lines ignored) and the target platform."""
    lines = [line.strip() for line in requirements.read_text().splitlines()]
    pins = sorted(line for line in lines if line and not line.startswith("#"))
    key = "\n".join([PIP_PLATFORM, PIP_PYTHON_VERSION, *pins])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def ensure_layer_packages(requirements: Path = LAYER_REQUIREMENTS, cache: Path = LAYER_CACHE) -> Path:
    """The folder holding the installed packages (the layer's `python/`), built if missing.

    Idempotent, and safe when two synths run at once: each installs into its
    own temporary folder and the first to finish renames it into place.
    May block for minutes on the first call (pip downloads the wheels).
    Raises LayerBuildFailed with pip's output when the install fails.
    """
    target = cache / requirements_hash(requirements) / "python"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache))
    try:
        command = [
            sys.executable, "-m", "pip", "install",
            "--quiet", "--disable-pip-version-check", "--no-compile",
            "--platform", PIP_PLATFORM,
            "--implementation", "cp",
            "--python-version", PIP_PYTHON_VERSION,
            "--only-binary=:all:",
            "--target", str(staging / "python"),
            "--requirement", str(requirements),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise LayerBuildFailed(
                f"building the Lambda dependency layer timed out after {PIP_TIMEOUT_SECONDS}s "
                "(is the package index reachable?)"
            ) from exc
        if result.returncode != 0:
            raise LayerBuildFailed(
                "building the Lambda dependency layer failed: pip could not install "
                f"{requirements.name} for {PIP_PLATFORM} / Python {PIP_PYTHON_VERSION}. The package "
                "index must be reachable (PIP_INDEX_URL for a mirror) unless "
                f"{target} already exists.\n{result.stderr.strip()}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging / "python", target)
        except OSError:
            if not target.is_dir():  # not a lost race with another synth: a real error
                raise
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@jsii.implements(ILocalBundling)
class _LayerBundling:
    """Fills the layer asset with the cached pip install."""

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002 - jsii interface
        shutil.copytree(ensure_layer_packages(), Path(output_dir) / "python", dirs_exist_ok=True)
        return True


@jsii.implements(ILocalBundling)
class _PackageBundling:
    """Copies the `lambdas` package under its own name into the asset root."""

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002 - jsii interface
        shutil.copytree(
            LAMBDA_PACKAGE, Path(output_dir) / LAMBDA_PACKAGE.name,
            ignore=shutil.ignore_patterns(*_IGNORED), dirs_exist_ok=True,
        )
        return True


def _local_only(local: ILocalBundling) -> BundlingOptions:
    # `image` is required by the API but never used: local bundling always succeeds or raises.
    return BundlingOptions(image=DockerImage.from_registry("local-bundling-only"), local=local)


def lambda_code() -> lambda_.Code:
    """The `lambdas/` package as a code asset, hashed by its source files."""
    return lambda_.Code.from_asset(
        str(LAMBDA_PACKAGE),
        asset_hash_type=AssetHashType.SOURCE,
        exclude=list(_IGNORED),
        bundling=_local_only(_PackageBundling()),
    )


def dependency_layer_code() -> lambda_.Code:
    """The third-party packages as layer code, hashed by the requirements (no reinstall when unchanged)."""
    return lambda_.Code.from_asset(
        str(LAYER_REQUIREMENTS.parent),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=requirements_hash(),
        bundling=_local_only(_LayerBundling()),
    )
